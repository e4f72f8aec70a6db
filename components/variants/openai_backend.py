"""Variant backend for any OpenAI-compatible chat-completions server (vLLM, Ollama, llama.cpp ...).

Requests run concurrently on an asyncio event loop (httpx.AsyncClient, a semaphore bounds the
in-flight count). Transient failures (429, 5xx, timeouts, connection errors) are retried with
exponential backoff and jitter, honouring Retry-After; anything else fails that one request with a
reason code in `Variant.failure`. `generate` never raises for a single request.
"""

from __future__ import annotations

import asyncio
import email.utils
import os
import random
import threading
import time

import httpx

from components.variants.base import Variant, VariantRequest
from components.variants.prompts import clean_answer, load_prompts

MAX_RETRY_AFTER_S = 30.0  # a server asking for a longer pause is not worth blocking a stage for
MAX_BACKOFF_S = 30.0


def chat_url(base_url: str) -> str:
    """The chat-completions URL for a base URL given with or without `/v1` (or as the full URL)."""
    url = base_url.rstrip("/")
    if url.endswith("/chat/completions"):
        return url
    return url + ("/chat/completions" if url.endswith("/v1") else "/v1/chat/completions")


def retry_after_s(value: str | None) -> float | None:
    """Seconds from a Retry-After header (delta-seconds or HTTP date), capped; None if absent/bad."""
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        try:
            seconds = email.utils.parsedate_to_datetime(value).timestamp() - time.time()
        except (TypeError, ValueError):
            return None
    return min(max(seconds, 0.0), MAX_RETRY_AFTER_S)


class _Retryable(Exception):
    def __init__(self, failure: str, wait_s: float | None = None):
        super().__init__(failure)
        self.failure, self.wait_s = failure, wait_s


class OpenAIBackend:
    name = "openai"
    prompt_loader = staticmethod(load_prompts)  # versioned prompts; the ranking judge loads its own

    def __init__(self, base_url: str, model: str, api_key: str | None = None, prompt_version: str = "v1",
                 concurrency: int = 16, timeout_s: float = 60, max_attempts: int = 5, backoff_s: float = 1.0,
                 temperature: float = 0.7, max_tokens: int = 512):
        if concurrency < 1 or max_attempts < 1:
            raise ValueError("concurrency and max_attempts must be >= 1")
        self.url = chat_url(base_url)
        self.model = model
        # Local servers (vLLM, Ollama) accept any key; "EMPTY" is vLLM's documented placeholder.
        self.api_key = api_key or os.environ.get("OPENAI_API_KEY") or "EMPTY"
        self.prompt_version = prompt_version
        self.prompts = self.prompt_loader(prompt_version)
        self.concurrency, self.timeout_s = concurrency, timeout_s
        self.max_attempts, self.backoff_s = max_attempts, backoff_s
        self.temperature, self.max_tokens = temperature, max_tokens

    def generate(self, requests: list[VariantRequest]) -> list[Variant]:
        """One Variant per request, in input order. Blocks; safe from any thread.

        Runs its own event loop; when the calling thread already runs one (a notebook, async
        code), the work moves to a helper thread, since a loop cannot be nested. Async callers
        should await `agenerate` instead.
        """
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            return asyncio.run(self.agenerate(requests))
        result: list[list[Variant]] = []
        worker = threading.Thread(target=lambda: result.append(asyncio.run(self.agenerate(requests))))
        worker.start()
        worker.join()
        return result[0]

    async def agenerate(self, requests: list[VariantRequest]) -> list[Variant]:
        semaphore = asyncio.Semaphore(self.concurrency)
        limits = httpx.Limits(max_connections=self.concurrency, max_keepalive_connections=self.concurrency)
        headers = {"Authorization": f"Bearer {self.api_key}"}
        # httpx's timeout bounds each read/connect; the total per attempt is bounded in _attempt.
        async with httpx.AsyncClient(limits=limits, headers=headers, timeout=self.timeout_s) as client:
            return list(await asyncio.gather(*(self._one(client, semaphore, r) for r in requests)))

    def body(self, request: VariantRequest) -> dict:
        return {"model": self.model, "messages": self.prompts.messages(request), "temperature": self.temperature,
                "max_tokens": self.max_tokens, "seed": request.seed, "n": 1}

    async def _one(self, client: httpx.AsyncClient, semaphore: asyncio.Semaphore, request: VariantRequest) -> Variant:
        body = self.body(request)
        for attempt in range(1, self.max_attempts + 1):
            try:
                async with semaphore:  # released during the backoff below, so waiting frees a slot
                    return await self._attempt(client, body)
            except _Retryable as err:
                if attempt == self.max_attempts:
                    return Variant(text=None, failure=err.failure)
                await asyncio.sleep(err.wait_s if err.wait_s is not None else self._backoff(attempt))
        raise AssertionError("unreachable")

    def _backoff(self, attempt: int) -> float:
        # "Equal jitter": half the exponential delay fixed, half random, so retries of many requests
        # that failed together (a 429 burst) do not hit the server again in lockstep.
        delay = min(MAX_BACKOFF_S, self.backoff_s * 2 ** (attempt - 1))
        return delay / 2 + random.uniform(0, delay / 2)

    async def _attempt(self, client: httpx.AsyncClient, body: dict) -> Variant:
        try:
            async with asyncio.timeout(self.timeout_s):  # total time, even for a trickling response
                response = await client.post(self.url, json=body)
        except (TimeoutError, httpx.TimeoutException):
            raise _Retryable("timeout") from None
        except httpx.TransportError:  # refused, reset, DNS, protocol errors
            raise _Retryable("connection_error") from None
        status = response.status_code
        if status == 429 or status >= 500:
            raise _Retryable(f"http_{status}", retry_after_s(response.headers.get("Retry-After")))
        if status != 200:
            return Variant(text=None, failure=f"http_{status}")
        try:
            choice = response.json()["choices"][0]
            content = choice["message"]["content"] or ""
        except (ValueError, KeyError, IndexError, TypeError):
            return Variant(text=None, failure="bad_response")
        if choice.get("finish_reason") == "length":  # cut at max_tokens: a partial report is not a variant
            return Variant(text=None, failure="truncated")
        text, failure = self.parse(content)
        return Variant(text=text, failure=failure)

    def parse(self, content: str) -> tuple[str | None, str | None]:
        """(answer, None) or (None, reason) from the model's content; subclasses (the ranking judge) parse
        their own answer format through the same transport and retry policy."""
        return clean_answer(content)
