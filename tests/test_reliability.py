"""Outputs never touch inputs; user mistakes end in one clear line (exit 2); gates stop `cxr` itself."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from components.cli import app
from components.io import OutputError, atomic_dir, check_output, output_lock

runner = CliRunner()


def _tree_digest(root: Path) -> str:
    h = hashlib.sha256()
    for p in sorted(root.rglob("*")):
        h.update(str(p.relative_to(root)).encode())
        if p.is_file():
            h.update(p.read_bytes())
    return h.hexdigest()


def test_outputs_that_would_overwrite_an_input_or_a_file_are_refused(tmp_path):
    data = tmp_path / "data"
    (data / "in").mkdir(parents=True)
    (data / "in" / "f.txt").write_text("x")
    for out, message in ((data / "in", "is the input"), (data, "contains the input"),
                         (data / "in" / "sub", "lies inside the input")):
        with pytest.raises(OutputError, match=message):
            with atomic_dir(out, [data / "in"]):
                pass
    (tmp_path / "file").write_text("keep")
    with pytest.raises(OutputError, match="is an existing file"):
        check_output(tmp_path / "file")
    with pytest.raises(OutputError, match="which is a file"):
        check_output(tmp_path / "file" / "sub")
    assert (data / "in" / "f.txt").read_text() == "x" and (tmp_path / "file").read_text() == "keep"
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["data", "f.txt", "file", "in"]  # nothing left


def test_output_lock_refuses_a_second_writer_and_takes_over_a_stale_lock(tmp_path, capsys):
    out = tmp_path / "out"
    with output_lock(out):
        with pytest.raises(OutputError, match=f"another run \\(pid {os.getpid()}\\)"):
            with atomic_dir(out):
                pass
    assert not (tmp_path / ".out.lock").exists()  # released on exit
    # a killed run leaves its lock file (with its pid) and a half-written temp folder behind
    (tmp_path / ".out.lock").write_text("999999")
    (tmp_path / ".out.tmp-dead").mkdir()
    (tmp_path / ".out.tmp-dead" / "half.parquet").write_text("partial")
    with atomic_dir(out) as tmp:
        (tmp / "done").write_text("ok")
    err = capsys.readouterr().err
    assert "stale lock" in err and "pid 999999" in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"] and (out / "done").read_text() == "ok"


def test_cli_ingest_and_clean_refuse_out_over_input(tmp_path, synth_dir, ingest_dir):
    before = _tree_digest(synth_dir), _tree_digest(ingest_dir)
    cases = [
        ["ingest", "--input", str(synth_dir), "--out", str(synth_dir)],
        ["ingest", "--input", str(synth_dir), "--out", str(synth_dir.parent)],
        ["ingest", "--input", str(synth_dir), "--out", str(synth_dir / "files" / "sub")],
        ["clean", "--input", str(ingest_dir), "--out", str(ingest_dir)],
        ["clean", "--input", str(ingest_dir), "--out", str(ingest_dir / "gx")],
    ]
    for args in cases:
        result = runner.invoke(app, [*args, "--set", "ingest.workers=1", "--set", "ingest.resolution=32"])
        assert result.exit_code == 2, (args, result.output)
        assert "an output never replaces its input" in result.stderr and "Traceback" not in result.output
    assert (_tree_digest(synth_dir), _tree_digest(ingest_dir)) == before  # nothing removed or changed


def _studies_without(column: str, ingest_dir: Path, dest: Path) -> Path:
    dest.mkdir()
    pd.read_parquet(ingest_dir / "studies.parquet").drop(columns=[column]).to_parquet(dest / "studies.parquet")
    return dest


@pytest.mark.parametrize("case", ["not_yaml", "yaml_list", "params_dir", "out_under_file", "busy_out",
                                  "missing_column", "corrupt_cache", "cache_is_dir", "not_parquet"])
def test_user_mistakes_give_one_line_and_exit_2(case, tmp_path, monkeypatch, ingest_dir, clean_dir):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "file").write_text("x")
    args = {
        "not_yaml": (["ingest", "--params", "bad.yaml"], "bad.yaml is not valid YAML at line"),
        "yaml_list": (["ingest", "--params", "list.yaml"], "list.yaml must map section names"),
        "params_dir": (["ingest", "--params", "."], "is a folder"),
        "out_under_file": (["clean", "--input", str(ingest_dir), "--out", "file/out"], "which is a file"),
        "busy_out": (["clean", "--input", str(ingest_dir), "--out", "busy"], "being written by another run"),
        "missing_column": (["clean", "--input", "noreport"], "lacks column(s) report"),
        "corrupt_cache": (["variants", "--input", str(clean_dir), "--out", "v", "--set", "variants.cache=junk.db"],
                          "junk.db is not a usable SQLite cache"),
        "cache_is_dir": (["variants", "--input", str(clean_dir), "--out", "v", "--set", "variants.cache=."],
                         "is not a file"),
        "not_parquet": (["clean", "--input", "garbage"], "studies.parquet is not a readable Parquet table"),
    }[case]
    (tmp_path / "bad.yaml").write_text("ingest:\n  workers: [1, 2\n")
    (tmp_path / "list.yaml").write_text("- ingest\n- clean\n")
    (tmp_path / "junk.db").write_bytes(b"this is not sqlite" * 100)
    (tmp_path / "garbage").mkdir()
    (tmp_path / "garbage" / "studies.parquet").write_bytes(b"PAR1 not really")
    if case == "missing_column":
        _studies_without("report", ingest_dir, tmp_path / "noreport")
    command, message = args
    if case == "busy_out":
        with output_lock(tmp_path / "busy"):
            result = runner.invoke(app, command)
    else:
        result = runner.invoke(app, command)
    errors = [line for line in result.stderr.splitlines() if not line.startswith("note:")]
    assert result.exit_code == 2, result.output
    assert len(errors) == 1 and message in errors[0], result.stderr
    assert "Traceback" not in result.output
    assert (tmp_path / "junk.db").read_bytes().startswith(b"this is not sqlite")  # never overwritten


def test_no_params_file_says_which_defaults_are_used(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = runner.invoke(app, ["ingest", "--input", "nowhere"])
    assert result.exit_code == 2
    assert "no params.yaml" in result.stderr and "built-in defaults" in result.stderr


def test_stage_with_zero_usable_rows_fails_naming_the_reasons(tmp_path):
    rows = [(f"s{i}", f"p{i}", "No acute cardiopulmonary process.", f"img/missing{i}.png") for i in range(5)]
    rows.append(("s9", "p9", "", "img/missing9.png"))
    pd.DataFrame(rows, columns=["study_id", "subject_id", "report", "image_path"]).to_csv(
        tmp_path / "manifest.csv", index=False)
    result = runner.invoke(app, ["ingest", "--source", "manifest", "--input", str(tmp_path / "manifest.csv"),
                                 "--out", str(tmp_path / "out"), "--set", "ingest.workers=1"])
    assert result.exit_code == 1
    assert ("no usable studies: all 6 of 6 studies were quarantined; top reasons: image_file_missing (5), "
            "report_missing (1)") in result.stderr
    assert (tmp_path / "out" / "quarantine.parquet").exists()  # the reasons are kept for the user


def test_failed_quality_suite_stops_clean_with_the_data_docs_path(tmp_path, ingest_dir):
    out = tmp_path / "clean"
    result = runner.invoke(app, ["clean", "--input", str(ingest_dir), "--out", str(out),
                                 "--set", "clean.quality.max_chars=30"])
    assert result.exit_code == 1
    from components.reports.clean import data_docs_dir

    docs = (data_docs_dir(out) / "index.html").resolve()
    assert f"see the Data Docs at {docs}" in result.stderr and docs.is_file()
    assert "expect_column_values_to_be_between(n_chars)" in result.stderr
    assert json.loads((out / "metrics.json").read_text())["gx_success"] is False  # metrics with the output
    result = runner.invoke(app, ["clean", "--input", str(ingest_dir), "--out", str(out), "--metrics",
                                 str(tmp_path / "m.json"), "--set", "clean.quality.max_chars=30",
                                 "--set", "clean.quality.blocking=false"])
    assert result.exit_code == 0, result.output
    assert json.loads((tmp_path / "m.json").read_text())["gx_success"] is False
