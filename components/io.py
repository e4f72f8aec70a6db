"""Atomic outputs: a stage either leaves its complete output or none at all, and never touches an input.

Every stage output folder goes through atomic_dir(), which first refuses outputs that would destroy
an input or a file (check_output), then takes the folder's lock (one writer at a time; a lock left by
a killed run is detected and taken over), removes temp folders that a killed run left behind, and
only then builds the new output beside the old one and swaps it in.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import sys
import tempfile
from contextlib import contextmanager
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from components.parallel import raise_if_stopped


class OutputError(ValueError):
    """The output location is unusable (it would overwrite an input, a file, or a busy folder).

    A ValueError so that the CLI reports it as a user error (one line, exit status 2)."""


def check_output(out: str | Path, inputs=()) -> Path:
    """Refuse, before anything is written, an --out that is or holds or sits inside an input,
    that is an existing file, or that lies under a file. Returns the resolved output path."""
    target = Path(out).resolve()
    for ancestor in (target, *target.parents):
        if ancestor.exists() and not ancestor.is_dir():
            where = "is an existing file" if ancestor == target else f"lies under {ancestor}, which is a file"
            raise OutputError(f"output {out} {where}; give a folder path (nothing was changed)")
    for given in inputs:
        if given is None or str(given) == "":
            continue
        source = Path(given).resolve()
        if target == source:
            problem = "is the input"
        elif target in source.parents:
            problem = "contains the input"
        elif source in target.parents:
            problem = "lies inside the input"
        else:
            continue
        raise OutputError(f"output {out} {problem} {given}: an output never replaces its input "
                          "(nothing was changed); choose another --out")
    _refuse_if_busy(target)
    return target


def _refuse_if_busy(out: Path) -> None:
    """Fail before any work when another live run holds the output's lock (atomic_dir checks again)."""
    lock = out.parent / f".{out.name}.lock"
    try:
        fd = os.open(lock, os.O_RDONLY)
    except OSError:
        return
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = os.pread(fd, 64, 0).decode(errors="replace").strip() or "?"
        raise OutputError(f"output {out} is being written by another run (pid {holder}); "
                          f"wait for it, or remove {lock} if that process is gone") from None
    finally:
        os.close(fd)


@contextmanager
def output_lock(out: Path):
    """Hold `.<name>.lock` beside `out` while this process writes it.

    flock() is released by the kernel when its holder dies, even by SIGKILL, so a lock file whose
    lock is free is stale: it is taken over (and said so on stderr). A live holder makes this run
    stop with its pid rather than interleave two writers in one folder.
    """
    lock = out.parent / f".{out.name}.lock"
    while True:
        fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 64, 0).decode(errors="replace").strip() or "?"
            os.close(fd)
            raise OutputError(f"output {out} is being written by another run (pid {holder}); "
                              f"wait for it, or remove {lock} if that process is gone") from None
        try:  # the file may have been unlinked by its previous holder between open and flock
            same = os.fstat(fd).st_ino == os.stat(lock).st_ino
        except FileNotFoundError:
            same = False
        if same:
            break
        os.close(fd)
    stale = os.pread(fd, 64, 0).decode(errors="replace").strip()
    if stale and stale != str(os.getpid()):
        print(f"note: taking over the stale lock {lock} of pid {stale} (that run ended without "
              "releasing it)", file=sys.stderr)
    os.ftruncate(fd, 0)
    os.pwrite(fd, str(os.getpid()).encode(), 0)
    try:
        yield
    finally:
        try:
            os.unlink(lock)
        finally:
            os.close(fd)


def remove_stale_temps(out: Path) -> list[str]:
    """Temp and trash folders of `out` left by a killed run. Call only while holding its lock."""
    removed = []
    for leftover in sorted(out.parent.glob(f".{out.name}.tmp-*")) + sorted(out.parent.glob(f".{out.name}.old-*")):
        shutil.rmtree(leftover, ignore_errors=True) if leftover.is_dir() else leftover.unlink(missing_ok=True)
        removed.append(leftover.name)
    return removed


@contextmanager
def atomic_dir(out: str | Path, inputs=()):
    """Yield a temporary sibling directory that replaces `out` only if the block succeeds.

    `inputs`: the paths this output is made from; an `out` that would overwrite one is refused.
    """
    out = Path(out)
    check_output(out, inputs)
    out.parent.mkdir(parents=True, exist_ok=True)
    with output_lock(out):
        remove_stale_temps(out)
        tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.tmp-", dir=out.parent))
        try:
            yield tmp
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        try:
            raise_if_stopped()  # a stop request swallowed mid-run never publishes its output
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        trash = out.with_name(f".{out.name}.old-{os.getpid()}")
        if out.exists():
            os.replace(out, trash)
        os.replace(tmp, out)
        shutil.rmtree(trash, ignore_errors=True)


def write_bytes_atomic(path: str | Path, data: bytes) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    os.replace(tmp, path)


def write_json(path: str | Path, obj) -> None:
    write_bytes_atomic(path, (json.dumps(obj, indent=2, sort_keys=True, default=str) + "\n").encode())


# Facts about a run rather than its result: they differ between two runs on the same inputs, so a file DVC
# tracks (an out, a metrics file) must not hold them, or a rerun changes its hash and re-runs everything
# downstream. The CLI writes them to the run folder inside the output instead (see run_dir).
RUN_FACTS = frozenset({"seconds", "from_cache", "generated", "encoded", "started", "hostname", "workers"})

# Inside a stage's output, the folder for what describes the run rather than its result (the run log,
# the GX Data Docs whose pages name the run time). .dvcignore lists it, so DVC's hash of the output, and
# with it everything downstream, does not change when only the run did; a run writes nothing outside
# its output, and the run's record travels with it.
RUN_DIR = "_run"


def run_dir(out: str | Path) -> Path:
    """The run folder of an output: inside it when it is a folder, beside it when it is a file."""
    out = Path(out)
    return (out if out.is_dir() or not out.suffix else out.parent) / RUN_DIR


def stable(record: dict) -> dict:
    """`record` without its run facts (timings, throughput, cache hits): what a tracked file may hold."""
    return {k: v for k, v in record.items() if k not in RUN_FACTS and not k.endswith("_per_second")}


def write_table(path: str | Path, rows: list[dict], schema: pa.Schema) -> None:
    """Write rows as Parquet with an explicit schema (so empty tables still have their columns)."""
    table = pa.Table.from_pylist(rows, schema=schema)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    os.close(fd)
    pq.write_table(table, tmp)
    os.replace(tmp, path)
