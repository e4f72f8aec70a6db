"""params.yaml, its typed model, --params / --set, and the CLI's behaviour on good and bad input."""

from __future__ import annotations

import json

import pytest
import yaml
from typer.testing import CliRunner

from components.cli import app
from components.params import Params, apply_override, load_params
from tests.conftest import REPO

runner = CliRunner()


def test_params_yaml_matches_the_typed_model():
    tree = yaml.safe_load((REPO / "params.yaml").read_text())
    params = Params.model_validate(tree)  # extra="forbid": a stray key in params.yaml fails here
    assert params.model_dump(mode="json")["ingest"] == {**tree["ingest"], "percentiles": tree["ingest"]["percentiles"]}
    assert params.synth.traps.report_phi == tree["synth"]["traps"]["report_phi"]


def test_set_overrides_are_typed_and_nested(tmp_path):
    p = load_params(REPO / "params.yaml", ["synth.n_studies=7", "synth.traps.report_phi=0.5",
                                           "ingest.percentiles=[1, 99]", "ingest.frontal_only=false"])
    assert p.synth.n_studies == 7 and p.synth.traps.report_phi == 0.5
    assert p.ingest.percentiles == (1, 99) and p.ingest.frontal_only is False
    other = tmp_path / "other.yaml"
    other.write_text("ingest:\n  resolution: 32\n")
    assert load_params(other).ingest.resolution == 32
    assert load_params(other).synth.n_studies == Params().synth.n_studies  # unspecified = defaults


@pytest.mark.parametrize("override, message", [
    ("synth.n_studes=3", "Extra inputs"),
    ("synth.n_studies=-1", "greater than or equal"),
    ("ingest.source=dropbox", "unknown source"),
    ("ingest.split={train: 0.5, val: 0.1, test: 0.1}", "summing to 1"),
    ("synth.styles={poetry: 1}", "unknown report styles"),
    ("ingest.percentiles=[90, 10]", "percentiles"),
])
def test_bad_params_are_rejected_with_a_reason(override, message):
    with pytest.raises(ValueError, match=message):
        load_params(REPO / "params.yaml", [override])


def test_yaml_words_like_off_stay_strings(tmp_path):
    """YAML 1.1 reads off/no/yes as booleans; a policy named "off" must survive params.yaml and --set."""
    assert load_params(REPO / "params.yaml", ["clean.phi_policy=off"]).clean.phi_policy == "off"
    f = tmp_path / "p.yaml"
    f.write_text("clean:\n  phi_policy: off\ningest:\n  frontal_only: false\n")
    p = load_params(f)
    assert p.clean.phi_policy == "off" and p.ingest.frontal_only is False


def test_malformed_set_is_rejected():
    with pytest.raises(ValueError, match="section.key=value"):
        apply_override({}, "synth.n_studies")
    with pytest.raises(ValueError, match="section.key"):
        apply_override({}, "n_studies=3")


def test_cli_help_lists_stages():
    result = runner.invoke(app, ["--help"])
    assert result.exit_code == 0 and "synth" in result.output and "ingest" in result.output


def test_cli_synth_then_ingest(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # no params.yaml here: defaults, outputs under ./data
    monkeypatch.delenv("CXR_HOME", raising=False)  # tool state at its default, ./.cxr (make exports its own)
    result = runner.invoke(app, ["synth", "--n-studies", "24", "--seed", "5", "--out", "raw",
                                 "--set", "synth.image_size=96", "--set", "synth.workers=1"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["n_studies"] == 24 and (tmp_path / "raw" / "truth.parquet").exists()
    assert json.loads((tmp_path / "raw/metrics.json").read_text())["studies"] == 24  # with its --out
    result = runner.invoke(app, ["ingest", "--source", "synth", "--input", "raw", "--out", "ing",
                                 "--workers", "1", "--set", "ingest.resolution=32"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["conservation_ok"] and summary["traps"]["all_accounted"]
    assert (tmp_path / "ing" / "preview.png").read_bytes()[:4] == b"\x89PNG"
    # nothing written outside --out: the run log is in the output's run folder
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ing", "raw"]
    log = json.loads((tmp_path / "ing" / "_run" / "ingest.json").read_text())
    assert log["stage"] == "ingest" and log["seconds"]["total"] > 0 and "seconds" not in json.loads((tmp_path / "ing" / "summary.json").read_text())


@pytest.mark.parametrize("args, message", [
    (["ingest", "--input", "nowhere"], "does not exist"),
    (["ingest", "--source", "openi", "--input", "."], "Open-I"),
    (["synth", "--set", "synth.n_studes=3"], "invalid params: synth.n_studes"),
    (["synth", "--params", "missing.yaml"], "params file not found"),
    (["synth", "--n-studies", "3"], "cannot hold"),
])
def test_cli_bad_input_fails_with_one_clear_line(tmp_path, monkeypatch, args, message):
    monkeypatch.chdir(tmp_path)
    result = runner.invoke(app, args)
    assert result.exit_code == 2
    assert message in result.stderr and "Traceback" not in result.output


def test_report_rows_fit_their_column_and_say_how_many_figures_are_left_out():
    from components.overview import _fit

    figures = {f"figure_{i}": i / 7 for i in range(20)}
    text = _fit(figures, 66)
    assert len(text) <= 66 and text.startswith("figure_0=0  figure_1=0.143") and text.endswith("more)")
    shown = text.count("=")
    assert f"(+{20 - shown} more)" in text
    assert _fit({"studies": 24, "ok": True}, 66) == "studies=24  ok=yes"


def test_report_has_a_row_per_foreach_item_with_its_own_paths(tmp_path):
    from components.overview import format_table, rows

    tree = Params().model_dump(mode="json")
    table = rows(tree, tmp_path)
    arms = [r for r in table if r["stage"].startswith("ablation")]
    assert [r["stage"] for r in arms] == [f"ablation@{t}" for t in tree["evaluate"]["ablation"]]
    assert not any(r["ran"] for r in table)
    shown = format_table(table)
    assert "data/ablation/minilm/model" in shown and "ablation//" not in shown
    assert max(map(len, shown.splitlines())) <= 130  # a wide terminal; the files column is the last
