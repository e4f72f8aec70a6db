"""The evaluate stage and one ablation arm on the tiny profile: real (tiny) CLIPs trained in seconds,
through the library, then through `dvc repro` and `dagster.materialize` (marked slow)."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
import yaml

from tests.conftest import REPO, small_params_tree
from tests.test_evaluation_ranking import judge_server  # noqa: F401 - the chat-completions server fixture


@pytest.fixture(scope="session")
def arm_dir(small_params, clip_dir) -> Path:
    """The tiny profile's one ablation arm (openclip), trained through the stage's entry point."""
    from components.stages import ScopedParams, module

    stage = module("ablation")
    (tower,) = small_params.evaluate.ablation
    stage.run(ScopedParams(small_params, stage.STAGE.params), tower)
    return Path(small_params.evaluate.ablation_dir) / tower


def test_ablation_arm_is_a_clip_with_its_tower(arm_dir):
    from components.clip.model import TEXT_TOWERS, CXRClip
    from components.evaluation.towers import TEXT_TOWERS as OURS

    model = CXRClip.load(arm_dir / "model")
    assert model.config.text_tower == "openclip" and model.config.text_mode == "online"
    assert json.loads((arm_dir / "metrics.json").read_text())["best_step"] >= 1
    assert OURS == TEXT_TOWERS


def test_evaluate_writes_every_output(small_params, arm_dir, baseline_dir, judge_server):  # noqa: F811
    from components.evaluation.stage import evaluate

    cfg = small_params.evaluate.model_copy(deep=True)
    cfg.ranking.llm.base_url, cfg.ranking.llm.model = judge_server, "judge"
    cfg.datasets = [cfg.all_datasets()[0].model_copy(update={"name": "text_only", "ingest": None, "split": "val"})]
    summary = evaluate(cfg)
    out = Path(cfg.out)
    metrics = json.loads((out / "metrics.json").read_text())
    assert summary["metrics"] == metrics
    own = metrics["pipeline"]
    assert set(own) == {"clip", "openclip", "robustness"}
    for system in ("clip", "openclip"):
        assert 0 <= own[system]["i2t_r_at_1"] <= own[system]["i2t_r_at_5"] <= own[system]["i2t_r_at_10"] <= 1
    assert set(own["robustness"]) == {"llm2vec4cxr", "bert_baseline"}
    assert "clip" not in metrics["text_only"] and set(metrics["text_only"]["robustness"]) == {"llm2vec4cxr",
                                                                                              "bert_baseline"}
    assert set(metrics["ranking"]) == {"rule", "llm"}
    assert set(metrics["ranking"]["rule"]) == {"clip", "openclip", "random"}
    details = json.loads((out / "details.json").read_text())
    assert details["ranking"]["llm_counts"]["ranked"] == details["ranking"]["n_studies"] > 0
    assert "rule vs llm" in details["ranking"]["agreement"]
    report = (out / "report.md").read_text()
    for heading in ("## Text-tower ablation", "### Retrieval", "zero-shot AUROC", "### Text robustness",
                    "## Ranking protocol", "### Judge: rule", "### Judge: llm", "## Dataset `text_only`"):
        assert heading in report
    assert {"ablation.png", "recall_at_k.png"} <= {p.name for p in (out / "figures").glob("*.png")}
    # what `cxr report` prints: every system and encoder with its figures, narrow enough for a terminal
    from components.evaluation.report import summary_table

    table = summary_table(metrics).splitlines()
    assert max(map(len, table)) <= 100 and table[0].startswith("evaluation of `pipeline`")
    own_part = table[:[i for i, line in enumerate(table) if line.startswith("evaluation of")][1]]
    lines = {line.split()[0]: line.split()[1:] for line in own_part}
    assert [float(x) for x in lines["clip"]] == pytest.approx([own["clip"][k] for k in (
        "i2t_r_at_1", "i2t_r_at_10", "label_hit_at_1", "zero_shot_macro_auroc", "clinical_micro_f1")], abs=5e-4)
    assert float(lines["llm2vec4cxr"][-1]) == pytest.approx(
        own["robustness"]["llm2vec4cxr"]["error_discrimination_tie_aware"], abs=5e-4)
    rows = json.loads((out / "plots" / "recall_at_k.json").read_text())
    assert {r["system"] for r in rows} == {"clip", "openclip"} and max(r["k"] for r in rows) == 10
    # the same inputs give byte-identical outputs (DVC outs must be deterministic)
    before = {p: p.read_bytes() for p in out.rglob("*") if p.is_file()}
    evaluate(cfg)
    assert {p: p.read_bytes() for p in out.rglob("*") if p.is_file()} == before

    # a person ranks every study of the exported template (here: by candidate letter); it is imported
    rows = list(csv.DictReader((out / "human_template.csv").open(encoding="utf-8")))
    for r in rows:
        r["rank"] = str("ABC".index(r["candidate"]) + 1)
    rated = out.parent / "rated.csv"
    with rated.open("w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    cfg.ranking.human_csv = str(rated)
    evaluate(cfg)
    details = json.loads((out / "details.json").read_text())
    assert details["ranking"]["judges"]["human"]["mean_rank"]["clip"]["n"] == details["ranking"]["n_studies"]
    assert {"rule vs human", "llm vs human"} <= set(details["ranking"]["agreement"])
    assert details["ranking"]["human_problems"]["n"] == 0


def test_bench_profile_is_a_checked_overlay(tmp_path, monkeypatch):
    from components.params import load_params, overlay_assignments

    monkeypatch.chdir(REPO)
    assignments = overlay_assignments(REPO / "params" / "bench.yaml")
    p = load_params(None, assignments)
    assert p.synth.n_studies >= 2000 and "synth.n_studies=2000" in assignments
    assert "evaluate.ranking.n_studies=100" in assignments  # nested sections flatten to dotted keys
    bad = tmp_path / "bad.yaml"
    bad.write_text("evaluate: {rankin: {n_studies: 3}}\n")
    with pytest.raises(ValueError, match="rankin"):
        overlay_assignments(bad)


@pytest.mark.slow
@pytest.mark.timeout(1500)
def test_evaluate_and_one_arm_through_dvc_and_dagster(tmp_path):
    """`dvc repro clip` builds the tiny pipeline; Dagster materializes one ablation arm and the evaluation
    through DVC, so dvc.lock records them, `dvc metrics show` reads the evaluation and DVC has nothing
    left to do."""
    import shutil
    import subprocess

    from dagster import PipesSubprocessClient, materialize

    from orchestration.assets import build_assets
    from orchestration.resources import CxrProject

    root = tmp_path / "project"
    root.mkdir()
    for name in ("dvc.yaml", ".dvcignore"):
        shutil.copy(REPO / name, root / name)
    shutil.copytree(REPO / "components", root / "components", ignore=shutil.ignore_patterns("__pycache__"))
    tree = small_params_tree(Path("data"))
    (root / "params.yaml").write_text(yaml.safe_dump(tree, sort_keys=False))

    def run(*cmd):
        result = subprocess.run(cmd, cwd=root, capture_output=True, text=True, timeout=1200)
        assert result.returncode == 0, f"{cmd}:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
        return result.stdout
    run("git", "init", "-q")
    run("dvc", "init", "-q")
    run("dvc", "repro", "clip")  # everything upstream; the arm and the evaluation are Dagster's to run

    resources = {"pipes": PipesSubprocessClient(), "project": CxrProject(root=str(root))}
    assets = [a for a in build_assets(tree) if a.key.to_user_string() in ("clip_ablation_openclip", "evaluation")]
    result = materialize(assets, resources=resources)
    assert result.success
    meta = {e.materialization.asset_key.to_user_string(): e.materialization.metadata
            for e in result.get_asset_materialization_events()}
    # Dagster ran them through DVC: dvc.lock records them and DVC finds nothing to do
    lock = yaml.safe_load((root / "dvc.lock").read_text())["stages"]
    assert {"ablation@openclip", "clip", "evaluate"} <= set(lock)
    shown = json.loads(run("dvc", "metrics", "show", "--json"))[""]["data"]
    metrics = shown["data/eval/metrics.json"]["data"]
    assert "i2t_r_at_10" in metrics["pipeline"]["openclip"]
    assert "didn't change" in run("dvc", "repro", "evaluate")
    assert meta["clip_ablation_openclip"]["text_tower"].value == "openclip"
    assert "| system |" in meta["evaluation"]["ablation"].value
    assert meta["evaluation"]["figure_recall_at_k"].value.startswith("![recall_at_k](data:image/png;base64,")
