"""Partitioned ingest against one run, on the same synthetic archive (demo size by default).

    python bench/partitioned_ingest.py [--studies 200] [--concurrent 2] [--workers 2]

In a scratch project (params.yaml of this repo, synth.n_studies = --studies, several files/pNN folders):
  single       `cxr ingest` with ingest.workers = --workers
  partitioned  the Dagster assets: `ingest_partition` materialized for every pNN folder, --concurrent runs
               at a time (as the run queue launches a backfill), each `cxr ingest --partition` with one
               worker; then `merged_ingest` (`cxr ingest merge`)
and whether the merged output equals the single one (every file, and DVC's hash). Synth is not timed.
Prints one JSON document.
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
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))  # this checkout's orchestration/ and components/


def cxr(root: Path, *args: str) -> float:
    start = time.perf_counter()
    subprocess.run([str(Path(sys.executable).with_name("cxr")), *args], cwd=root, check=True,
                   stdout=subprocess.DEVNULL)
    return time.perf_counter() - start


def same_files(a: Path, b: Path) -> bool:
    def files(d):
        return sorted(p.relative_to(d) for p in d.rglob("*") if p.is_file() and "_run" not in p.parts)
    return files(a) == files(b) and all((a / f).read_bytes() == (b / f).read_bytes() for f in files(a))


def main() -> None:
    from dagster import DagsterInstance, PipesSubprocessClient, materialize

    from components.packaging.lineage import dvc_hash
    from orchestration.partitions import build_partition_assets, partition_keys
    from orchestration.resources import CxrProject

    tree = yaml.safe_load((REPO / "params.yaml").read_text())
    parser = argparse.ArgumentParser()
    parser.add_argument("--studies", type=int, default=tree["synth"]["n_studies"])
    parser.add_argument("--concurrent", type=int, default=2, help="partition runs at a time")
    parser.add_argument("--workers", type=int, default=2, help="decoding processes of the single run")
    args = parser.parse_args()
    # The Pipes subprocesses (cxr) print their summaries on fd 1: send them to stderr, so that stdout
    # holds this benchmark's one JSON document.
    report_to = os.fdopen(os.dup(1), "w")
    os.dup2(2, 1)

    with tempfile.TemporaryDirectory(prefix="cxr-partitioned-") as tmp:
        root = Path(tmp)
        tree["synth"]["n_studies"] = args.studies
        (root / "params.yaml").write_text(yaml.safe_dump(tree))
        (root / ".dvc").mkdir()  # DVC's ignore rules (the run log) apply to the hashes compared
        shutil.copy(REPO / ".dvcignore", root / ".dvcignore")
        cxr(root, "synth")
        out = root / tree["ingest"]["out"]

        single_s = cxr(root, "ingest", "--workers", str(args.workers))
        single = out.with_name("single")
        out.rename(single)

        project = CxrProject(root=str(root))
        keys = partition_keys(project)
        assets = build_partition_assets(project)
        resources = {"pipes": PipesSubprocessClient(), "project": project}

        def run_partition(key: str) -> bool:
            with DagsterInstance.ephemeral() as instance:
                return materialize(assets, selection=["ingest_partition"], partition_key=key, instance=instance,
                                   resources=resources).success

        start = time.perf_counter()
        with ThreadPoolExecutor(args.concurrent) as pool:  # the work is in the Pipes subprocesses
            ok = all(pool.map(run_partition, keys))
        partitions_s = time.perf_counter() - start
        with DagsterInstance.ephemeral() as instance:
            ok = ok and materialize(assets, selection=["merged_ingest"], instance=instance, resources=resources).success
        total_s = time.perf_counter() - start

        report = {
            "studies": args.studies, "partitions": keys, "cpus": os.cpu_count(), "python": platform.python_version(),
            "single": {"workers": args.workers, "seconds": round(single_s, 2)},
            "partitioned": {"concurrent_runs": args.concurrent, "workers_per_partition": 1, "succeeded": ok,
                            "partitions_seconds": round(partitions_s, 2),
                            "merge_seconds": round(total_s - partitions_s, 2), "seconds": round(total_s, 2)},
            "speedup": round(single_s / total_s, 2),
            "merged_equals_single": ok and same_files(out, single),
            "dvc_hash": {"single": dvc_hash(single), "merged": dvc_hash(out) if ok else None},
        }
    print(json.dumps(report, indent=2), file=report_to, flush=True)


if __name__ == "__main__":
    main()
