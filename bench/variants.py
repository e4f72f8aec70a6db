"""Variant backend throughput: the OpenAI-compatible client's concurrency, and the rules backend.

    python bench/variants.py [--requests 64] [--delay-ms 50] [--reports 300] [--seed 0]

(a) openai: a chat-completions server started here on 127.0.0.1 answers every request after a
    fixed delay (a stand-in for model latency); the same requests run at concurrency 1 and 16.
    Goal: ratio of requests/s >= 8.
(b) rules: `components.variants.rules_backend.RulesBackend` over every kind and error category of
    synthetic clean reports, in this process pinned to one core; "unavailable" until it exists.
Prints one JSON document.
"""

from __future__ import annotations

import argparse
import json
import os
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np

from components.params import SynthParams
from components.reports.normalize import normalize_report
from components.synth.report_writer import render_report
from components.synth.truth import sample_truth
from components.variants.base import EQUIVALENT_KINDS, ERROR_CATEGORIES, ERROR_KIND, VariantRequest
from components.variants.openai_backend import OpenAIBackend


def reports(n: int, seed: int) -> list[str]:
    cfg = SynthParams()
    return [normalize_report(render_report(sample_truth(i, i, seed, cfg), np.random.default_rng([seed, i, 1]), cfg.noise))
            for i in range(n)]


def requests_for(texts: list[str]) -> list[VariantRequest]:
    kinds = [(k, None) for k in EQUIVALENT_KINDS] + [(ERROR_KIND, c) for c in ERROR_CATEGORIES]
    return [VariantRequest(f"s{i}", text, kind, category, seed=i)
            for i, text in enumerate(texts) for kind, category in kinds]


def delayed_server(delay_s: float) -> ThreadingHTTPServer:
    """A chat-completions endpoint that answers with the prompt's last line after `delay_s`."""

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive, as vLLM serves
        disable_nagle_algorithm = True  # headers and body go out in two writes: no 40 ms delayed-ACK stall

        def do_POST(self):
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            time.sleep(delay_s)
            content = "rewritten: " + body["messages"][-1]["content"].strip().rsplit("\n", 1)[-1]
            data = json.dumps({"choices": [{"message": {"role": "assistant", "content": content},
                                            "finish_reason": "stop"}]}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args):
            pass

    class Server(ThreadingHTTPServer):
        daemon_threads = True
        request_queue_size = 128  # the default listen backlog (5) drops connects at concurrency 16

    server = Server(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def bench_openai(n: int, delay_ms: float, seed: int) -> dict:
    per_report = len(EQUIVALENT_KINDS) + len(ERROR_CATEGORIES)
    requests = requests_for(reports(-(-n // per_report), seed))[:n]
    server = delayed_server(delay_ms / 1000)
    url = f"http://127.0.0.1:{server.server_address[1]}/v1"
    out = {"requests": n, "server_delay_ms": delay_ms}
    try:
        for concurrency in (1, 16):
            backend = OpenAIBackend(url, "bench", concurrency=concurrency, timeout_s=10)
            start = time.perf_counter()
            variants = backend.generate(requests)
            seconds = time.perf_counter() - start
            failures = sum(v.failure is not None for v in variants)
            out[f"concurrency_{concurrency}"] = {"seconds": round(seconds, 3), "requests_per_s": round(n / seconds, 1),
                                                 "failures": failures}
    finally:
        server.shutdown()
        server.server_close()
    ratio = out["concurrency_16"]["requests_per_s"] / out["concurrency_1"]["requests_per_s"]
    out.update(ratio=round(ratio, 2), goal_ratio=8, meets_goal=ratio >= 8)
    return out


def bench_rules(n_reports: int, seed: int) -> dict | str:
    try:
        from components.variants.rules_backend import RulesBackend
    except ImportError:
        return "unavailable"
    if hasattr(os, "sched_setaffinity"):  # one core, whatever the machine: a per-worker figure
        os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})
    requests = requests_for(reports(n_reports, seed))
    backend = RulesBackend()
    backend.generate(requests[:len(EQUIVALENT_KINDS) + len(ERROR_CATEGORIES)])  # warm-up: imports, regexes
    start = time.perf_counter()
    variants = backend.generate(requests)
    seconds = time.perf_counter() - start
    produced = sum(v.text is not None for v in variants)
    failures: dict[str, int] = {}
    for v in variants:
        if v.text is None:
            failures[v.failure or "none"] = failures.get(v.failure or "none", 0) + 1
    return {"requests": len(requests), "seconds": round(seconds, 3), "requests_per_s": round(len(requests) / seconds, 1),
            "variants_per_s": round(produced / seconds, 1), "produced": produced, "failures": failures}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--requests", type=int, default=64)
    ap.add_argument("--delay-ms", type=float, default=50.0)
    ap.add_argument("--reports", type=int, default=300)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    result = {"openai": bench_openai(args.requests, args.delay_ms, args.seed),
              "rules": bench_rules(args.reports, args.seed)}
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
