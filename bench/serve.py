"""Served throughput vs in-process encoding, with the batches BentoML's adaptive batcher formed.

    python bench/serve.py [--clients 32] [--requests 512] [--images 128]
    python bench/serve.py --hidden 768 --layers 12 --vision-model ViT-B-16 --image-size 224 --requests 128 --images 64

Models: a random LLM2VEC4CXR of the params.yaml demo size (encoder.pretrain) and a CXRClip of the
params.yaml clip section (vision model, image size, embed dim) on top of it, packaged exactly as
`cxr package` does into a temporary BentoML store, then served by a real `bentoml serve` on
127.0.0.1 (one worker, params.yaml serve limits, its forward passes at the in-process best batch sizes
found in the same run, and the request timeout as max_latency_ms so that 32 queued requests to a big
model are not shed). Inputs: synthetic reports; DICOMs of a small synthetic archive (decoded per
request, as in production).

/embed_text: `--clients` concurrent clients, one text per request (`--per-request` for more), against
`TextEncoder.encode` at its best batch size in the same run; /embed_image the same against
`CXRClip.encode_image` on the same DICOM bytes. `ratio` = served / in-process items per second (goal
>= 0.8). Latency p50 / p99 per request; CPU milliseconds per request spent by the server and by the
clients (they share the machine); requests merged per model call from the server's
`bentoml_service_adaptive_batch_size` histogram, and the library's rate when handed the same merged
batches in arrival order (`in_process_in_merged_batches`: what arrival order costs, apart from the
server's own cost). Prints one JSON document.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def build_package(work: Path, n_reports: int, n_images: int, scale: dict) -> tuple:
    """Demo-size models + index + card in `work`, saved to the BentoML store (BENTOML_HOME)."""
    import pandas as pd
    import torch

    from components.clip.model import ClipModelConfig, CXRClip
    from components.clip.preprocess import load_frame
    from components.encoder.config import EncoderConfig
    from components.encoder.pretrain import build_lm, train_tokenizer
    from components.encoder.text_encoder import TextEncoder
    from components.io import write_json
    from components.packaging.index import build_index
    from components.packaging.lineage import model_card
    from components.params import SynthParams, load_params
    from components.synth.generate import generate
    from serving.bento import save_models

    sys.path.insert(0, str(ROOT / "bench"))
    from encode import reports  # the encoder benchmark's synthetic reports

    torch.manual_seed(0)
    params = load_params(ROOT / "params.yaml")
    demo = params.encoder.pretrain
    size = demo.size.model_copy(update={k: scale[k] for k in ("hidden", "layers") if scale[k]})
    if scale["hidden"]:  # keep the demo's head width and MLP ratio
        size = size.model_copy(update={"heads": size.hidden // 32, "kv_heads": size.hidden // 32,
                                       "intermediate": int(size.hidden * 2.6875)})
    texts = reports(n_reports)
    tokenizer = train_tokenizer(texts, demo.vocab_size)
    encoder = TextEncoder.from_backbone(build_lm(size, tokenizer), EncoderConfig(max_length=demo.max_length),
                                        tokenizer=tokenizer)
    encoder.save(work / "encoder")
    encoder = TextEncoder.load(work / "encoder")
    c = getattr(params, "clip", None) or ClipModelConfig()  # the params.yaml clip section (its demo profile)
    clip = CXRClip(ClipModelConfig(vision_model=scale["vision_model"] or c.vision_model,
                                   image_size=scale["image_size"] or c.image_size, embed_dim=c.embed_dim,
                                   decode_resolution=params.ingest.resolution), encoder)
    clip.save(work / "clip")
    clip = CXRClip.load(work / "clip")

    table = pd.DataFrame({"study_id": [f"s{i:05d}" for i in range(len(texts))], "split": "train", "text": texts})
    table.to_parquet(work / "reports.parquet")
    shape = build_index(table, encoder, clip, work / "package" / "index")
    card = model_card({"text_encoder": work / "encoder", "clip": work / "clip", "clean_reports": work / "reports.parquet"},
                      {"bench": True}, {"text_encoder": {"content_hash": encoder.content_hash()}}, None, shape,
                      root=ROOT)
    write_json(work / "package" / "model_card.json", card)
    save_models(work / "encoder", work / "clip", work / "package")

    synth = SynthParams(out=str(work / "raw"), metrics=str(work / "synth.json"), n_studies=max(8, n_images // 2),
                        workers=1)
    generate(synth, progress=False)
    dicoms = []
    for path in sorted((work / "raw").rglob("*.dcm")):
        try:
            load_frame(path)
            dicoms.append(path.read_bytes())
        except ValueError:
            continue  # the archive plants corrupt and truncated files
    images = [dicoms[i % len(dicoms)] for i in range(n_images)]
    return encoder, clip, card["version"], texts, images


def best_in_process(fn, items, batch_sizes) -> dict:
    """Items per second at each batch size (best of two passes) and the best of them."""
    fn(items[:8], 8)  # warm-up
    rates = {}
    for b in batch_sizes:
        best = float("inf")
        for _ in range(2):
            start = time.perf_counter()
            fn(items, b)
            best = min(best, time.perf_counter() - start)
        rates[b] = len(items) / best
    top = max(rates, key=rates.get)
    return {"per_s": round(rates[top], 1), "best_batch_size": top, "by_batch_size": {k: round(v, 1) for k, v in rates.items()}}


def in_chunks(fn, items, chunk: int, batch_size: int) -> float:
    """Items per second when the library gets the items `chunk` at a time (as the server's merged
    batches hand them over, in arrival order) instead of all at once."""
    start = time.perf_counter()
    for i in range(0, len(items), chunk):
        fn(items[i:i + chunk], batch_size)
    return round(len(items) / (time.perf_counter() - start), 1)


def serve(version: str, work: Path, batch_sizes: dict) -> tuple[subprocess.Popen, str, dict]:
    """A real `bentoml serve` of the package, its forward passes set to the in-process best batch
    sizes (serve.text_batch_size / image_batch_size in a copy of params.yaml)."""
    import httpx
    import yaml

    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    # 32 closed-loop clients queue 32 requests: with a big model on CPU that exceeds the default
    # max_latency_ms, and the batcher would shed them (503); give it the request timeout instead.
    params["serve"].update(batch_sizes, max_latency_ms=params["serve"]["timeout_s"] * 1000)
    settings = {k: params["serve"][k] for k in ("text_batch_size", "image_batch_size", "max_batch_size", "max_latency_ms")}
    (work / "params.yaml").write_text(yaml.safe_dump(params))
    log = work / "serve.log"
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {**os.environ, "CXR_PACKAGE_VERSION": version, "PYTHONPATH": str(ROOT), "CXR_PARAMS": str(work / "params.yaml")}
    with open(log, "wb") as out:
        proc = subprocess.Popen([str(Path(sys.executable).with_name("bentoml")), "serve", "serving.service:CXRService",
                                 "--host", "127.0.0.1", "--port", str(port)], cwd=ROOT, env=env,
                                stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"bentoml serve exited:\n{log.read_text()[-3000:]}")
        try:
            if httpx.get(f"{url}/readyz", timeout=2).status_code == 200:
                return proc, url, settings
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    os.killpg(proc.pid, signal.SIGTERM)
    raise RuntimeError(f"server not ready in 600 s:\n{log.read_text()[-3000:]}")


def cpu_seconds(proc: subprocess.Popen) -> float:
    """CPU time of the server: `bentoml serve` and its worker processes."""
    import psutil

    root = psutil.Process(proc.pid)
    return sum(sum(p.cpu_times()[:2]) for p in [root, *root.children(recursive=True)])


def hammer(url: str, requests: list[dict], clients: int, server: subprocess.Popen, items: int) -> dict:
    """Send every request from `clients` threads (one keep-alive connection each): items per second,
    latency per request, and the CPU the server and the clients spent per request."""
    import httpx

    def worker(chunk):
        out = []
        with httpx.Client(base_url=url, timeout=120) as client:
            for req in chunk:
                start = time.perf_counter()
                r = client.post(**req)
                out.append((time.perf_counter() - start, r.status_code))
        return out

    chunks = [requests[i::clients] for i in range(clients)]
    server_cpu, client_cpu, start = cpu_seconds(server), time.process_time(), time.perf_counter()
    with ThreadPoolExecutor(clients) as pool:
        results = [x for part in pool.map(worker, chunks) for x in part]
    wall = time.perf_counter() - start
    server_cpu, client_cpu = cpu_seconds(server) - server_cpu, time.process_time() - client_cpu
    latencies = np.array([t for t, _ in results]) * 1000
    errors = sum(code != 200 for _, code in results)
    ok = len(results) - errors
    return {"per_s": round(ok * items / wall, 1), "p50_ms": round(float(np.percentile(latencies, 50)), 1),
            "p99_ms": round(float(np.percentile(latencies, 99)), 1), "errors": errors,
            "cpu_ms_per_request": {"server": round(server_cpu / len(requests) * 1000, 2),
                                   "clients": round(client_cpu / len(requests) * 1000, 2)}}


def batch_histogram(url: str, method: str) -> dict:
    """How many requests each model call merged (mean, and the histogram buckets the server recorded)."""
    import httpx

    lines = [x for x in httpx.get(f"{url}/metrics").text.splitlines()
             if x.startswith("bentoml_service_adaptive_batch_size") and f'method_name="{method}"' in x]
    value = lambda name: sum(float(x.rsplit(" ", 1)[1]) for x in lines if x.startswith(name))  # noqa: E731
    count, total = value("bentoml_service_adaptive_batch_size_count"), value("bentoml_service_adaptive_batch_size_sum")
    buckets = {x.split('le="')[1].split('"')[0]: float(x.rsplit(" ", 1)[1]) for x in lines if "_bucket" in x}
    return {"merged_calls": int(count), "mean_requests_per_call": round(total / count, 2) if count else None,
            "cumulative_buckets": buckets}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--requests", type=int, default=512)
    parser.add_argument("--images", type=int, default=128)
    # A client embedding a corpus sends many items per request: the per-request cost is then shared.
    parser.add_argument("--per-request", type=int, default=1, help="texts / images per request (default 1)")
    # Model size (default: the params.yaml demo). At the demo size a text costs ~2 ms, so the per-request
    # HTTP cost dominates; a bigger model shows the server's share when compute dominates.
    parser.add_argument("--hidden", type=int, default=0, help="text encoder width (default: demo)")
    parser.add_argument("--layers", type=int, default=0, help="text encoder layers (default: demo)")
    parser.add_argument("--vision-model", default="", help="open_clip config, e.g. ViT-B-16 (default: demo)")
    parser.add_argument("--image-size", type=int, default=0, help="vision input pixels (default: demo)")
    args = parser.parse_args()
    scale = {"hidden": args.hidden, "layers": args.layers, "vision_model": args.vision_model,
             "image_size": args.image_size}
    with tempfile.TemporaryDirectory(prefix="cxr-bench-serve-") as tmp:
        os.environ["BENTOML_HOME"] = str(Path(tmp) / "bentoml")
        os.environ.setdefault("BENTOML_DO_NOT_TRACK", "True")
        encoder, clip, version, texts, images = build_package(Path(tmp), args.requests, args.images, scale)
        sizes = [1, 8, 16, 32, 64]
        text_local = best_in_process(lambda x, b: encoder.encode(x, batch_size=b), texts, sizes)
        image_local = best_in_process(lambda x, b: clip.encode_image(x, batch_size=b), images, sizes)
        best = {"text_batch_size": text_local["best_batch_size"], "image_batch_size": image_local["best_batch_size"]}
        proc, url, settings = serve(version, Path(tmp), best)
        n = args.per_request
        text_requests = [{"url": "/embed_text", "json": {"texts": texts[i:i + n]}} for i in range(0, len(texts), n)]
        image_requests = [{"url": "/embed_image", "files": [("images", ("x.dcm", b, "application/dicom"))
                                                            for b in images[i:i + n]]}
                          for i in range(0, len(images), n)]
        try:
            hammer(url, text_requests[:64], args.clients, proc, n)  # warm-up, as the in-process side had
            text_served = hammer(url, text_requests, args.clients, proc, n)
            text_batches = batch_histogram(url, "embed_text")
            hammer(url, image_requests[:64], args.clients, proc, n)
            image_served = hammer(url, image_requests, args.clients, proc, n)
            image_batches = batch_histogram(url, "embed_image")
        finally:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(timeout=60)
    # The library on the same merged batches the server formed: what is lost to arrival order (a
    # merged batch sorts only its own texts by length) vs what the server itself costs.
    merged = {name: max(1, round((b["mean_requests_per_call"] or 1) * n)) for name, b in
              (("text", text_batches), ("image", image_batches))}
    text_merged = in_chunks(lambda x, b: encoder.encode(x, batch_size=b), texts, merged["text"], best["text_batch_size"])
    image_merged = in_chunks(lambda x, b: clip.encode_image(x, batch_size=b), images, merged["image"],
                             best["image_batch_size"])
    print(json.dumps({
        "machine": {"cpus": os.cpu_count(), "load_average_1min": os.getloadavg()[0]},
        "clients": args.clients, "items_per_request": n, "model_scale": {k: v or "demo" for k, v in scale.items()},
        "server_settings": settings,
        "embed_text": {"requests": len(texts), "served": text_served, "in_process": text_local,
                       "ratio": round(text_served["per_s"] / text_local["per_s"], 3), "batches": text_batches,
                       "in_process_in_merged_batches": {"items": merged["text"], "per_s": text_merged,
                                                        "served_ratio": round(text_served["per_s"] / text_merged, 3)}},
        "embed_image": {"requests": len(images), "served": image_served, "in_process": image_local,
                        "ratio": round(image_served["per_s"] / image_local["per_s"], 3), "batches": image_batches,
                        "in_process_in_merged_batches": {"items": merged["image"], "per_s": image_merged,
                                                         "served_ratio": round(image_served["per_s"] / image_merged, 3)}},
    }, indent=2))


if __name__ == "__main__":
    main()
