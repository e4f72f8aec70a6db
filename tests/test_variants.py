"""The variants stage: every request accounted for, the gate, the cache, and kill-and-resume."""

from __future__ import annotations

import json
import signal
import sqlite3
import subprocess
import sys
import time

import pandas as pd
import pytest
import yaml

from components.chexpert import OBSERVATIONS
from components.variants.base import ERROR_CATEGORIES, EQUIVALENT_KINDS
from components.variants.run import run_variants

PATHOLOGIES = [o for o in OBSERVATIONS if o != "No Finding"]


def acceptance(variants_dir, threshold: float) -> dict:
    """The variants_acceptance asset check, on this test's output."""
    from types import SimpleNamespace

    from components.stages.variants import check_variants_acceptance

    params = SimpleNamespace(variants=SimpleNamespace(out=str(variants_dir), min_acceptance=threshold))
    return check_variants_acceptance(params, variants_dir.parent)


@pytest.fixture(scope="module")
def tables(variants_dir, clean_dir):
    return pd.read_parquet(variants_dir / "variants.parquet"), pd.read_parquet(clean_dir / "reports.parquet")


def test_one_row_per_request_with_provenance(tables, variants_dir):
    variants, reports = tables
    assert len(variants) == len(reports) * (len(EQUIVALENT_KINDS) + len(ERROR_CATEGORIES))
    assert set(variants["study_id"]) == set(reports["study_id"])  # only studies that passed cleaning
    assert variants["variant_id"].is_unique
    assert (variants["backend"] == "rules").all() and (variants["prompt_version"] == "rules-1").all()
    split_of = dict(zip(reports["study_id"], reports["split"]))
    assert (variants["split"] == variants["study_id"].map(split_of)).all()
    summary = json.loads((variants_dir / "summary.json").read_text())
    assert summary["variants"] == len(variants) and summary["accepted"] == int(variants["valid"].sum())
    assert not variants.loc[~variants["valid"], "reject_reason"].isna().any()  # every rejection says why


def test_accepted_equivalents_keep_findings_and_errors_mark_their_span(tables):
    variants, reports = tables
    source = reports.set_index("study_id")
    accepted = variants[variants["valid"]]
    for _, row in accepted[accepted["error_category"].isna()].iterrows():
        for obs in PATHOLOGIES:
            if source.loc[row["study_id"], obs] in (1.0, -1.0):
                assert row[obs] == source.loc[row["study_id"], obs], (row["kind"], obs, row["text"])
    errors = accepted[accepted["error_category"].notna()]
    assert set(errors["error_category"]) == set(ERROR_CATEGORIES)
    for _, row in errors.iterrows():
        assert row["text"] != source.loc[row["study_id"], "text"] and row["detail"]
        if pd.notna(row["changed_start"]):
            assert 0 <= row["changed_start"] < row["changed_end"] <= len(row["text"])


def test_acceptance_check_per_kind(variants_dir):
    result = acceptance(variants_dir, 0.5)
    assert result["passed"], result["below"]
    assert set(result["acceptance"]) == set(EQUIVALENT_KINDS) | {f"error:{c}" for c in ERROR_CATEGORIES}
    assert not acceptance(variants_dir, 1.01)["passed"]


def test_rerun_is_served_from_the_cache(small_params, variants_dir, tmp_path):
    cfg = small_params.variants.model_copy(update={"out": str(tmp_path / "again"), "metrics": str(tmp_path / "m")})
    summary = run_variants(cfg, progress=False)
    assert summary["generated"] == 0 and summary["from_cache"] == summary["variants"]
    pd.testing.assert_frame_equal(pd.read_parquet(variants_dir / "variants.parquet"),
                                  pd.read_parquet(tmp_path / "again" / "variants.parquet"))


def _count(db) -> int:
    try:
        with sqlite3.connect(db, timeout=0) as c:  # a busy or stopped writer: 0 now, not after 5 s
            return c.execute("SELECT COUNT(*) FROM cache").fetchone()[0]
    except sqlite3.Error:
        return 0


