"""LLM variant backends: prompt files, the OpenAI-compatible client against a scripted local HTTP
server, and the transformers backend on a tiny model built here (nothing is downloaded)."""

from __future__ import annotations

import asyncio
import json
import re
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from components.variants.base import EQUIVALENT_KINDS, ERROR_CATEGORIES, ERROR_KIND, VariantRequest
from components.variants.openai_backend import OpenAIBackend, chat_url, retry_after_s
from components.variants.prompts import PROMPTS_DIR, clean_answer, load_prompts

REPORT = "FINDINGS: Small right pleural effusion. No pneumothorax.\n\nIMPRESSION: Small right effusion."


def all_requests(text: str = REPORT, seed: int = 0) -> list[VariantRequest]:
    return ([VariantRequest("s1", text, kind, seed=seed) for kind in EQUIVALENT_KINDS]
            + [VariantRequest("s1", text, ERROR_KIND, c, seed=seed) for c in ERROR_CATEGORIES])


# ---------------------------------------------------------------- prompts

def test_prompt_files_exist_and_render_the_report():
    prompts = load_prompts("v1")
    names = {p.stem for p in (PROMPTS_DIR / "v1").glob("*.txt")}
    assert names >= {"system", *EQUIVALENT_KINDS, *(f"error_{c}" for c in ERROR_CATEGORIES)}
    for request in all_requests(text="A {brace} report."):  # braces in a report must not break rendering
        system, user = prompts.messages(request)
        assert system == {"role": "system", "content": prompts.system}
        assert user["role"] == "user" and user["content"].endswith("A {brace} report.")
        assert "{report}" not in user["content"]
        if request.kind == ERROR_KIND:
            assert "exactly one" in user["content"] and "rewritten report only" in user["content"]
    with pytest.raises(ValueError):
        prompts.messages(VariantRequest("s1", REPORT, ERROR_KIND, "no_such_category"))
    with pytest.raises(FileNotFoundError):
        load_prompts("v999")
    with pytest.raises(ValueError):
        load_prompts("../v1")


@pytest.mark.parametrize("answer, expected", [
    ("Small left effusion.", ("Small left effusion.", None)),
    ("Here is the rewritten report:\n\nSmall left effusion.", ("Small left effusion.", None)),
    ("Sure! Here's the report with one error:\n```text\nFINDINGS: X.\nIMPRESSION: Y.\n```", ("FINDINGS: X.\nIMPRESSION: Y.", None)),
    ("```\nSmall left effusion.\n```", ("Small left effusion.", None)),
    ("<think>the user wants...</think>\nSmall left effusion.", ("Small left effusion.", None)),
    ("FINDINGS: Small left effusion.", ("FINDINGS: Small left effusion.", None)),  # a header is not a preamble
    ("NOT_APPLICABLE", (None, "not_applicable")),
    ("  ", (None, "empty")),
])
def test_clean_answer(answer, expected):
    assert clean_answer(answer) == expected


def test_chat_url_and_retry_after():
    assert chat_url("http://h:8000/v1/") == "http://h:8000/v1/chat/completions"
    assert chat_url("http://h:8000") == "http://h:8000/v1/chat/completions"
    assert chat_url("http://h/v1/chat/completions") == "http://h/v1/chat/completions"
    assert retry_after_s("2") == 2.0 and retry_after_s(None) is None and retry_after_s("soon") is None
    assert retry_after_s("99999") == 30.0  # capped
    assert retry_after_s("Wed, 21 Oct 2015 07:28:00 GMT") == 0.0  # a date in the past: retry now


# ---------------------------------------------------------------- a scripted chat-completions server

