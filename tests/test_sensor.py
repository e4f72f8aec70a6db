"""The new_raw_files sensor evaluated for real (dagster's build_sensor_context) against a temporary input."""

from __future__ import annotations

import os

import yaml
from dagster import DagsterInstance, RunRequest, SkipReason, build_sensor_context

from orchestration.resources import CxrProject
from orchestration.sensors import JOB, new_raw_files


def _evaluate(project, cursor=None):
    with DagsterInstance.ephemeral() as instance:
        context = build_sensor_context(instance=instance, cursor=cursor, resources={"project": project})
        result = new_raw_files(context)
        return result, context.cursor


def test_sensor_requests_ingest_once_per_state_of_the_input(tmp_path):
    (tmp_path / "params.yaml").write_text(yaml.safe_dump({"ingest": {"input": "raw"}}))
    project = CxrProject(root=str(tmp_path))

    result, cursor = _evaluate(project)
    assert isinstance(result, SkipReason) and "does not exist yet" in result.skip_message
    assert "raw" in result.skip_message and cursor is None

    raw = tmp_path / "raw" / "files" / "p10"
    raw.mkdir(parents=True)
    (raw / "s1.txt").write_text("FINDINGS: clear.")
    first, cursor = _evaluate(project)
    assert isinstance(first, RunRequest) and first.run_key and cursor and cursor in first.run_key

    again, same = _evaluate(project, cursor)
    assert isinstance(again, SkipReason) and again.skip_message == f"no new files in {tmp_path / 'raw'}"
    assert same == cursor
    (raw / "_run").mkdir()  # the run folder of the stage that wrote the input is not new data
    (raw / "_run" / "synth.json").write_text('{"seconds": 3.2}')
    assert isinstance(_evaluate(project, cursor)[0], SkipReason)

    (raw / "s2.txt").write_text("IMPRESSION: no change.")
    second, newer = _evaluate(project, cursor)
    assert isinstance(second, RunRequest) and second.run_key != first.run_key and newer != cursor

    (raw / "s2.txt").write_text("IMPRESSION: changed, same name.")  # a rewrite counts too
    os.utime(raw / "s2.txt", ns=(10**19, 10**19))
    third, _ = _evaluate(project, newer)
    assert isinstance(third, RunRequest) and third.run_key not in (first.run_key, second.run_key)


def test_definitions_load_with_the_sensor_stopped_by_default():
    from dagster import DefaultSensorStatus

    from orchestration.definitions import defs

    sensor = defs.resolve_sensor_def("new_raw_files")
    assert sensor.job_name == JOB and defs.resolve_job_def(JOB) is not None
    assert sensor.default_status == DefaultSensorStatus.STOPPED
    assert "ingested_studies" in {k.to_user_string() for k in defs.resolve_job_def(JOB).asset_layer.selected_asset_keys}