@pytest.mark.slow  # kills a stage and reruns it end to end
@pytest.mark.timeout(300)
def test_killed_run_resumes_without_regenerating(small_params, variants_dir, tmp_path):
    """SIGKILL a real `cxr variants` half-way; the rerun keeps every finished variant and the
    final table equals the uninterrupted run's."""
    tree = json.loads(small_params.model_dump_json())
    tree["variants"].update(out=str(tmp_path / "out"), metrics=str(tmp_path / "m.json"),
                            cache=str(tmp_path / "cache.sqlite"), batch_size=1)  # commit per variant
    params = tmp_path / "params.yaml"
    params.write_text(yaml.safe_dump(tree))
    cmd = [sys.executable, "-m", "components.cli", "variants", "--params", str(params)]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    # The rules backend can finish hundreds of variants between two polls of a busy machine, so the run
    # goes forward in short slices (SIGCONT ... SIGSTOP) and is counted while it stands still.
    deadline = time.time() + 120
    try:
        while proc.poll() is None and time.time() < deadline:
            proc.send_signal(signal.SIGSTOP)
            if _count(tmp_path / "cache.sqlite") >= 40:
                break
            proc.send_signal(signal.SIGCONT)
            time.sleep(0.002)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    finished = _count(tmp_path / "cache.sqlite")
    total = len(pd.read_parquet(variants_dir / "variants.parquet"))
    assert 40 <= finished < total, "the run was not interrupted half-way"
    assert not (tmp_path / "out").exists()  # no partial output

    result = subprocess.run(cmd, capture_output=True, text=True, timeout=240)
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    assert summary["from_cache"] >= finished and summary["generated"] == total - summary["from_cache"]
    pd.testing.assert_frame_equal(pd.read_parquet(variants_dir / "variants.parquet"),
                                  pd.read_parquet(tmp_path / "out" / "variants.parquet"))


class _EchoServer:
    """A chat-completions server on 127.0.0.1: the first attempt (seed 0) echoes the report unchanged,
    later attempts append a sentence that changes no finding."""

    def __init__(self, reports: list[str]):
        import threading
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        seen = self.seen = []

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 - the http.server API
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                prompt = body["messages"][-1]["content"]
                report = next(r for r in reports if r in prompt)
                seen.append(body["seed"])
                answer = report if body["seed"] == 0 else report + "\nClinical correlation is recommended."
                data = json.dumps({"choices": [{"message": {"role": "assistant", "content": answer},
                                                "finish_reason": "stop"}]}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args):
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


def test_model_backend_rejected_variants_are_retried_then_kept_with_reason(small_params, clean_dir, tmp_path):
    reports = pd.read_parquet(clean_dir / "reports.parquet").head(3)
    (tmp_path / "in").mkdir()
    reports.to_parquet(tmp_path / "in" / "reports.parquet")
    server = _EchoServer(list(reports["text"]))
    try:
        cfg = small_params.variants.model_copy(update={
            "input": str(tmp_path / "in"), "out": str(tmp_path / "out"), "metrics": str(tmp_path / "m.json"),
            "cache": str(tmp_path / "c.sqlite"), "backend": "openai", "kinds": ["paraphrase"],
            "error_categories": ["severity"], "max_retries": 2,
            "openai": small_params.variants.openai.model_copy(update={"base_url": server.url, "model": "echo-1"})})
        summary = run_variants(cfg, progress=False)
    finally:
        server.close()
    table = pd.read_parquet(tmp_path / "out" / "variants.parquet").set_index("kind")
    assert (table["model"] == "echo-1").all() and (table["prompt_version"] == "v1").all()
    paraphrases = table.loc[["paraphrase"]]
    assert paraphrases["valid"].all() and (paraphrases["attempts"] == 2).all()  # "unchanged", then accepted
    errors = table.loc[["error"]]
    assert not errors["valid"].any() and (errors["attempts"] == 3).all()  # never the intended error
    assert (errors["reject_reason"] == "severity_changes=0").all()
    assert summary["by_kind"]["paraphrase"]["acceptance"] == 1.0
    assert sorted(set(server.seen)) == [0, 1_000_003, 2_000_006]
