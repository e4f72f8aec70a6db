"""The CLIP stage as users run it: resumed after SIGKILL, under torchrun DDP, through DVC and Dagster."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import yaml

from tests.conftest import run_checked as _run, REPO, small_params_tree

pytestmark = pytest.mark.slow  # each test trains the tiny CLIP model (and its upstream) end to end


def _weights(out) -> dict[str, np.ndarray]:
    from safetensors.numpy import load_file

    return load_file(Path(out) / "model.safetensors")


def _losses(out) -> dict[int, float]:
    from components.training.loop import read_metrics

    return {m["step"]: m["loss"] for m in read_metrics(Path(out) / "metrics.jsonl") if "loss" in m}


def _variant(p, tmp_path: Path, name: str, **update):
    loop = p.loop.model_copy(update=update.pop("loop", {}))
    return p.model_copy(update={"out": str(tmp_path / name), "metrics": str(tmp_path / f"{name}.json"),
                                "curve": str(tmp_path / f"{name}-curve.json"), "loop": loop, **update})


def _key_bias_free(name: str, w: np.ndarray) -> np.ndarray:
    """Attention key biases have an exactly zero gradient (they shift every logit of a query equally, and
    softmax ignores that); Adam turns the float noise of two summation orders into lr-sized steps on
    them, so they are left out of the DDP comparison. Every other weight must agree."""
    if name.endswith("attn.in_proj_bias"):
        third = len(w) // 3
        return np.concatenate([w[:third], w[2 * third:]])
    return w


def _assert_same_run(a, b, tol=1e-5, ignore_key_bias=False):
    la, lb = _losses(a), _losses(b)
    assert la.keys() == lb.keys() and all(abs(la[k] - lb[k]) <= tol * max(1.0, abs(la[k])) for k in la), (la, lb)
    wa, wb = _weights(a), _weights(b)
    assert wa.keys() == wb.keys()
    prep = _key_bias_free if ignore_key_bias else (lambda _, w: w)
    worst = {k: float(np.abs(prep(k, wa[k]) - prep(k, wb[k])).max()) for k in wa}
    assert max(worst.values()) <= tol, f"weights differ: {sorted(worst.items(), key=lambda kv: -kv[1])[:3]}"


@pytest.mark.timeout(600)
def test_resume_after_sigkill_equals_an_uninterrupted_run(small_params, embeddings_dir, tmp_path):
    from components.clip.train import train_clip

    p = _variant(small_params.clip, tmp_path, "base", workers=1, eval_every=6,  # loader workers on purpose
                 loop={"steps": 12, "batch_size": 8, "checkpoint_every": 3})
    killed = _variant(p, tmp_path, "killed")
    run = tmp_path / "killed-run.json"
    run.write_text(json.dumps({"clip": killed.model_dump(mode="json"),
                               "ingest": {"resolution": small_params.ingest.resolution,
                                          "percentiles": list(small_params.ingest.percentiles)}}))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.Popen([sys.executable, "-m", "components.clip.train", "--params-json", str(run)], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    checkpoint = tmp_path / "killed.work" / "checkpoints" / "step-6"
    deadline = time.time() + 300
    while not checkpoint.exists() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.05)
    assert proc.poll() is None, f"the run ended before it could be killed: {proc.stderr.read()[-2000:]}"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not Path(killed.out).exists()  # nothing half-written where the model goes

    resumed = train_clip(killed, small_params.ingest)
    assert resumed["resumed_from"] >= 6
    straight = train_clip(p, small_params.ingest)
    assert straight["resumed_from"] == 0
    assert straight["encoded"] == 0 and straight["from_cache"] > 0  # what earlier runs encoded came from the cache
    _assert_same_run(p.out, killed.out)
    assert json.loads((Path(p.out) / "eval.json").read_text()) == json.loads((Path(killed.out) / "eval.json").read_text())
    assert not (tmp_path / "killed.work").exists()


@pytest.mark.timeout(600)
def test_two_process_ddp_matches_one_process_on_the_global_batch(small_params, embeddings_dir, tmp_path):
    from components.clip.train import train_clip

    common = {"eval_every": 0, "grid_images": 0, "workers": 0}
    single = _variant(small_params.clip, tmp_path, "single", **common, loop={"steps": 3, "batch_size": 8})
    ddp = _variant(small_params.clip, tmp_path, "ddp", **common, nproc=2, loop={"steps": 3, "batch_size": 4})
    one = train_clip(single, small_params.ingest)
    two = train_clip(ddp, small_params.ingest)  # launches torchrun --nproc_per_node 2 (gloo)
    assert one["world_size"] == 1 and two["world_size"] == 2
    lines = [json.loads(x) for x in (Path(ddp.out) / "metrics.jsonl").read_text().splitlines()]
    assert all(len(set(x["shards"])) == 2 for x in lines if "shards" in x)  # ranks read different items
    _assert_same_run(single.out, ddp.out, ignore_key_bias=True)


def _project(root: Path, small_params) -> Path:
    """A checkout whose data/ holds the session's upstream outputs, with the tiny clip profile."""
    root.mkdir(parents=True)
    for name in ("dvc.yaml", ".dvcignore"):
        shutil.copy(REPO / name, root / name)
    shutil.copytree(REPO / "components", root / "components", ignore=shutil.ignore_patterns("__pycache__"))
    tree = small_params_tree(Path("data"))
    for key in ("ingest", "clean", "variants", "embeddings", "encoder", "baseline"):  # the session's upstream outputs
        shutil.copytree(getattr(small_params.clip, key), root / tree["clip"][key])
    tree["clip"]["loop"]["steps"] = 4
    (root / "params.yaml").write_text(yaml.safe_dump(tree, sort_keys=False))
    return root


