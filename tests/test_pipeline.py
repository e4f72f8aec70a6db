"""The three doors agree: DVC stages, Dagster assets and the CLI run the same stages on real data."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pandas as pd
import pytest
import yaml

from tests.conftest import REPO, small_params_tree


def _project(root: Path) -> Path:
    """A project checkout in `root` with small params writing inside it (relative paths, like the repo)."""
    root.mkdir(parents=True, exist_ok=True)
    for name in ("dvc.yaml", ".dvcignore"):
        shutil.copy(REPO / name, root / name)
    shutil.copytree(REPO / "components", root / "components", ignore=shutil.ignore_patterns("__pycache__"))
    tree = small_params_tree(Path("data"))
    tree["synth"].update(out="data/raw/synth", metrics="data/metrics/synth.json", n_studies=24)
    tree["ingest"].update(input="data/raw/synth", out="data/ingested", metrics="data/metrics/ingest.json")
    tree["clean"].update(input="data/ingested", out="data/clean", metrics="data/metrics/clean.json")
    tree["variants"].update(input="data/clean", out="data/variants", metrics="data/metrics/variants.json",
                            cache="data/cache/variants.sqlite")
    tree["encoder"].update(clean="data/clean", variants="data/variants", out="data/encoder",
                           steps_dir="data/encoder-steps", metrics="data/metrics/encoder.json",
                           loss_plot="data/metrics/encoder_loss.json", baseline="data/baselines/bert",
                           baseline_metrics="data/metrics/baselines.json")
    tree["embed"].update(encoder="data/encoder", clean="data/clean", variants="data/variants",
                         out="data/embeddings", metrics="data/metrics/embed.json", cache="data/cache/embeddings")
    (root / "params.yaml").write_text(yaml.safe_dump(tree, sort_keys=False))
    return root


def _resolve(text: str, params: dict) -> str:
    """DVC's ${section.key} templating, enough for our dvc.yaml."""
    def value(match):
        node = params
        for key in match.group(1).split("."):
            node = node[key]
        return str(node)
    return re.sub(r"\$\{([^}]+)\}", value, text)


def _dvc_graph(root: Path) -> dict[str, set[str]]:
    """Stage -> upstream stages, from which stage's outs each stage's deps fall under."""
    params = yaml.safe_load((root / "params.yaml").read_text())
    stages = yaml.safe_load((root / "dvc.yaml").read_text())["stages"]
    outs = {name: [_resolve(next(iter(o)) if isinstance(o, dict) else o, params) for o in s.get("outs", [])]
            for name, s in stages.items()}
    graph = {}
    for name, stage in stages.items():
        deps = [_resolve(d, params) for d in stage.get("deps", [])]
        graph[name] = {other for other, paths in outs.items() if other != name
                       for p in paths for d in deps if d == p or d.startswith(p.rstrip("/") + "/")}
    return graph


