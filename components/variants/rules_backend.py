"""The rules backend: dispatches each request to its rewrite rule (rules_equivalent.py, rules_errors.py),
which build on the sentence toolkit in rules.py."""

from __future__ import annotations

from components.variants.base import EQUIVALENT_KINDS, ERROR_CATEGORIES, ERROR_KIND, Variant, VariantRequest
from components.variants.rules import Doc, not_applicable, request_rng
from components.variants.rules_equivalent import EQUIVALENT
from components.variants.rules_errors import ERRORS


class RulesBackend:
    """Deterministic rewrite rules; no model, no network."""

    name = "rules"
    model = "rules"
    prompt_version = "rules-1"

    def generate(self, requests: list[VariantRequest]) -> list[Variant]:
        return [self.one(r) for r in requests]

    def one(self, request: VariantRequest) -> Variant:
        if request.kind == ERROR_KIND:
            if request.error_category not in ERROR_CATEGORIES:
                return Variant(None, failure="unknown_error_category", detail=str(request.error_category))
            handler = ERRORS[request.error_category]
        elif request.kind in EQUIVALENT_KINDS:
            handler = EQUIVALENT[request.kind]
        else:
            return Variant(None, failure="unknown_kind", detail=str(request.kind))
        if not request.text or not request.text.strip():
            return not_applicable("empty report")
        doc = Doc(request.text)
        if not doc.sentences:
            return not_applicable("no findings or impression sentences")
        variant = handler(doc, request_rng(request), request)
        if variant.text is not None and variant.text.strip() == request.text.strip():
            return not_applicable("no rule changed the text")
        return variant
