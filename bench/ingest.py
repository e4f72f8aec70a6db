"""Ingest decoding throughput against a bare pydicom read of the same files, and 1 -> 2 worker scaling.

    python bench/ingest.py [--sizes 512 2048] [--studies 120 40] [--repeats 3]

For each image size it writes a synthetic archive (no traps), then times, over the same DICOM
files in the same process:
  bare    pydicom.dcmread(f).pixel_array
  decode  components.ingest.decode.decode: modality + VOI LUT, MONOCHROME1, percentile stretch,
          resize + pad, header audit, hash (what ingest does per image)
and the whole `ingest` stage with 1 and 2 worker processes. Files are read once beforehand so the
page cache serves both sides. Prints one JSON document.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from pathlib import Path

import pydicom

from components.ingest.decode import DecodeConfig, decode
from components.ingest.run import ingest
from components.params import IngestParams, SynthParams, SynthTraps
from components.synth.generate import generate


def _best_rate(fn, files, repeats: int) -> float:
    """Images per second, best of `repeats` passes (the least disturbed by other load)."""
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        for f in files:
            fn(f)
        best = min(best, time.perf_counter() - start)
    return len(files) / best


def bench_size(size: int, n_studies: int, repeats: int, root: Path) -> dict:
    no_traps = SynthTraps(**{k: 0.0 for k in SynthTraps.model_fields})
    synth = SynthParams(n_studies=n_studies, image_size=size, traps=no_traps, lateral_rate=0.0,
                        out=str(root / f"raw{size}"), metrics=str(root / f"synth{size}.json"))
    generate(synth, progress=False)
    files = sorted(Path(synth.out).rglob("*.dcm"))
    for f in files:  # warm the page cache
        f.read_bytes()
    cfg = DecodeConfig(resolution=256)
    bare = _best_rate(lambda f: pydicom.dcmread(f).pixel_array, files, repeats)
    ours = _best_rate(lambda f: decode(f, cfg), files, repeats)

    stage = {}
    for workers in (1, 2):
        params = IngestParams(input=synth.out, out=str(root / f"ing{size}-{workers}"), workers=workers,
                              metrics=str(root / f"ing{size}-{workers}.json"))
        runs = [ingest(params, progress=False) for _ in range(repeats)]
        stage[workers] = max(r["images_per_second"] for r in runs)
    first = pydicom.dcmread(files[0])
    return {
        "image_size": size, "files": len(files), "rows_x_cols": [first.Rows, first.Columns],
        "bare_pydicom_images_per_s": round(bare, 1), "decode_images_per_s": round(ours, 1),
        "ratio_decode_to_bare": round(ours / bare, 3), "goal_ratio": 0.7,
        "ingest_stage_images_per_s": {"1_worker": stage[1], "2_workers": stage[2]},
        "scaling_1_to_2_workers": round(stage[2] / stage[1], 2),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[512, 2048])
    ap.add_argument("--studies", type=int, nargs="+", default=[120, 40],
                    help="studies per size (rendering 2048 px phantoms takes ~1 s each)")
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        results = [bench_size(s, n, args.repeats, Path(tmp)) for s, n in zip(args.sizes, args.studies)]
    print(json.dumps({"benchmark": "ingest", "cpu_count": os.cpu_count(), "python": platform.python_version(),
                      "results": results}, indent=2))


if __name__ == "__main__":
    main()