def test_dagster_asset_graph_matches_dvc_stage_graph():
    from orchestration.definitions import defs

    asset_graph = defs.resolve_asset_graph()
    stage_of = {}
    for key in asset_graph.get_all_asset_keys():
        stage_of[key] = asset_graph.get(key).tags["dvc_stage"]
    dagster_edges = {stage_of[k]: {stage_of[p] for p in asset_graph.get(k).parent_keys} for k in stage_of}
    assert dagster_edges == _dvc_graph(REPO)
    assert set(dagster_edges) == set(yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"])


def _run(cmd: list[str], cwd: Path) -> subprocess.CompletedProcess:
    result = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, f"{cmd} failed:\n{result.stdout}\n{result.stderr}"
    return result


@pytest.mark.timeout(600)
def test_dvc_repro_runs_stages_and_tracks_changes(tmp_path):
    root = _project(tmp_path / "project")
    _run(["git", "init", "-q"], root)
    _run(["dvc", "init", "-q"], root)
    _run(["dvc", "config", "core.analytics", "false"], root)
    _run(["dvc", "repro"], root)

    summary = json.loads((root / "data/ingested/summary.json").read_text())
    assert summary["studies"]["in"] == 24 and summary["conservation_ok"]
    assert summary["traps"]["all_accounted"]
    shown = _run(["dvc", "metrics", "show", "--json"], root).stdout
    metrics = {Path(path).stem: m["data"] for path, m in json.loads(shown)[""]["data"].items()}
    assert metrics["ingest"]["conservation_ok"] and metrics["ingest"]["traps_all_accounted"]
    assert metrics["synth"]["studies"] == 24 and metrics["clean"]["gx_success"]
    assert metrics["variants"]["accepted"] > 0
    plots = _run(["dvc", "plots", "show", "--json"], root).stdout
    assert "encoder_loss.json" in plots and '"loss"' in plots and "errors" not in json.loads(plots)
    lock = yaml.safe_load((root / "dvc.lock").read_text())
    assert set(lock["stages"]) == {"synth", "ingest", "clean", "variants", "encoder", "baselines", "embed"}
    assert lock["stages"]["ingest"]["params"]["params.yaml"]["ingest"]["resolution"] == 64

    assert "didn't change" in _run(["dvc", "repro"], root).stdout  # nothing to do
    _run(["dvc", "repro", "--dry", "--force"], root)
    params = yaml.safe_load((root / "params.yaml").read_text())
    params["ingest"]["resolution"] = 32
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    status = _run(["dvc", "status"], root).stdout
    assert "ingest" in status and "synth" not in status  # only the changed stage is stale
    _run(["dvc", "repro"], root)
    index = pd.read_parquet(root / "data/ingested/images.parquet")
    import numpy as np

    shard = np.load(root / "data/ingested/images" / index["shard"].iloc[0], mmap_mode="r")
    assert shard.shape[1:] == (32, 32)


@pytest.mark.timeout(600)
def test_dagster_materializes_assets_with_metadata_and_checks(tmp_path):
    from dagster import PipesSubprocessClient, materialize

    from orchestration.assets import stage_assets
    from orchestration.checks import checks
    from orchestration.resources import CxrProject

    root = _project(tmp_path / "project")
    result = materialize(
        [*stage_assets, *checks],
        resources={"pipes": PipesSubprocessClient(), "project": CxrProject(root=str(root))},
        run_config={"ops": {"raw_studies": {"config": {"overrides": {"synth.n_studies": "30"}}}}},
    )
    assert result.success
    metadata = {e.materialization.asset_key.to_user_string(): e.materialization.metadata
                for e in result.get_asset_materialization_events()}
    assert metadata["raw_studies"]["studies"].value == 30  # the launchpad override reached the CLI
    ingested = metadata["ingested_studies"]
    assert ingested["studies_in"].value == 30
    assert ingested["studies_in"].value == ingested["studies_out"].value + ingested["studies_quarantined"].value
    assert "| reason |" in ingested["quarantine_reasons"].value
    assert ingested["preview"].value.startswith("![ingested images](data:image/png;base64,")
    assert len(ingested["params_hash"].value) == 12 and ingested["code_version"].value
    checks_run = {e.check_name: e.passed for e in result.get_asset_check_evaluations()}
    assert checks_run == {"ingest_conservation": True, "ingest_traps_accounted": True,
                          "clean_quality_suite": True, "clean_phi_free": True, "clean_conservation": True,
                          "variants_acceptance": True}
    assert metadata["text_encoder"]["contrastive_loss"].value.startswith("![loss](data:image/png;base64,")
    assert metadata["text_embeddings"]["encoded"].value > 0
    assert "R@1 after" in metadata["baseline_encoders"]["evaluation"].value
    variants = metadata["report_variants"]
    assert variants["accepted"].value > 0 and "```diff" in variants["examples"].value
    assert metadata["clean_reports"]["gx_success"].value is True


@pytest.mark.timeout(600)
def test_blocking_conservation_check_fails_on_tampered_output(tmp_path):
    """The check recounts the written tables: drop a quarantine row and it must fail."""
    from dagster import PipesSubprocessClient, materialize

    from orchestration.assets import stage_assets
    from orchestration.checks import ingest_conservation
    from orchestration.resources import CxrProject

    root = _project(tmp_path / "project")
    resources = {"pipes": PipesSubprocessClient(), "project": CxrProject(root=str(root))}
    assert materialize(stage_assets, resources=resources).success
    quarantine = root / "data/ingested/quarantine.parquet"
    pd.read_parquet(quarantine).iloc[1:].to_parquet(quarantine)
    assert ingest_conservation(project=resources["project"]).passed is False


@pytest.mark.timeout(600)
def test_failing_blocking_check_stops_downstream_assets(tmp_path):
    """A real run: when the GX or PHI check on clean_reports fails, a downstream asset does not run."""
    from dagster import PipesSubprocessClient, asset, materialize

    from orchestration.assets import stage_assets
    from orchestration.checks import clean_conservation, clean_phi_free, clean_quality_suite
    from orchestration.resources import CxrProject

    root = _project(tmp_path / "project")
    resources = {"pipes": PipesSubprocessClient(), "project": CxrProject(root=str(root))}
    upstream = [a for a in stage_assets if a.key.to_user_string() in ("raw_studies", "ingested_studies")]
    clean_asset = next(a for a in stage_assets if a.key.to_user_string() == "clean_reports")
    assert materialize(upstream, resources=resources).success
    ran = []

    @asset(deps=["clean_reports"])
    def downstream():
        ran.append(True)

    def run(overrides: dict) -> dict:
        ran.clear()
        result = materialize([clean_asset, clean_quality_suite, clean_phi_free, clean_conservation, downstream],
                             resources=resources, raise_on_error=False,
                             run_config={"ops": {"clean_reports": {"config": {"overrides": overrides}}}})
        return {e.check_name: e.passed for e in result.get_asset_check_evaluations()}

    checks = run({"clean.quality.max_chars": "30"})  # every real report is longer: GX fails
    assert checks["clean_quality_suite"] is False and checks["clean_phi_free"] is True and not ran
    checks = run({"clean.phi_policy": "off"})  # planted PHI reaches the output: both gates fail
    assert False in checks.values() and not ran
    assert clean_phi_free(project=resources["project"]).passed is False  # the PHI gate on its own
    checks = run({})
    assert all(checks.values()) and ran == [True]
