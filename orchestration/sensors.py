"""`new_raw_files`: start ingest (and what is built on it) when files land in the configured input.

The cursor is a digest of the input's listing (file count, newest mtime, a hash of the sorted relative
paths and sizes), and the run key is that digest, so one state of the folder never launches two runs.
Stopped by default: a hospital team turns it on in the UI rather than getting runs it did not ask for.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from dagster import DefaultSensorStatus, RunRequest, SensorEvaluationContext, SkipReason, sensor

from components.io import RUN_DIR
from orchestration.resources import CxrProject

# The ingest asset and its downstream, not full_pipeline: that would re-run synth, which writes the
# folder the sensor watches when the input is the synthetic data (each run would trigger the next).
JOB = "ingest_and_downstream"


def listing_digest(root: Path) -> str:
    """count-newest mtime_ns-hash of the sorted (relative path, size) of every file under root."""
    entries, newest = [], 0
    for dirpath, dirnames, filenames in os.walk(root):
        # atomic writers' temp folders, and a run folder (a record of the run that wrote the input)
        dirnames[:] = [d for d in dirnames if not d.startswith(".") and d != RUN_DIR]
        for name in filenames:
            if name.startswith("."):
                continue
            stat = os.stat(os.path.join(dirpath, name))
            entries.append(f"{os.path.relpath(os.path.join(dirpath, name), root)}\t{stat.st_size}")
            newest = max(newest, stat.st_mtime_ns)
    if root.is_file():  # a manifest CSV as the input
        stat = root.stat()
        entries, newest = [f"{root.name}\t{stat.st_size}"], stat.st_mtime_ns
    entries.sort()
    digest = hashlib.blake2b("\n".join(entries).encode(), digest_size=8).hexdigest()
    return f"{len(entries)}-{newest}-{digest}"


@sensor(job_name=JOB, minimum_interval_seconds=60, default_status=DefaultSensorStatus.STOPPED,
        description="Runs ingest and everything built on it when files in params ingest.input were added "
                    "or changed since the last run it started.")
def new_raw_files(context: SensorEvaluationContext, project: CxrProject):
    tree = project.params_tree()
    given = (tree.get("ingest") or {}).get("input") or "data/raw/synth"
    root = project.path / given
    if not root.exists():
        return SkipReason(f"input {root} does not exist yet (params ingest.input={given!r})")
    digest = listing_digest(root)
    if digest == context.cursor:
        return SkipReason(f"no new files in {root}")
    context.update_cursor(digest)
    return RunRequest(run_key=f"ingest-input-{digest}", tags={"cxr/input_digest": digest})