class ChatServer:
    """Behaviour per request is chosen by a `SCRIPT=<name>` marker in the report text."""

    def __init__(self):
        self.bodies, self.headers, self.attempts = [], [], {}
        self.in_flight = self.max_in_flight = 0
        self.lock = threading.Lock()
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), self._handler(), bind_and_activate=False)
        self.httpd.daemon_threads = True
        self.httpd.request_queue_size = 64  # the default listen backlog (5) is below the concurrency tested
        self.httpd.server_bind()
        self.httpd.server_activate()
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def reset(self):
        with self.lock:
            self.bodies, self.headers, self.attempts = [], [], {}
            self.in_flight = self.max_in_flight = 0

    def respond(self, script: str, attempt: int) -> tuple[int, dict, dict | str]:
        ok = {"choices": [{"message": {"role": "assistant", "content": f"Here is the rewritten report:\n```\nrewritten {script}\n```"},
                           "finish_reason": "stop"}]}
        if script == "rate_limited" and attempt <= 2:
            return 429, {"Retry-After": "0"}, {"error": "slow down"}
        if (script == "flaky" and attempt == 1) or script == "broken":
            return 500, {}, {"error": "boom"}
        if script == "bad":
            return 400, {}, {"error": "bad request"}
        if script == "slow":
            time.sleep(1.0)
        if script.startswith("delay"):
            time.sleep(0.2)
        if script == "cut":
            ok["choices"][0]["finish_reason"] = "length"
        if script == "garbage":
            return 200, {}, "not json"
        return 200, {}, ok

    def _handler(self):
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                script = re.search(r"SCRIPT=(\w+)", body["messages"][-1]["content"]).group(1)
                with server.lock:
                    server.bodies.append(body)
                    server.headers.append(dict(self.headers))
                    server.attempts[script] = attempt = server.attempts.get(script, 0) + 1
                    server.in_flight += 1
                    server.max_in_flight = max(server.max_in_flight, server.in_flight)
                try:
                    status, headers, payload = server.respond(script, attempt)
                    data = (payload if isinstance(payload, str) else json.dumps(payload)).encode()
                    self.send_response(status)
                    for key, value in {**headers, "Content-Type": "application/json", "Content-Length": str(len(data))}.items():
                        self.send_header(key, value)
                    self.end_headers()
                    self.wfile.write(data)
                except OSError:  # the client gave up (timeout test)
                    pass
                finally:
                    with server.lock:
                        server.in_flight -= 1

            def log_message(self, *args):
                pass

        return Handler

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture(scope="module")
def server():
    srv = ChatServer()
    yield srv
    srv.close()


def scripted(*scripts: str, seed: int = 42) -> list[VariantRequest]:
    return [VariantRequest(f"s{i}", f"FINDINGS: SCRIPT={s} Small right effusion.", "paraphrase", seed=seed)
            for i, s in enumerate(scripts)]


def test_openai_retries_failures_and_request_body(server):
    server.reset()
    backend = OpenAIBackend(server.url, "test-model", api_key="sk-test", concurrency=4, timeout_s=0.3,
                            max_attempts=3, backoff_s=0.01)
    scripts = ["ok", "flaky", "broken", "slow", "bad", "cut", "garbage"]
    variants = backend.generate(scripted(*scripts))
    got = {s: (v.text, v.failure) for s, v in zip(scripts, variants)}  # output order = input order
    assert got == {"ok": ("rewritten ok", None), "flaky": ("rewritten flaky", None), "broken": (None, "http_500"),
                   "slow": (None, "timeout"), "bad": (None, "http_400"), "cut": (None, "truncated"),
                   "garbage": (None, "bad_response")}
    assert server.attempts == {"ok": 1, "flaky": 2, "broken": 3, "slow": 3, "bad": 1, "cut": 1, "garbage": 1}
    body = next(b for b in server.bodies if "SCRIPT=ok" in b["messages"][-1]["content"])
    prompts = load_prompts("v1")
    assert body["model"] == "test-model" and body["seed"] == 42 and body["max_tokens"] == 512
    assert body["messages"] == prompts.messages(scripted("ok")[0])
    assert body["messages"][0] == {"role": "system", "content": prompts.system}
    assert "FINDINGS: SCRIPT=ok Small right effusion." in body["messages"][1]["content"]
    assert all(h["Authorization"] == "Bearer sk-test" for h in server.headers)


def test_openai_honours_retry_after(server):
    server.reset()
    # A 10 s backoff would make this take 30 s; Retry-After: 0 makes it immediate.
    backend = OpenAIBackend(server.url, "test-model", backoff_s=10.0, max_attempts=5)
    start = time.perf_counter()
    [variant] = backend.generate(scripted("rate_limited"))
    assert variant.text == "rewritten rate_limited" and variant.failure is None
    assert server.attempts == {"rate_limited": 3}
    assert time.perf_counter() - start < 2.0


def test_openai_connection_error_does_not_raise():
    with ThreadingHTTPServer(("127.0.0.1", 0), BaseHTTPRequestHandler) as probe:
        port = probe.server_address[1]  # a port that is free once the probe closes
    backend = OpenAIBackend(f"http://127.0.0.1:{port}/v1", "m", max_attempts=2, backoff_s=0.01, timeout_s=2)
    assert [(v.text, v.failure) for v in backend.generate(scripted("ok", "ok"))] == [(None, "connection_error")] * 2


