"""Variant backend for a local transformers causal LM (a checkpoint directory; nothing is downloaded).

Prompts go through the tokenizer's chat template when it has one, else a plain
"System: ...\\nUser: ...\\nAssistant:" layout. Requests are sorted by prompt length and generated in
left-padded batches (little padding per batch), then returned in input order.

Determinism: `generate` seeds torch once per batch from the seeds of the requests in that batch
(and their order). The same requests with the same batch_size give the same texts; a request's text
can change when its batch mates change, since a batch shares one random stream.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from components.variants.base import Variant, VariantRequest
from components.variants.prompts import clean_answer, load_prompts


def plain_prompt(messages: list[dict]) -> str:
    """The fallback prompt for a tokenizer without a chat template (a base model)."""
    lines = [f"{m['role'].capitalize()}: {m['content']}" for m in messages]
    return "\n".join(lines) + "\nAssistant:"


def batch_seed(seeds: list[int]) -> int:
    """A stable 63-bit seed from a batch's request seeds (Python's hash() is salted per process)."""
    digest = hashlib.sha256(",".join(map(str, seeds)).encode()).digest()
    return int.from_bytes(digest[:8], "little") >> 1


class HFBackend:
    name = "hf"

    def __init__(self, model_path: str | Path, prompt_version: str = "v1", batch_size: int = 8,
                 max_new_tokens: int = 256, temperature: float = 0.7, device: str | None = None):
        import torch  # heavy imports here, so importing the variants package stays cheap
        from transformers import AutoModelForCausalLM, AutoTokenizer

        path = Path(model_path)
        if not path.is_dir():
            raise FileNotFoundError(f"HF model directory not found: {path} (no model is downloaded)")
        self.model = path.name
        self.prompt_version = prompt_version
        self.prompts = load_prompts(prompt_version)
        self.batch_size, self.max_new_tokens, self.temperature = batch_size, max_new_tokens, temperature
        self.device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
        self.tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
        self.tokenizer.padding_side = "left"  # generation continues from the right end of every row
        if self.tokenizer.pad_token is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        dtype = torch.bfloat16 if self.device.type == "cuda" else torch.float32
        self.lm = AutoModelForCausalLM.from_pretrained(path, local_files_only=True, dtype=dtype).to(self.device)
        self.lm.eval()
        eos = self.lm.generation_config.eos_token_id
        eos = eos if eos is not None else self.tokenizer.eos_token_id
        self.eos_ids = set(eos if isinstance(eos, list) else [eos]) - {None}
        if not self.eos_ids:
            raise ValueError(f"{path}: neither the generation config nor the tokenizer names an EOS token")

    def prompt(self, request: VariantRequest) -> str:
        messages = self.prompts.messages(request)
        if not self.tokenizer.chat_template:
            return plain_prompt(messages)
        try:
            return self.tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        except Exception:  # templates without a system role (Gemma, Mistral) raise a TemplateError
            merged = [{"role": "user", "content": f"{messages[0]['content']}\n\n{messages[1]['content']}"}]
            return self.tokenizer.apply_chat_template(merged, tokenize=False, add_generation_prompt=True)

    def generate(self, requests: list[VariantRequest]) -> list[Variant]:
        """One Variant per request, in input order."""
        # A chat template writes its own BOS and special tokens; a plain prompt needs the tokenizer's.
        special = not self.tokenizer.chat_template
        ids = [self.tokenizer(self.prompt(r), add_special_tokens=special)["input_ids"] for r in requests]
        order = sorted(range(len(requests)), key=lambda i: len(ids[i]), reverse=True)
        out: list[Variant | None] = [None] * len(requests)
        for start in range(0, len(order), self.batch_size):
            batch = order[start:start + self.batch_size]
            texts = self._generate_batch([ids[i] for i in batch], [requests[i].seed for i in batch])
            for i, variant in zip(batch, texts):
                out[i] = variant
        return out

    def _generate_batch(self, ids: list[list[int]], seeds: list[int]) -> list[Variant]:
        import torch

        enc = self.tokenizer.pad({"input_ids": ids}, return_tensors="pt").to(self.device)
        sampling = {"do_sample": True, "temperature": self.temperature} if self.temperature > 0 else {"do_sample": False}
        torch.manual_seed(batch_seed(seeds))  # also seeds CUDA
        with torch.inference_mode():
            generated = self.lm.generate(**enc, max_new_tokens=self.max_new_tokens, pad_token_id=self.tokenizer.pad_token_id,
                                         eos_token_id=sorted(self.eos_ids), **sampling)
        new_tokens = generated[:, enc["input_ids"].shape[1]:].tolist()  # left padding: prompts end at one column
        return [self._decode(row) for row in new_tokens]

    def _decode(self, row: list[int]) -> Variant:
        end = next((k for k, t in enumerate(row) if t in self.eos_ids), None)
        if end is None:  # ran out of max_new_tokens: a partial report is not a variant
            return Variant(text=None, failure="truncated")
        text, failure = clean_answer(self.tokenizer.decode(row[:end], skip_special_tokens=True))
        return Variant(text=text, failure=failure)
