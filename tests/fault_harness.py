"""Kill a running `cxr` stage with SIGKILL at a chosen point, then check what it left behind.

Used by tests/test_faults.py and bench/faults.py (the fault matrix). Linux /proc only.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

CXR = [sys.executable, "-m", "components.cli"]
# summary/metrics keys that measure the run rather than describe the data (timings, and how much a
# resumed run took from its cache instead of recomputing)
VOLATILE = {"seconds", "images_per_second", "reports_per_second", "variants_per_second", "workers",
            "encodes_per_second", "generated", "from_cache"}


def children(pid: int) -> list[int]:
    kids = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            kids.append(int(stat.parent.name))
    return kids


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state not in ("Z", "X")


def kill_when(cmd: list[str], ready: Callable[[subprocess.Popen], bool], cwd: Path | None = None,
              env: dict | None = None, timeout: float = 120, sig: int = signal.SIGKILL) -> dict:
    """Run `cmd`, send `sig` (SIGKILL) as soon as ready(proc) holds; report whether its workers died."""
    proc = subprocess.Popen(cmd, cwd=cwd, env={**os.environ, **(env or {})}, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, start_new_session=True)
    start = time.monotonic()
    while proc.poll() is None and not ready(proc):
        if time.monotonic() - start > timeout:
            break
        time.sleep(0.002)
    if proc.poll() is not None:
        return {"killed": False, "returncode": proc.returncode, "stderr": proc.stderr.read().decode()[-2000:]}
    if sig == signal.SIGKILL:
        os.kill(proc.pid, signal.SIGSTOP)  # freeze it where it is, then look at its workers
    kids = children(proc.pid)
    os.kill(proc.pid, sig)
    if sig != signal.SIGKILL:
        os.kill(proc.pid, signal.SIGCONT)
    proc.wait(timeout=60)
    deadline = time.monotonic() + 10
    while any(alive(k) for k in kids) and time.monotonic() < deadline:
        time.sleep(0.01)
    return {"killed": True, "after_s": round(time.monotonic() - start, 3), "workers": len(kids),
            "orphans": [k for k in kids if alive(k)], "returncode": proc.returncode}


def has_workers(proc: subprocess.Popen) -> bool:
    return len(children(proc.pid)) >= 1


def temp_exists(out: Path) -> Callable[[subprocess.Popen], bool]:
    return lambda proc: any(out.parent.glob(f".{out.name}.tmp-*"))


def after(seconds: float) -> Callable[[subprocess.Popen], bool]:
    start = time.monotonic()
    return lambda proc: time.monotonic() - start >= seconds


def leftovers(out: Path) -> list[str]:
    return sorted(p.name for p in out.parent.glob(f".{out.name}.*"))


def _stable(value):
    if isinstance(value, dict):
        return {k: _stable(v) for k, v in value.items() if k not in VOLATILE}
    if isinstance(value, list):
        return [_stable(v) for v in value]
    return value


def differences(a: Path, b: Path, skip: tuple[str, ...] = ("_run", "metrics.json")) -> list[str]:
    """Files that differ between two output folders (JSON compared without timing keys)."""
    def files(root: Path) -> set[str]:
        return {str(p.relative_to(root)) for p in root.rglob("*")
                if p.is_file() and not any(part in skip for part in p.relative_to(root).parts)}

    names_a, names_b = files(a), files(b)
    diff = sorted(names_a ^ names_b)
    for name in sorted(names_a & names_b):
        x, y = (a / name).read_bytes(), (b / name).read_bytes()
        if name.endswith(".json"):
            same = _stable(json.loads(x)) == _stable(json.loads(y))
        else:
            same = x == y
        if not same:
            diff.append(name)
    return diff
