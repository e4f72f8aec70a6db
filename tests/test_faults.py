"""Faults: real SIGKILLs of ingest and clean leave no workers and no lasting mess, and the rerun equals
an uninterrupted run; a worker killed like the OOM killer does costs only its items (worker_crashed)."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pandas as pd
import pytest
import yaml

from components.parallel import WorkerCrashed, ordered_map
from tests.conftest import small_params_tree
from tests.fault_harness import CXR, differences, has_workers, kill_when, leftovers, temp_exists

REPO = Path(__file__).resolve().parent.parent


def _kill_on(poison):
    def fn(x):
        if x == poison:
            os.kill(os.getpid(), signal.SIGKILL)  # what the OOM killer does
        return x * 10
    return fn


def test_a_killed_worker_costs_only_its_item():
    with ordered_map(_kill_on(13), list(range(60)), workers=2, max_chunk=4) as results:
        out = list(results)
    assert [r for r in out if isinstance(r, WorkerCrashed)] == [out[13]]
    assert "signal 9" in out[13].detail
    assert [r for i, r in enumerate(out) if i != 13] == [x * 10 for x in range(60) if x != 13]


def test_a_worker_lost_once_is_retried(tmp_path):
    marker = tmp_path / "crashed-once"

    def flaky(x):
        if x == 5 and not marker.exists():
            marker.write_text("")
            os.kill(os.getpid(), signal.SIGKILL)
        return x + 1

    with ordered_map(flaky, list(range(20)), workers=2, max_chunk=4) as results:
        assert list(results) == [x + 1 for x in range(20)]
    assert marker.exists()


def test_ingest_quarantines_an_image_whose_worker_is_killed(small_params, synth_dir, ingest_dir, tmp_path,
                                                            monkeypatch):
    import components.ingest.run as run

    index = pd.read_parquet(ingest_dir / "images.parquet")
    victim = index["image_id"].iloc[3]
    real_decode = run.decode

    def decode(path, *args, **kwargs):
        if Path(path).stem == victim:
            os.kill(os.getpid(), signal.SIGKILL)
        return real_decode(path, *args, **kwargs)

    monkeypatch.setattr(run, "decode", decode)  # workers are forked: they run this
    cfg = small_params.ingest.model_copy(update={"out": str(tmp_path / "out"), "metrics": str(tmp_path / "m.json"),
                                                 "workers": 2})
    summary = run.ingest(cfg, progress=False)
    q = pd.read_parquet(tmp_path / "out" / "quarantine.parquet")
    assert q.loc[q["record_id"] == victim, "reason"].tolist() == ["worker_crashed"]
    assert summary["conservation_ok"] and summary["images"]["out"] == len(index) - 1


def _params_file(small_params, tmp_path: Path) -> Path:
    tree = small_params_tree(tmp_path)  # same numbers as the session fixtures
    tree["ingest"].update(input=small_params.ingest.input, workers=2)
    tree["clean"].update(workers=2)
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(tree, sort_keys=False))
    return path


@pytest.mark.timeout(300)
def test_sigkilled_ingest_leaves_no_workers_and_reruns_to_the_same_output(small_params, synth_dir, ingest_dir,
                                                                           tmp_path):
    params, out = _params_file(small_params, tmp_path), tmp_path / "ingested"
    cmd = [*CXR, "ingest", "--params", str(params), "--out", str(out)]
    env = {"PYTHONPATH": str(REPO)}
    report = kill_when(cmd, has_workers, env=env)
    assert report["killed"], report
    assert report["workers"] >= 1 and report["orphans"] == []  # workers died with their parent
    assert not out.exists()  # nothing half-written in place of the output
    report = kill_when(cmd, temp_exists(out), env=env)  # again, while the new output is being built
    assert report["killed"] and report["orphans"] == []
    assert leftovers(out)  # a stale temp folder and lock remain ...
    kill_when(cmd, lambda proc: False, env=env)  # ... until the next run, which completes
    assert leftovers(out) == []
    assert differences(out, ingest_dir) == []  # equal to the uninterrupted run


@pytest.mark.timeout(300)
def test_sigterm_stops_ingest_and_its_workers_cleanly(small_params, synth_dir, tmp_path):
    """SIGTERM (Dagster cancelling a run) unwinds: workers stopped, temp folder and lock removed."""
    params, out = _params_file(small_params, tmp_path), tmp_path / "ingested"
    cmd = [*CXR, "ingest", "--params", str(params), "--out", str(out)]
    report = kill_when(cmd, has_workers, env={"PYTHONPATH": str(REPO)}, sig=signal.SIGTERM)
    assert report["killed"] and report["returncode"] == 128 + signal.SIGTERM, report
    assert report["orphans"] == [] and leftovers(out) == [] and not out.exists()


@pytest.mark.slow  # kills a stage and reruns it end to end
@pytest.mark.timeout(300)
def test_sigkilled_clean_reruns_to_the_same_output(small_params, clean_dir, tmp_path):
    params, out = _params_file(small_params, tmp_path), tmp_path / "clean"
    cmd = [*CXR, "clean", "--params", str(params), "--input", small_params.clean.input, "--out", str(out)]
    env = {"PYTHONPATH": str(REPO)}
    report = kill_when(cmd, has_workers, env=env)
    assert report["killed"] and report["orphans"] == [], report
    report = kill_when(cmd, temp_exists(out), env=env)  # during validation and writing
    assert report["killed"] and leftovers(out)
    kill_when(cmd, lambda proc: False, env=env)
    assert leftovers(out) == []
    assert differences(out, clean_dir) == []