def test_openai_is_concurrent_and_bounded(server):
    server.reset()
    backend = OpenAIBackend(server.url, "test-model", concurrency=8)
    requests = scripted(*(f"delay{i}" for i in range(16)))
    start = time.perf_counter()
    variants = backend.generate(requests)
    elapsed = time.perf_counter() - start
    assert [v.text for v in variants] == [f"rewritten delay{i}" for i in range(16)]
    assert elapsed < 1.5, f"16 x 200 ms requests at concurrency 8 took {elapsed:.2f} s"
    assert 1 < server.max_in_flight <= 8


def test_openai_generate_from_a_thread_and_from_a_running_loop(server):
    backend = OpenAIBackend(server.url, "test-model")
    results = []
    worker = threading.Thread(target=lambda: results.append(backend.generate(scripted("ok"))))
    worker.start()
    worker.join()

    async def inside_loop():
        return backend.generate(scripted("ok")), await backend.agenerate(scripted("ok"))

    results.extend(asyncio.run(inside_loop()))
    assert [r[0].text for r in results] == ["rewritten ok"] * 3


# ---------------------------------------------------------------- transformers backend, tiny local model

ANSWERS = ["No acute findings.", "Lungs are clear.", "Small left effusion.", "Mild cardiomegaly."]
SENTENCES = [
    "Small right pleural effusion.", "No pneumothorax.", "Lungs are clear.", "Mild cardiomegaly.",
    "Endotracheal tube terminates 5 cm above the carina.", "No acute cardiopulmonary process.",
    "Bibasilar atelectasis.", "Moderate pulmonary edema.", "Left lower lobe consolidation.",
    "The cardiomediastinal silhouette is normal.", "Right upper lobe nodule measuring 2 cm.",
    "No focal consolidation.", "Stable position of the right PICC.", "Small left effusion.",
    "Heart size is normal.", "No acute findings.", "Interval improvement of the right effusion.",
]
CHAT_TEMPLATE = ("{% for m in messages %}<|{{ m['role'] }}|>{{ m['content'] }}\n{% endfor %}"
                 "{% if add_generation_prompt %}<|assistant|>{% endif %}")


def hf_requests(n: int, seed: int = 0) -> list[VariantRequest]:
    kinds = all_requests()
    return [VariantRequest(f"s{i}", f"FINDINGS: {SENTENCES[i % len(SENTENCES)]} {SENTENCES[(3 * i) % len(SENTENCES)]}",
                           kinds[i % len(kinds)].kind, kinds[i % len(kinds)].error_category, seed=seed + i)
            for i in range(n)]


