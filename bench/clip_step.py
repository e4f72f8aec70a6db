"""CLIP training speed at the demo size: cached vs online text mode, loader vs training throughput.

    python bench/clip_step.py [--studies 256] [--steps 20]

A synthetic project is written to a temp dir in the layouts the stage reads (ingest image shard at
ingest.resolution, clean reports with sections, accepted equivalent variants) with synthetic reports,
plus a random LLM2VEC4CXR-shaped encoder of the params.yaml demo size (encoder.pretrain). The real
stage (`train_clip`, params.yaml's clip section: tower, image size, batch, workers) then runs `--steps`
and 3 x `--steps` steps in each text mode (online: a third of those); s/step is the difference of the
two runs' loop times over the difference in steps, so start-up (loader workers, first-step allocation,
the final validation) cancels out.
The DataLoader alone (same dataset, workers, batches) is timed over the same number of batches.
Goals: cached >= 5x faster per step than online; loader >= 3x the training images/s. Prints one JSON.
"""

from __future__ import annotations

import argparse
import json
import resource
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from components.params import IngestParams, load_params
from components.reports.normalize import normalize_report
from components.reports.sections import parse_sections
from components.synth.corpus import synthetic_corpus


def write_project(root: Path, n: int, resolution: int, seed: int = 0) -> None:
    texts = [normalize_report(text) for _, text, _ in synthetic_corpus(n, seed)]
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:resolution, 0:resolution] / resolution
    frames = [np.clip(128 + 60 * np.sin(6 * xx + rng.uniform(0, 6)) * np.cos(4 * yy) + rng.normal(0, 10, xx.shape),
                      0, 255).astype(np.uint8) for _ in range(n)]
    (root / "ingested" / "images").mkdir(parents=True)
    np.save(root / "ingested" / "images" / "shard-00000.npy", np.stack(frames))
    ids = [f"{50000000 + i}" for i in range(n)]
    splits = ["val" if i % 10 == 0 else "train" for i in range(n)]
    pd.DataFrame({"image_id": [f"img{i}" for i in range(n)], "study_id": ids, "shard": "shard-00000.npy",
                  "index": np.arange(n, dtype=np.int32)}).to_parquet(root / "ingested" / "images.parquet")
    sections = [parse_sections(t).sections for t in texts]
    (root / "clean").mkdir()
    pd.DataFrame({"study_id": ids, "split": splits, "text": texts, "findings": [s.get("findings") for s in sections],
                  "impression": [s.get("impression") for s in sections]}).to_parquet(root / "clean" / "reports.parquet")
    (root / "variants").mkdir()
    pd.DataFrame({"study_id": ids * 2, "kind": ["shuffle"] * n + ["error"] * n, "valid": True,
                  "text": [" ".join(reversed(t.split(". "))) for t in texts] + [t.replace("left", "right") for t in texts]}
                 ).to_parquet(root / "variants" / "variants.parquet")
    write_encoder(root / "encoder", texts)


def write_encoder(out: Path, texts: list[str]) -> None:
    from components.encoder.config import EncoderConfig
    from components.encoder.pretrain import build_lm, train_tokenizer
    from components.encoder.text_encoder import TextEncoder

    demo, contrastive = load_params().encoder.pretrain, load_params().encoder.contrastive
    tokenizer = train_tokenizer(texts, demo.vocab_size)
    config = EncoderConfig(max_length=contrastive.max_length, instruction=contrastive.instruction)
    TextEncoder.from_backbone(build_lm(demo.size, tokenizer), config, tokenizer=tokenizer).save(out)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--studies", type=int, default=256)
    ap.add_argument("--steps", type=int, default=20)
    args = ap.parse_args()
    params = load_params()
    demo, resolution = params.clip, params.ingest.resolution
    with tempfile.TemporaryDirectory(prefix="clip-bench-") as tmp:
        root = Path(tmp)
        write_project(root, args.studies, resolution)
        result = {"studies": args.studies, "steps": args.steps, "batch_size": demo.loop.batch_size,
                  "image_size": demo.image_size, "vision_model": demo.vision_model, "workers": demo.workers,
                  "frame_resolution": resolution}
        from components.clip.train import train_clip

        for mode in ("cached", "online"):
            few = args.steps if mode == "cached" else max(2, args.steps // 3)
            timings = {}
            for steps in (few, 3 * few):
                p = demo.model_copy(update={
                    "ingest": str(root / "ingested"), "clean": str(root / "clean"), "variants": str(root / "variants"),
                    "embeddings": str(root / "none"), "encoder": str(root / "encoder"), "cache": str(root / "cache"),
                    "out": str(root / mode), "metrics": str(root / f"{mode}.json"), "curve": str(root / f"{mode}-c.json"),
                    "text_mode": mode, "text_tower": "llm2vec4cxr", "eval_every": 0, "grid_images": 0,
                    "loop": demo.loop.model_copy(update={"steps": steps, "checkpoint_every": 0, "progress": False})})
                start = time.perf_counter()
                timings[steps] = (train_clip(p, IngestParams(resolution=resolution))["seconds"],
                                  time.perf_counter() - start)
            s = (timings[3 * few][0] - timings[few][0]) / (2 * few)
            result[mode] = {"s_per_step": round(s, 4), "train_images_per_s": round(p.loop.batch_size / s, 1),
                            "stage_seconds": {str(k): round(v[1], 1) for k, v in timings.items()}}
        result["cached_speedup"] = round(result["online"]["s_per_step"] / result["cached"]["s_per_step"], 2)
        result["loader_images_per_s"] = loader_throughput(demo, root, args.steps)
        result["loader_vs_training"] = round(result["loader_images_per_s"] / result["cached"]["train_images_per_s"], 2)
    self_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    child_kb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    result["peak_rss_mb"] = {"main": round(self_kb / 1024, 1), "largest_worker": round(child_kb / 1024, 1)}
    print(json.dumps(result, indent=2))


def loader_throughput(p, root: Path, steps: int) -> float:
    """Images/s of the stage's DataLoader alone (decode from the mmap shard, augment, collate)."""
    from components.clip.data import ClipDataset, ImageSpec, TextSampling, load_studies, loader
    from components.training.sampler import StepSampler

    studies, _ = load_studies(root / "ingested", root / "clean", root / "variants", "train")
    dataset = ClipDataset(studies, root / "ingested", ImageSpec(p.image_size, tuple(p.mean), tuple(p.std)),
                          TextSampling(p.variant_rate, dict(p.sections), p.shuffle_rate), seed=0)
    batch = p.loop.batch_size
    it = iter(loader(dataset, StepSampler(len(dataset), batch), 0, steps + 3, 1, p.workers))
    for _ in range(3):  # worker start-up is not throughput
        next(it)
    start = time.perf_counter()
    n = sum(len(b["items"]) for b in it)
    return round(n / (time.perf_counter() - start), 1)


if __name__ == "__main__":
    main()
