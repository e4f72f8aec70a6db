"""How long DVC takes to find nothing to do: a no-op `dvc repro` and `dvc status` (issue 16: at most 5 s).

    python bench/dvc_noop.py [--project PATH] [--upto clean] [--repeat 3]

With --project, times that checkout as it stands (run `make demo` first for the demo's figure). Without it,
builds a small scratch project (git + DVC, the repo's dvc.yaml and components, small params), runs the
pipeline up to --upto once, then times the no-op commands. Prints one JSON document.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))


def _run(cmd: list[str], cwd: Path) -> str:
    result = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True)
    if result.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{result.stdout}\n{result.stderr}")
    return result.stdout


def scratch(root: Path, upto: str) -> Path:
    import yaml

    from tests.conftest import small_params_tree

    for name in ("dvc.yaml", ".dvcignore"):
        shutil.copy(REPO / name, root / name)
    shutil.copytree(REPO / "components", root / "components", ignore=shutil.ignore_patterns("__pycache__"))
    (root / "params.yaml").write_text(yaml.safe_dump(small_params_tree(Path("data")), sort_keys=False))
    for cmd in (["git", "init", "-q"], ["dvc", "init", "-q"], ["dvc", "config", "core.analytics", "false"]):
        _run(cmd, root)
    _run(["dvc", "repro", upto], root)
    return root


def timed(cmd: list[str], cwd: Path, repeat: int) -> list[float]:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        _run(cmd, cwd)
        times.append(round(time.perf_counter() - start, 2))
    return times


def main() -> None:
    import yaml

    parser = argparse.ArgumentParser()
    parser.add_argument("--project", type=Path)
    parser.add_argument("--upto", default="clean", help="scratch project: the last stage to run first")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="cxr-dvc-noop-") as tmp:
        root = args.project.resolve() if args.project else scratch(Path(tmp), args.upto)
        target = [] if args.project else [args.upto]
        repro_out = _run(["dvc", "repro", *target], root)
        lock = (root / "dvc.lock").read_text() if (root / "dvc.lock").exists() else ""
        result = {
            "project": str(args.project) if args.project else f"scratch, small params, up to {args.upto}",
            "stages_locked": len(yaml.safe_load(lock)["stages"]) if lock else 0,
            "noop": "didn't change" in repro_out or "up to date" in repro_out,
            "repro_seconds": timed(["dvc", "repro", *target], root, args.repeat),
            "status_seconds": timed(["dvc", "status", *target], root, args.repeat),
            "goal_seconds": 5.0,
        }
    result["repro_median"] = sorted(result["repro_seconds"])[len(result["repro_seconds"]) // 2]
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
