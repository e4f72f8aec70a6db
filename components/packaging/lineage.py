"""The lineage record (model card) of a package: which code, data and parameters made the models.

Input hashes are DVC's own (`md5`, `<md5>.dir` for directories), computed with dvc-data exactly as
`dvc repro` records them in dvc.lock, so a card can be matched against any commit's dvc.lock and
the inputs fetched back with `dvc checkout` / `dvc pull`.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import tempfile
from pathlib import Path


def dvc_hash(path: str | Path) -> str:
    """The hash DVC records for `path`: md5 of a file, `<md5>.dir` of a directory's listing."""
    from dvc_data.hashfile.build import build
    from dvc_data.hashfile.db import HashFileDB
    from dvc_objects.fs.local import LocalFileSystem

    from dvc.ignore import DvcIgnoreFilter

    fs, path = LocalFileSystem(), Path(path).resolve()
    # what .dvcignore excludes (run folders) is not part of DVC's hash either
    root = next((p for p in path.parents if (p / ".dvc").is_dir()), None)
    ignore = DvcIgnoreFilter(fs, str(root)) if root else None
    with tempfile.TemporaryDirectory() as tmp:  # dry_run writes nothing; the db is a formality
        _, _, obj = build(HashFileDB(fs, tmp), str(path), fs, "md5", dry_run=True, ignore=ignore)
    return obj.hash_info.value


def git_state(root: str | Path = ".") -> dict:
    """HEAD commit and whether tracked files differ from it; None outside a git checkout."""
    def git(*args):
        return subprocess.run(["git", *args], cwd=root, capture_output=True, text=True, check=True).stdout.strip()

    try:
        commit = git("rev-parse", "HEAD")
        dirty = bool(git("status", "--porcelain", "--untracked-files=no"))
    except (subprocess.CalledProcessError, FileNotFoundError):
        return {"commit": None, "dirty": None}
    return {"commit": commit, "dirty": dirty}


def model_card(inputs: dict[str, str | Path], params: dict, versions: dict, metrics_file: str | Path | None,
               index_counts: dict, root: str | Path = ".") -> dict:
    """Everything a reader needs to trace the served models. Deterministic given code, inputs and
    params (no clock): it is a DVC output. `version` names the package: git commit + inputs digest."""
    hashes = {name: {"path": str(path), "md5": dvc_hash(path)} for name, path in sorted(inputs.items())}
    metrics = None
    if metrics_file and Path(metrics_file).exists():  # the evaluate stage has run
        metrics = json.loads(Path(metrics_file).read_text())
        hashes["evaluation"] = {"path": str(Path(metrics_file).parent), "md5": dvc_hash(Path(metrics_file).parent)}
    params_hash = hashlib.sha256(json.dumps(params, sort_keys=True).encode()).hexdigest()[:12]
    git = git_state(root)
    digest = hashlib.sha256(json.dumps([hashes, params_hash], sort_keys=True).encode()).hexdigest()[:10]
    commit = (git["commit"] or "nogit")[:12]
    return {
        "version": f"{commit}-{digest}{'-dirty' if git['dirty'] else ''}",
        "git": git,
        "inputs": hashes,
        "params_hash": params_hash,
        "params": params,
        "models": versions,
        "index": index_counts,
        "evaluation": metrics,
    }
