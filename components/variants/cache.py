"""The variant cache: keyed by everything that determines a variant, so re-runs are incremental and
a run killed half-way resumes without regenerating what it finished."""

from __future__ import annotations

import hashlib
import json

from components.kvcache import SqliteCache
from components.variants.base import Variant, VariantRequest


def cache_key(request: VariantRequest, backend: str, model: str, prompt_version: str) -> str:
    text_hash = hashlib.sha256(request.text.encode()).hexdigest()
    parts = [text_hash, request.kind, request.error_category or "", backend, model, prompt_version,
             str(request.seed)]
    return hashlib.sha256("\x1f".join(parts).encode()).hexdigest()


class VariantCache(SqliteCache):
    def get_many(self, keys: list[str]) -> dict[str, Variant]:
        found = {}
        for key, value in super().get_many(keys).items():
            data = json.loads(value)
            span = data.pop("changed_span")
            found[key] = Variant(**data, changed_span=tuple(span) if span else None)
        return found

    def put_many(self, items: dict[str, Variant]) -> None:
        super().put_many({k: json.dumps({"text": v.text, "detail": v.detail, "changed_span": v.changed_span,
                                         "failure": v.failure}) for k, v in items.items()})
