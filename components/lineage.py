"""What DVC recorded about each artifact: dvc.lock read back into a chain from an artifact to raw data.

dvc.lock is the one record of lineage, whichever door ran a stage (`dvc repro`, or a Dagster asset, which
runs the stage through DVC): per stage, the params values it read and the hashes of its deps and outs.
`cxr lineage PATH` walks it upstream from the stage that wrote PATH. Only yaml and git are needed here;
DVC itself is called (as a subprocess) just to say whether the workspace still matches the record.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import yaml

CODE_PREFIXES = ("components/", "serving/")  # deps under these are code (a stage's import graph), the rest data


def dvc_project(root: str | Path) -> bool:
    """A DVC project: `dvc init` was run and a dvc.yaml declares the stages."""
    root = Path(root)
    return (root / ".dvc").is_dir() and (root / "dvc.yaml").is_file()


def find_root(path: Path) -> Path:
    """The project holding `path`: the nearest folder above it with a dvc.yaml (else the current one)."""
    for folder in [path, *path.parents]:
        if (folder / "dvc.yaml").is_file():
            return folder
    return Path.cwd()


def load_lock(root: str | Path) -> dict:
    lock = Path(root) / "dvc.lock"
    if not lock.exists():
        raise FileNotFoundError(f"{lock} not found: no stage has been run through DVC here yet "
                                "(`dvc repro`, or materialize the assets in Dagster)")
    return yaml.safe_load(lock.read_text()).get("stages", {})


def _hash(entry: dict) -> str:
    return entry.get("md5") or entry.get("hash") or entry.get("etag") or ""


def outs_version(root: str | Path, stage: str, outs: list[str]) -> str | None:
    """The DVC hash of a stage's cached outputs (its Dagster data version), from dvc.lock: the out's own
    md5 when there is one out, else a hash over path:md5 pairs. None when DVC has not recorded the stage."""
    try:
        entry = load_lock(root).get(stage)
    except FileNotFoundError:
        return None
    if not entry:
        return None
    recorded = {_norm(o["path"]): _hash(o) for o in entry.get("outs", [])}
    wanted = [_norm(o) for o in outs]
    if not wanted or any(o not in recorded for o in wanted):
        return None
    if len(wanted) == 1:
        return recorded[wanted[0]]
    pairs = "\n".join(f"{o}:{recorded[o]}" for o in sorted(wanted))
    return hashlib.md5(pairs.encode()).hexdigest()


def _norm(path: str) -> str:
    return os.path.normpath(path).rstrip("/")


def _inside(path: str, out: str) -> bool:
    return path == out or path.startswith(out + "/")


def producer(lock: dict, path: str) -> tuple[str, dict] | None:
    """The stage (and its out entry) whose recorded outs hold `path`."""
    path = _norm(path)
    for name, entry in lock.items():
        for out in entry.get("outs", []):
            if _inside(path, _norm(out["path"])):
                return name, out
    return None


def upstream(lock: dict, path: str) -> list[str]:
    """The stages that made `path`: the one whose out holds it, or, for a folder dep, every stage with
    an out inside it (e.g. a folder of another stage's report files). Empty: raw data."""
    found = producer(lock, path)
    if found is not None:
        return [found[0]]
    path = _norm(path)
    return sorted({name for name, entry in lock.items()
                   for out in entry.get("outs", []) if _inside(_norm(out["path"]), path)})


def _member_hash(root: Path, out: dict, path: str) -> str | None:
    """A file inside a directory out: its md5 from the directory's manifest in the DVC cache."""
    digest = _hash(out)
    rel = os.path.relpath(path, _norm(out["path"]))
    if not digest.endswith(".dir") or rel == ".":
        return None
    manifest = root / ".dvc" / "cache" / "files" / "md5" / digest[:2] / digest[2:]
    if not manifest.exists():
        return None
    for item in json.loads(manifest.read_text()):
        if item.get("relpath") == rel:
            return item.get("md5")
    return None


def _flatten(tree: dict, prefix: str = "") -> dict:
    flat = {}
    for key, value in tree.items():
        if isinstance(value, dict) and value:
            flat.update(_flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def _git(root: Path, *args: str) -> str:
    try:
        result = subprocess.run(["git", *args], cwd=root, capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return ""
    return result.stdout.strip() if result.returncode == 0 else ""


def _stale(root: Path) -> dict | None:
    """`dvc status` of the whole project: stage -> what changed since dvc.lock was written (None: no DVC)."""
    own = Path(sys.executable).with_name("dvc")  # this environment's DVC, even off PATH
    dvc = own if own.exists() else Path("dvc")
    try:
        result = subprocess.run([str(dvc), "status", "--json"], cwd=root, capture_output=True, text=True,
                                timeout=300)
    except (OSError, subprocess.TimeoutExpired):
        return None
    if result.returncode != 0:
        return None
    try:
        return json.loads(result.stdout or "{}")
    except json.JSONDecodeError:
        return None


def trace(root: str | Path, path: str | Path, verify: bool = True, lock: dict | None = None,
          commit: str | None = None) -> dict:
    """The chain from `path` back to raw data: every stage it descends from (upstream first) with the
    params it read and the hashes of its data deps and outs; code deps summarised; git commit.
    `lock`/`commit`: trace a committed dvc.lock instead of the workspace's."""
    root = Path(root).resolve()
    rel = _relative(root, path)
    lock = load_lock(root) if lock is None else lock
    found = producer(lock, rel)
    if found is None:
        produced = sorted(o["path"] for e in lock.values() for o in e.get("outs", []))
        raise ValueError(f"{rel} is not an output recorded in dvc.lock; recorded outputs: {', '.join(produced)}")
    first, out = found

    order: list[str] = []
    sources: dict[str, str] = {}

    def visit(name: str) -> None:
        if name in order:
            return
        for dep in lock[name].get("deps", []):
            if dep["path"].startswith(CODE_PREFIXES):
                continue
            ups = upstream(lock, dep["path"])
            for up in ups:
                if up != name:
                    visit(up)
            if not ups:
                sources[dep["path"]] = _hash(dep)
        order.append(name)

    visit(first)
    stages = []
    for name in order:
        entry = lock[name]
        deps = entry.get("deps", [])
        code = [d for d in deps if d["path"].startswith(CODE_PREFIXES)]
        stages.append({
            "stage": name, "cmd": entry.get("cmd"),
            "params": _flatten({k: v for values in entry.get("params", {}).values() for k, v in values.items()}),
            "inputs": [{"path": d["path"], "md5": _hash(d),
                        "from": ", ".join(upstream(lock, d["path"])) or None} for d in deps if d not in code],
            "code": {"files": len(code),
                     "md5": hashlib.md5("".join(_hash(d) for d in code).encode()).hexdigest() if code else None},
            "outs": [{"path": o["path"], "md5": _hash(o)} for o in entry.get("outs", [])],
        })
    dirty = "" if commit else _git(root, "status", "--porcelain", "--", "dvc.lock", "params.yaml", "dvc.yaml",
                                   "components")
    result = {
        "artifact": rel, "stage": first, "out": {"path": out["path"], "md5": _hash(out)},
        "file_md5": _member_hash(root, out, rel),
        "git": {"commit": commit or _git(root, "rev-parse", "HEAD") or None, "uncommitted": bool(dirty),
                "uncommitted_files": dirty.splitlines()},
        "sources": sources, "stages": stages,
    }
    if verify and commit is None:
        status = _stale(root)
        result["workspace_matches_lock"] = None if status is None else not any(s in status for s in order)
        result["changed_since_lock"] = None if status is None else {s: status[s] for s in order if s in status}
    return result


def _relative(root: Path, path: str | Path) -> str:
    path = Path(path)
    return _norm(os.path.relpath(path.resolve() if path.is_absolute() else (root / path).resolve(), root))


def recorded_locks(root: str | Path):
    """(None, the workspace dvc.lock), then (commit, dvc.lock at that commit) for each commit that
    changed it, newest first."""
    try:
        yield None, load_lock(root)
    except FileNotFoundError:
        pass
    for commit in _git(Path(root), "log", "--format=%H", "--", "dvc.lock").split():
        text = _git(Path(root), "show", f"{commit}:dvc.lock")
        if text:
            yield commit, (yaml.safe_load(text) or {}).get("stages", {})


def trace_package(root: str | Path, card: dict, verify: bool = True) -> dict:
    """The lineage of a package from its model card (what a Bento carries): the stage that read exactly
    the card's inputs (path and DVC hash), found in the workspace dvc.lock or else in the newest
    commit's dvc.lock that has it, traced from that stage's output back to raw data."""
    root = Path(root).resolve()
    wanted = {_relative(root, entry["path"]): entry["md5"] for entry in card["inputs"].values()}
    for commit, lock in recorded_locks(root):
        for entry in lock.values():
            deps = {_norm(d["path"]): _hash(d) for d in entry.get("deps", [])}
            if entry.get("outs") and all(deps.get(path) == md5 for path, md5 in wanted.items()):
                # its folder, not a metrics file beside it (dvc.lock lists both as outs)
                main = next((o for o in entry["outs"] if _hash(o).endswith(".dir")), entry["outs"][0])
                result = trace(root, main["path"], verify, lock, commit)
                result["package"] = {"version": card["version"], "tag": card.get("tag"), "inputs": wanted,
                                     "recorded_in": f"dvc.lock at commit {commit}" if commit else "dvc.lock"}
                return result
    shown = ", ".join(f"{p} ({h})" for p, h in sorted(wanted.items()))
    raise ValueError(f"no dvc.lock in {root} (workspace or git history) records a stage that read this package's "
                     f"inputs {shown}: it was packaged in another checkout, or that dvc.lock was never committed")


def format_trace(t: dict) -> str:
    lines = []
    if t.get("package"):
        p = t["package"]
        lines.append(f"{p['tag'] or p['version']}  = package {p['version']}, built from the inputs that "
                     f"{p['recorded_in']} records for stage `{t['stage']}`:")
    lines.append(f"{t['artifact']}  <- stage `{t['stage']}`, out {t['out']['path']} (md5 {t['out']['md5']})")
    if t.get("file_md5"):
        lines.append(f"  file md5 {t['file_md5']}")
    git = t["git"]
    commit = git["commit"] or "(not a git repository)"
    lines.append(f"git commit {commit}" + ("  (uncommitted changes: " + ", ".join(
        x.split()[-1] for x in git["uncommitted_files"]) + ")" if git["uncommitted"] else ""))
    if t.get("workspace_matches_lock") is False:
        lines.append("WARNING: the workspace no longer matches dvc.lock for: "
                     + ", ".join(t["changed_since_lock"]) + " (`dvc status`); this record is of the last run")
    lines.append("raw data: " + (", ".join(f"{p} (md5 {h})" for p, h in t["sources"].items()) or "(none)"))
    for s in t["stages"]:
        lines.append(f"\n[{s['stage']}]  {s['cmd']}")
        lines.append(f"  code: {s['code']['files']} files, md5 {s['code']['md5']}")
        for d in s["inputs"]:
            lines.append(f"  in   {d['path']}  md5 {d['md5']}" + (f"  (from {d['from']})" if d["from"] else ""))
        for o in s["outs"]:
            lines.append(f"  out  {o['path']}  md5 {o['md5']}")
        for key, value in sorted(s["params"].items()):
            lines.append(f"  param {key} = {json.dumps(value)}")
    return "\n".join(lines)
