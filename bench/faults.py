"""The fault matrix: SIGKILL each stage at several points, then rerun it.

    python bench/faults.py [--studies 48] [--stages ingest clean variants encoder]

For each stage: one uninterrupted reference run, then per kill point a fresh run killed with
SIGKILL at that point (when its workers exist, when its temp output exists, or at a fraction of the
reference's duration), then a rerun to completion. Recorded per point: whether the kill landed,
workers that outlived their parent (orphans), what the killed run left beside its output, whether
the rerun removed it, and whether the rerun's output equals the reference (byte for byte except
timings; training metrics within 5%). Prints one JSON document.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from tests.conftest import small_params_tree  # noqa: E402
from tests.fault_harness import (  # noqa: E402
    CXR, VOLATILE, after, differences, has_workers, kill_when, leftovers, temp_exists)


def _metrics_close(a: Path, b: Path, rel: float = 0.05) -> bool:
    x, y = json.loads(a.read_text()), json.loads(b.read_text())

    def close(u, v):
        if isinstance(u, dict):
            return u.keys() == v.keys() and all(close(u[k], v[k]) for k in u if k not in VOLATILE)
        if isinstance(u, (int, float)) and isinstance(v, (int, float)):
            return abs(u - v) <= rel * max(abs(u), abs(v), 1e-9) or abs(u - v) < 1e-6
        return True  # strings, timings: not compared
    return close(x, y)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--studies", type=int, default=48)
    ap.add_argument("--stages", nargs="+", default=["ingest", "clean", "variants", "encoder"])
    args = ap.parse_args()
    root = Path(tempfile.mkdtemp(prefix="cxr-faults-"))
    env = {"PYTHONPATH": str(REPO)}
    tree = small_params_tree(root)
    tree["synth"]["n_studies"] = args.studies
    tree["ingest"]["workers"] = 2
    tree["clean"]["workers"] = 2
    params = root / "params.yaml"
    params.write_text(yaml.safe_dump(tree, sort_keys=False))
    base = [*CXR]
    subprocess.run([*base, "synth", "--params", str(params)], env={**os.environ, **env}, check=True,
                   capture_output=True)
    subprocess.run([*base, "ingest", "--params", str(params)], env={**os.environ, **env}, check=True,
                   capture_output=True)
    subprocess.run([*base, "clean", "--params", str(params)], env={**os.environ, **env}, check=True,
                   capture_output=True)
    subprocess.run([*base, "variants", "--params", str(params)], env={**os.environ, **env}, check=True,
                   capture_output=True)

    def command(stage: str, out: Path, tag: str) -> list[str]:
        p = ["--params", str(params)]
        if stage == "ingest":
            return [*base, "ingest", *p, "--out", str(out)]
        if stage == "clean":
            return [*base, "clean", *p, "--out", str(out)]
        if stage == "variants":
            return [*base, "variants", *p, "--out", str(out), "--set", f"variants.cache={root / f'cache-{tag}.db'}"]
        return [*base, "encoder", "train", *p, "--set", f"encoder.out={out}",
                "--set", f"encoder.steps_dir={out}-steps", "--set", f"encoder.metrics={out}-metrics.json",
                "--set", f"encoder.loss_plot={out}-loss.json"]

    results = {}
    for stage in args.stages:
        ref = root / f"{stage}-ref"
        t0 = time.monotonic()
        subprocess.run(command(stage, ref, "ref"), env={**os.environ, **env}, check=True, capture_output=True)
        t_ref = time.monotonic() - t0
        points = {"workers_started": has_workers, "temp_output_exists": None,
                  "at_25pct": 0.25, "at_50pct": 0.5, "at_90pct": 0.9}
        rows = {}
        for name, point in points.items():
            out = root / f"{stage}-{name}"
            cmd = command(stage, out, name)
            ready = (temp_exists(out) if point is None else after(point * t_ref) if isinstance(point, float)
                     else point)
            kill = kill_when(cmd, ready, env=env, timeout=t_ref * 3 + 30)
            left = leftovers(out) + ([f"{out.name}-steps"] if Path(f"{out}-steps").exists() else [])
            t1 = time.monotonic()
            rerun = subprocess.run(cmd, env={**os.environ, **env}, capture_output=True, text=True)
            row = {"killed": kill["killed"], "after_s": kill.get("after_s"), "workers": kill.get("workers", 0),
                   "orphans": len(kill.get("orphans", [])), "left_behind": left,
                   "rerun_ok": rerun.returncode == 0, "rerun_s": round(time.monotonic() - t1, 2),
                   "left_after_rerun": leftovers(out)}
            if stage == "encoder":
                row["equal_to_uninterrupted"] = rerun.returncode == 0 and _metrics_close(
                    Path(f"{out}-metrics.json"), Path(f"{ref}-metrics.json"))
            else:
                row["differences"] = differences(out, ref) if rerun.returncode == 0 else ["rerun failed"]
                row["equal_to_uninterrupted"] = row["differences"] == []
            rows[name] = row
        results[stage] = {"uninterrupted_s": round(t_ref, 2), "kills": rows}
    shutil.rmtree(root, ignore_errors=True)
    print(json.dumps({"machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                                  "note": "shared machine, loaded by other jobs: timings are indicative"},
                      "studies": args.studies, "stages": results}, indent=2))


if __name__ == "__main__":
    main()