@pytest.mark.timeout(600)
def test_dvc_repro_and_dagster_materialize_the_clip_stage(small_params, embeddings_dir, baseline_dir, tmp_path):
    from dagster import PipesSubprocessClient, materialize

    from components.clip.model import CXRClip
    from orchestration.assets import build_assets
    from orchestration.resources import CxrProject

    root = _project(tmp_path / "project", small_params)
    _run(["git", "init", "-q"], root)
    _run(["dvc", "init", "-q"], root)
    _run(["dvc", "config", "core.analytics", "false"], root)
    _run(["dvc", "repro", "--single-item", "clip"], root)
    assert CXRClip.load(root / "data/clip").encode_text(["No pneumothorax."]).shape == (1, 64)
    lock = yaml.safe_load((root / "dvc.lock").read_text())["stages"]["clip"]
    assert lock["params"]["params.yaml"]["ingest.resolution"] == 64 and "clip" in lock["params"]["params.yaml"]
    metrics = json.loads(_run(["dvc", "metrics", "show", "--json"], root))
    shown = {Path(k).stem: v["data"] for k, v in metrics[""]["data"].items() if "data" in v}  # upstream: not run here
    assert "val_i2t_r5" in shown["clip"]
    plots = _run(["dvc", "plots", "show", "--json"], root)
    errors = [e["name"] for e in json.loads(plots).get("errors", [])]  # upstream plots: their stages did not run here
    assert "clip_curve.json" in plots and "data/metrics/clip_curve.json" not in errors
    assert "didn't change" in _run(["dvc", "repro", "--single-item", "clip"], root)

    # a params change, then the asset: it runs the stage through DVC (dvc.lock records the new value)
    tree = yaml.safe_load((root / "params.yaml").read_text())
    tree["clip"]["loop"]["steps"] = 2
    (root / "params.yaml").write_text(yaml.safe_dump(tree, sort_keys=False))
    project = CxrProject(root=str(root))
    clip_asset = next(a for a in build_assets(project.params_tree()) if a.key.to_user_string() == "clip_model")
    result = materialize([clip_asset], resources={"pipes": PipesSubprocessClient(), "project": project})
    assert result.success
    meta = result.get_asset_materialization_events()[0].materialization.metadata
    assert meta["loss_curve"].value.startswith("![loss](data:image/png;base64,")
    assert meta["logit_scale_curve"].value.startswith("![logit scale](data:image/png;base64,")
    assert meta["validation_top3"].value.startswith("![validation images")
    assert "| i2t_r5 |" in meta["validation_retrieval"].value
    assert json.loads((root / "data/clip/train_summary.json").read_text())["steps"] == 2
    lock = yaml.safe_load((root / "dvc.lock").read_text())["stages"]["clip"]
    assert lock["params"]["params.yaml"]["clip"]["loop"]["steps"] == 2 and meta["lineage"].value == "dvc.lock"
