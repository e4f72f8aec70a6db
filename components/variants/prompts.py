"""Versioned prompt files for the LLM variant backends, and the cleanup of what the model answers.

Prompts live in `prompts/<version>/`: `system.txt`, one `<kind>.txt` per equivalent kind and one
`error_<category>.txt` per error category, each a template with a `{report}` slot. The version
string is recorded with every variant, so an edited prompt must go into a new version folder:
a folder, once used for data, is never edited in place.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from components.variants.base import EQUIVALENT_KINDS, ERROR_CATEGORIES, ERROR_KIND, VariantRequest

PROMPTS_DIR = Path(__file__).resolve().parent / "prompts"
SLOT = "{report}"
# What a prompt asks the model to answer when the rewrite cannot be done (no device to rename ...).
NOT_APPLICABLE = "NOT_APPLICABLE"


def template_name(kind: str, error_category: str | None = None) -> str:
    """The template file stem for a request kind: `paraphrase`, `error_location` ..."""
    if kind == ERROR_KIND:
        if error_category not in ERROR_CATEGORIES:
            raise ValueError(f"unknown error category {error_category!r}; known: {list(ERROR_CATEGORIES)}")
        return f"error_{error_category}"
    if kind not in EQUIVALENT_KINDS:
        raise ValueError(f"unknown variant kind {kind!r}; known: {[*EQUIVALENT_KINDS, ERROR_KIND]}")
    return kind


TEMPLATE_NAMES = (*EQUIVALENT_KINDS, *(template_name(ERROR_KIND, c) for c in ERROR_CATEGORIES))


@dataclass(frozen=True)
class Prompts:
    version: str
    system: str
    templates: dict[str, str]  # template name -> text with one {report} slot

    def user(self, request: VariantRequest) -> str:
        # str.replace, not str.format: report text may contain braces.
        return self.templates[template_name(request.kind, request.error_category)].replace(SLOT, request.text)

    def messages(self, request: VariantRequest) -> list[dict]:
        """OpenAI-style chat messages: the system prompt, then the instruction with the report."""
        return [{"role": "system", "content": self.system}, {"role": "user", "content": self.user(request)}]


@lru_cache(maxsize=None)
def load_prompts(version: str) -> Prompts:
    """Read and check the prompt folder `version`; fails loudly on a missing file or `{report}` slot."""
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]*", version):
        raise ValueError(f"bad prompt version {version!r}: use a folder name such as 'v1'")
    folder = PROMPTS_DIR / version
    if not folder.is_dir():
        known = sorted(p.name for p in PROMPTS_DIR.iterdir() if p.is_dir())
        raise FileNotFoundError(f"no prompt version {version!r} in {PROMPTS_DIR}; known: {known}")
    missing = [n for n in ("system", *TEMPLATE_NAMES) if not (folder / f"{n}.txt").is_file()]
    if missing:
        raise FileNotFoundError(f"prompt version {version!r} lacks {[m + '.txt' for m in missing]}")
    templates = {n: (folder / f"{n}.txt").read_text(encoding="utf-8").strip() for n in TEMPLATE_NAMES}
    no_slot = [n for n, t in templates.items() if t.count(SLOT) != 1]
    if no_slot:
        raise ValueError(f"prompt version {version!r}: {no_slot} must contain {SLOT} exactly once")
    return Prompts(version, (folder / "system.txt").read_text(encoding="utf-8").strip(), templates)


# Reasoning models (served by vLLM without a reasoning parser) put their thoughts before the answer.
_THINK = re.compile(r"^\s*<think>.*?</think>", re.S)
_FENCE = re.compile(r"^\s*```[\w-]*[ \t]*\n(.*?)\n?```\s*$", re.S)
# "Here is the rewritten report:", "Sure! Here's the paraphrased version:", "Rewritten report:" ...
_PREAMBLE = re.compile(
    r"^\s*(?:(?:sure|certainly|okay|ok|of course)[,.!]?\s*)?"
    r"(?:here(?:'s| is| are)\b[^\n]{0,80}?|(?:the )?(?:rewritten|modified|revised|paraphrased)[^\n]{0,40}?):[ \t]*\n?",
    re.I)


def clean_answer(text: str) -> tuple[str | None, str | None]:
    """(report, None) from a model answer, or (None, reason) when it holds no usable report."""
    text = _THINK.sub("", text).strip()
    text = _PREAMBLE.sub("", text, count=1).strip()
    fence = _FENCE.match(text)
    if fence:
        text = fence.group(1).strip()
    if not text:
        return None, "empty"
    if text.rstrip(".").upper() == NOT_APPLICABLE:
        return None, "not_applicable"
    return text, None
