"""The LLM judge of the ranking protocol, through the project's OpenAI-compatible client.

Transport, concurrency and transient-failure retries are the variants backend's (OpenAIBackend); this
adds the versioned ranking prompt and a strict reply check. A malformed reply (no JSON object, wrong
letters, ranks outside 1..K) is rejected, asked again with a new seed up to `malformed_retries` times,
and counted by reason; a study the judge never answered properly is left unranked and counted, never a crash.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import yaml

from components.evaluation.ranking import RankingItem
from components.variants.openai_backend import OpenAIBackend
from components.variants.prompts import _FENCE, _THINK

PROMPTS_DIR = Path(__file__).resolve().parent / "prompts"
# Client failures that are the model's answer being unusable, not the transport: asked again here.
MALFORMED_FAILURES = ("empty", "truncated", "bad_response")


@dataclass(frozen=True)
class RankingPrompt:
    version: str
    system: str
    user: str

    def messages(self, item: RankingItem, blinded: list[tuple[str, str]]) -> list[dict]:
        candidates = "\n".join(f'{letter}:\n"""\n{item.candidates[system]}\n"""' for letter, system in blinded)
        letters = ", ".join(letter for letter, _ in blinded)
        # str.replace, not str.format: reports and the JSON example contain braces.
        user = (self.user.replace("{reference}", item.reference).replace("{candidates}", candidates)
                .replace("{letters}", letters))
        return [{"role": "system", "content": self.system}, {"role": "user", "content": user}]


@lru_cache(maxsize=None)
def load_ranking_prompt(version: str) -> RankingPrompt:
    """components/evaluation/prompts/<version>.yaml with `system` and `user` (slots {reference}, {candidates})."""
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]*", version):
        raise ValueError(f"bad ranking prompt version {version!r}")
    path = PROMPTS_DIR / f"{version}.yaml"
    if not path.is_file():
        known = sorted(p.stem for p in PROMPTS_DIR.glob("*.yaml"))
        raise FileNotFoundError(f"no ranking prompt {version!r} in {PROMPTS_DIR}; known: {known}")
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    if not all(isinstance(data.get(k), str) for k in ("system", "user")) or \
            any(data["user"].count(slot) != 1 for slot in ("{reference}", "{candidates}")):
        raise ValueError(f"{path}: needs `system` and `user`, the latter with {{reference}} and {{candidates}} once")
    return RankingPrompt(version, data["system"].strip(), data["user"].strip())


def parse_ranking(text: str | None, letters: list[str]) -> tuple[dict[str, int] | None, str | None]:
    """({letter: rank}, None) from a reply, or (None, reason)."""
    text = _THINK.sub("", text or "").strip()
    fence = _FENCE.match(text)
    if fence:
        text = fence.group(1).strip()
    start, end = text.find("{"), text.rfind("}")
    if start < 0 or end < start:
        return None, "no_json"
    try:
        obj = json.loads(text[start:end + 1])
    except ValueError:
        return None, "bad_json"
    ranks = obj.get("ranks", obj) if isinstance(obj, dict) else None
    if not isinstance(ranks, dict):
        return None, "no_ranks"
    ranks = {str(k).strip().upper(): v for k, v in ranks.items()}
    if set(ranks) != set(letters):
        return None, "wrong_candidates"
    out = {}
    for letter, v in ranks.items():
        if isinstance(v, bool) or not isinstance(v, (int, float)) or v != int(v) or not 1 <= v <= len(letters):
            return None, "rank_out_of_range"
        out[letter] = int(v)
    return out, None


@dataclass(frozen=True)
class JudgeRequest:
    study_id: str
    messages: list
    seed: int


class LLMJudge(OpenAIBackend):
    name = "llm_judge"
    prompt_loader = staticmethod(load_ranking_prompt)

    def __init__(self, base_url: str, model: str, api_key: str | None = None, prompt_version: str = "ranking_v1",
                 malformed_retries: int = 2, temperature: float = 0.0, max_tokens: int = 256, **transport):
        super().__init__(base_url, model, api_key, prompt_version=prompt_version, temperature=temperature,
                         max_tokens=max_tokens, **transport)
        if malformed_retries < 0:
            raise ValueError("malformed_retries must be >= 0")
        self.malformed_retries = malformed_retries

    def body(self, request: JudgeRequest) -> dict:
        return {"model": self.model, "messages": request.messages, "temperature": self.temperature,
                "max_tokens": self.max_tokens, "seed": request.seed, "n": 1}

    def parse(self, content: str) -> tuple[str | None, str | None]:
        return (content, None) if content.strip() else (None, "empty")

    def rank(self, items: list[RankingItem], seed: int = 0) -> tuple[dict[str, dict[str, int]], dict]:
        """(rankings, counts): counts of requests, malformed replies by reason, retries, and studies left
        unranked by final reason."""
        blinded = {item.study_id: item.blinded(seed) for item in items}
        by_id = {item.study_id: item for item in items}
        pending, rankings = list(by_id), {}
        malformed, unranked, requests = Counter(), Counter(), 0
        for attempt in range(self.malformed_retries + 1):
            if not pending:
                break
            batch = [JudgeRequest(s, self.prompts.messages(by_id[s], blinded[s]), seed + attempt) for s in pending]
            requests += len(batch)
            retry = []
            for request, reply in zip(batch, self.generate(batch)):
                letters = dict(blinded[request.study_id])
                if reply.failure and reply.failure not in MALFORMED_FAILURES:  # already retried by the client
                    unranked[reply.failure] += 1
                    continue
                ranks, reason = parse_ranking(reply.text, list(letters)) if not reply.failure else (None, reply.failure)
                if ranks is None:
                    malformed[reason] += 1
                    retry.append(request.study_id)
                    continue
                rankings[request.study_id] = {letters[k]: v for k, v in ranks.items()}
            pending = retry
        unranked["malformed"] += len(pending)
        counts = {"requests": requests, "ranked": len(rankings), "malformed": dict(sorted(malformed.items())),
                  "n_malformed": sum(malformed.values()), "unranked": {k: v for k, v in sorted(unranked.items()) if v},
                  "prompt_version": self.prompt_version, "model": self.model}
        return rankings, counts
