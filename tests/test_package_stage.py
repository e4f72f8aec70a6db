"""The package stage through its doors: `dvc repro` (the card's input hashes are the ones dvc.lock
records, the Bento carries them) and a Dagster materialization of the `bento` asset; and the index's
PHI screen on the clean stage's published table."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pandas as pd
import pytest
import yaml

from tests.conftest import run_checked as _run, REPO, small_params_tree


def _project(root: Path, package_params) -> Path:
    """A checkout with the package stage's inputs in place (copied from the session's pipeline)."""
    root.mkdir(parents=True)
    for name in ("dvc.yaml", ".dvcignore"):
        shutil.copy(REPO / name, root / name)
    for name in ("components", "serving"):
        shutil.copytree(REPO / name, root / name, ignore=shutil.ignore_patterns("__pycache__"))
    for name, src in (("encoder", package_params.encoder), ("clip", package_params.clip), ("clean", package_params.clean)):
        shutil.copytree(src, root / "data" / name)
    (root / "data" / "eval").mkdir(parents=True)  # the evaluate stage's output folder, not yet run
    tree = small_params_tree(Path("data"))
    tree["package"].update(batch_size=16)
    (root / "params.yaml").write_text(yaml.safe_dump(tree, sort_keys=False))
    return root


@pytest.mark.slow
@pytest.mark.timeout(1200)
def test_dvc_repro_package_records_the_lock_hashes_in_card_models_and_bento(tmp_path, package_params):
    import bentoml

    root = _project(tmp_path / "project", package_params)
    for cmd in (["git", "init", "-q"], ["dvc", "init", "-q"], ["dvc", "config", "core.analytics", "false"],
                ["git", "add", "-A"], ["git", "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "x"]):
        _run(cmd, root)
    _run(["dvc", "repro", "--single-item", "package"], root)

    lock = yaml.safe_load((root / "dvc.lock").read_text())["stages"]["package"]
    locked = {d["path"]: d["md5"] for d in lock["deps"]}
    card = json.loads((root / "data/package/model_card.json").read_text())
    assert card["inputs"]["text_encoder"]["md5"] == locked["data/encoder"]
    assert card["inputs"]["clip"]["md5"] == locked["data/clip"]
    assert card["inputs"]["clean_reports"]["md5"] == locked["data/clean"]
    assert set(locked) >= {"serving/service.py", "components/packaging/index.py"}  # code deps from the imports
    head = _run(["git", "rev-parse", "HEAD"], root).strip()
    assert card["git"] == {"commit": head, "dirty": False} and card["version"].startswith(head[:12])
    assert card["evaluation"] is None  # the evaluate stage has not run here
    bento = bentoml.bentos.get(f"cxr-service:{card['version']}")
    assert bento.info.labels["dvc_text_encoder"] == locked["data/encoder"]
    assert bento.info.labels["git_commit"] == head[:12]
    metrics = json.loads((root / "data/metrics/package.json").read_text())
    assert metrics["indexed"] == card["index"]["indexed"] > 0
    # `cxr lineage <Bento tag>`: from the Bento's card to the dvc.lock record and on to the params
    traced = json.loads(_run(["cxr", "lineage", f"cxr-service:{card['version']}", "--json", "--no-verify"], root))
    assert traced["stage"] == "package" and traced["package"]["version"] == card["version"]
    assert traced["out"] == {"path": "data/package", "md5": {o["path"]: o["md5"] for o in lock["outs"]}["data/package"]}
    assert traced["stages"][-1]["params"]["package.batch_size"] == 16
    assert "didn't change" in _run(["dvc", "repro", "--single-item", "package"], root)

    # Evaluation metrics, once present, reach the card (a new version: an input changed).
    (root / "data/eval/metrics.json").write_text(json.dumps({"zero_shot": {"auroc_macro": 0.61}}))
    assert "package" in _run(["dvc", "status"], root)
    _run(["cxr", "package", "--set", "package.bento=false"], root)
    card2 = json.loads((root / "data/package/model_card.json").read_text())
    assert card2["evaluation"] == {"zero_shot": {"auroc_macro": 0.61}} and card2["version"] != card["version"]
    assert card2["inputs"]["evaluation"]["md5"].endswith(".dir")


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_dagster_materializes_the_bento_asset_with_lineage_metadata(tmp_path, package_params):
    from dagster import PipesSubprocessClient, materialize

    from orchestration.assets import build_assets
    from orchestration.resources import CxrProject

    root = _project(tmp_path / "project", package_params)
    project = CxrProject(root=str(root))
    bento_asset = next(a for a in build_assets(project.params_tree()) if a.key.to_user_string() == "bento")
    assert bento_asset.group_names_by_key[bento_asset.key] == "serving"
    assert {k.to_user_string() for k in bento_asset.asset_deps[bento_asset.key]} == {
        "text_encoder", "clip_model", "clean_reports", "evaluation"}
    result = materialize([bento_asset], resources={"pipes": PipesSubprocessClient(), "project": project},
                         run_config={"ops": {"bento": {"config": {"overrides": {"package.bento": "false"}}}}})
    assert result.success
    [event] = result.get_asset_materialization_events()
    meta = event.materialization.metadata
    card = json.loads((root / "data/package/model_card.json").read_text())
    assert meta["package_version"].value == card["version"] and meta["bento"].value == "(not built)"
    assert card["inputs"]["clip"]["md5"] in meta["inputs"].value and "| input |" in meta["inputs"].value
    assert meta["indexed_reports"].value == card["index"]["indexed"] and len(meta["params_hash"].value) == 12


def test_index_holds_only_reports_that_passed_the_phi_checks(tmp_path, clean_dir):
    from components.packaging.index import reference_reports

    table = pd.read_parquet(clean_dir / "reports.parquet")
    table.loc[0, "phi_spans"] = 2  # the clean stage's own check flagged it (e.g. phi_policy=off)
    table.loc[1, "text"] = table.loc[1, "text"] + " Patient phone 617-555-0123, MRN 12345678."  # the detector sees it
    (tmp_path / "clean").mkdir()
    table.to_parquet(tmp_path / "clean" / "reports.parquet")
    kept, counts = reference_reports(tmp_path / "clean", ["train", "val", "test"])
    assert counts["excluded_phi"] == 2 and counts["indexed"] == len(table) - 2 == len(kept)
    assert not set(kept["study_id"]) & {table.loc[0, "study_id"], table.loc[1, "study_id"]}
    only_test, c = reference_reports(tmp_path / "clean", ["test"])
    assert set(only_test["split"]) <= {"test"} and c["other_splits"] == (table["split"] != "test").sum()