@pytest.fixture(scope="module")
def tiny_models(tmp_path_factory):
    """Two dirs, same weights: one tokenizer with a chat template, one without. The model is
    trained for a few seconds to answer one of ANSWERS (chosen at random) and then stop."""
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    from components.variants.hf import plain_prompt

    root = tmp_path_factory.mktemp("tiny-lm")
    prompts = load_prompts("v1")
    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    specials = ["<pad>", "<s>", "</s>", "<|system|>", "<|user|>", "<|assistant|>"]
    corpus = SENTENCES * 3 + [prompts.system, *prompts.templates.values()]
    bpe.train_from_iterator(corpus, trainers.BpeTrainer(vocab_size=600, special_tokens=specials,
                                                        initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    tok = PreTrainedTokenizerFast(tokenizer_object=bpe, bos_token="<s>", eos_token="</s>", pad_token="<pad>")
    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=len(tok), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=2, num_key_value_heads=2, max_position_embeddings=1024,
                         bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id)
    model = LlamaForCausalLM(config)

    # Training rows: prompt (both layouts) + answer + EOS, loss on the answer only. Only the prompt's
    # last tokens are kept: they are what the answer follows, and short rows train in a second.
    rows = []
    for request in hf_requests(4):
        messages = prompts.messages(request)
        # tokenized as HFBackend does: a chat template brings its own special tokens, a plain prompt not
        chat = tok.apply_chat_template(messages, tokenize=False, add_generation_prompt=True, chat_template=CHAT_TEMPLATE)
        for p in (tok(chat, add_special_tokens=False)["input_ids"][-24:], tok(plain_prompt(messages))["input_ids"][-24:]):
            for answer in ANSWERS:
                a = tok(" " + answer, add_special_tokens=False)["input_ids"]
                rows.append((p + a + [tok.eos_token_id], [-100] * len(p) + a + [tok.eos_token_id]))
    width = max(len(ids) for ids, _ in rows)
    ids = torch.tensor([[tok.pad_token_id] * (width - len(i)) + i for i, _ in rows])  # left padded, as in generation
    labels = torch.tensor([[-100] * (width - len(lab)) + lab for _, lab in rows])
    mask = (torch.arange(width)[None] >= torch.tensor([width - len(i) for i, _ in rows])[:, None]).long()
    optim = torch.optim.AdamW(model.parameters(), lr=1e-2)
    model.train()
    for _ in range(60):
        loss = model(input_ids=ids, attention_mask=mask, labels=labels).loss
        loss.backward()
        optim.step()
        optim.zero_grad()
    model.eval()

    with_template, plain = root / "tiny-chat", root / "tiny-plain"
    model.save_pretrained(with_template)
    model.save_pretrained(plain)
    tok.save_pretrained(plain)
    tok.chat_template = CHAT_TEMPLATE
    tok.save_pretrained(with_template)
    return with_template, plain, loss.item()


def test_hf_generates_in_order_in_batches(tiny_models):
    from components.variants.hf import HFBackend

    with_template, _, loss = tiny_models
    backend = HFBackend(with_template, batch_size=3, max_new_tokens=12, temperature=1.0)
    assert (backend.name, backend.model, backend.prompt_version) == ("hf", "tiny-chat", "v1")
    assert backend.device.type == "cpu" or backend.device.type == "cuda"
    requests = hf_requests(8)
    prompt = backend.prompt(requests[0])
    assert prompt.startswith("<|system|>") and "<|user|>" in prompt and prompt.endswith("<|assistant|>")
    assert requests[0].text in prompt

    batches = []
    real = backend._generate_batch
    backend._generate_batch = lambda ids, seeds: batches.append(len(ids)) or real(ids, seeds)
    variants = backend.generate(requests)
    assert batches == [3, 3, 2]
    assert len(variants) == 8 and all(isinstance(v.text, str) for v in variants), (loss, variants)
    assert {v.text for v in variants} <= set(ANSWERS)  # only the new tokens are decoded, cut at EOS

    # Order: let each "generated" text be its own prompt, so every output must hold its request's report.
    backend._generate_batch = lambda ids, seeds: [type(variants[0])(text=backend.tokenizer.decode(i)) for i in ids]
    echoed = backend.generate(requests)
    assert all(r.text in v.text for r, v in zip(requests, echoed))


def test_hf_is_deterministic_per_seed(tiny_models):
    from components.variants.hf import HFBackend

    backend = HFBackend(tiny_models[0], batch_size=4, max_new_tokens=12, temperature=1.0)
    first = [v.text for v in backend.generate(hf_requests(8, seed=0))]
    assert first == [v.text for v in backend.generate(hf_requests(8, seed=0))]
    assert first != [v.text for v in backend.generate(hf_requests(8, seed=100))]
    greedy = HFBackend(tiny_models[0], batch_size=4, max_new_tokens=12, temperature=0)
    texts = [v.text for v in greedy.generate(hf_requests(4))]
    assert texts == [v.text for v in greedy.generate(hf_requests(4, seed=100))]  # greedy ignores the seed


def test_hf_plain_prompt_without_chat_template(tiny_models):
    from components.variants.hf import HFBackend

    backend = HFBackend(tiny_models[1], batch_size=8, max_new_tokens=12, temperature=1.0)
    assert not backend.tokenizer.chat_template
    request = hf_requests(1)[0]
    prompt = backend.prompt(request)
    assert prompt.startswith("System: ") and "\nUser: " in prompt and prompt.endswith("\nAssistant:")
    assert request.text in prompt and "<|" not in prompt
    variants = backend.generate(hf_requests(4))
    assert all(v.text in ANSWERS for v in variants), variants


def test_hf_truncation_and_missing_dir(tiny_models, tmp_path):
    from components.variants.hf import HFBackend

    backend = HFBackend(tiny_models[0], max_new_tokens=1, temperature=0)  # no room for answer + EOS
    assert [(v.text, v.failure) for v in backend.generate(hf_requests(2))] == [(None, "truncated")] * 2
    with pytest.raises(FileNotFoundError):
        HFBackend(tmp_path / "nope")
