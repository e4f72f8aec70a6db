"""Shared fixtures: one small synthetic archive and its ingest, built once per test session."""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

import pytest
import yaml

# Keep tool state out of the user's home, as the CLI does.
os.environ.setdefault("DAGSTER_HOME", str(Path(__file__).resolve().parent.parent / ".cxr" / "dagster-test"))
os.environ.setdefault("DO_NOT_TRACK", "1")
os.environ.setdefault("DAGSTER_DISABLE_TELEMETRY", "1")
# BentoML's model and Bento stores: a fresh directory per session, set before bentoml is imported.
os.environ.setdefault("BENTOML_HOME", tempfile.mkdtemp(prefix="cxr-bentoml-test-"))
os.environ.setdefault("BENTOML_DO_NOT_TRACK", "True")

REPO = Path(__file__).resolve().parent.parent
# `dvc` and the `cxr` commands in dvc.yaml come from the interpreter's own environment.
os.environ["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"

# Small enough for seconds, large enough that every trap kind is planted.
SMALL = {
    "synth": {"n_studies": 48, "seed": 3, "image_size": 160, "workers": 1},
    "ingest": {"resolution": 64, "workers": 1, "shard_size": 16},
    # a few dozen patients cannot hold 80/10/10 proportions tightly
    "clean": {"quality": {"split_bounds": {"train": [0.3, 1.0], "val": [0.0, 0.4], "test": [0.0, 0.4]}}},
    # a tiny LLM2VEC4CXR: seconds, not minutes
    "encoder": {
        "pretrain": {"vocab_size": 300, "max_length": 64,
                     "size": {"hidden": 32, "layers": 2, "heads": 2, "kv_heads": 2, "intermediate": 64,
                              "max_positions": 128},
                     "loop": {"steps": 12, "batch_size": 8, "lr": 0.003, "warmup_steps": 2,
                              "checkpoint_every": 0, "progress": False}},
        "mntp": {"max_length": 64, "lora": {"r": 4, "alpha": 8},
                 "loop": {"steps": 6, "batch_size": 8, "lr": 0.001, "warmup_steps": 1, "checkpoint_every": 0,
                          "progress": False}},
        "contrastive": {"max_length": 96,  # room for the instruction with a 24-study tokenizer
                        "lora": {"r": 4, "alpha": 8},
                        "loop": {"steps": 6, "batch_size": 8, "lr": 0.0005, "warmup_steps": 1,
                                 "checkpoint_every": 0, "progress": False}},
    },
    "embed": {"batch_size": 16},
    # a tiny LLM2CLIP4CXR: 64 px frames straight from ingest, a 0.1M-parameter ViT, a few dozen steps
    "clip": {"workers": 0, "eval_every": 0, "grid_images": 2, "text_batch_size": 32,
             "loop": {"steps": 60, "batch_size": 16, "lr": 0.002, "warmup_steps": 5, "checkpoint_every": 0,
                      "progress": False}},
    "audit": {"dagster_home": False},  # the session's Dagster home is shared: audited in pipeline tests only
    # the evaluation on one ablation arm, few resamples, a handful of ranked studies
    "evaluate": {"ablation": ["openclip"], "minilm": False, "bootstrap": 50, "ranking": {"n_studies": 4}},
}


def _merge(dst: dict, src: dict) -> None:
    for key, value in src.items():
        if isinstance(value, dict) and isinstance(dst.get(key), dict):
            _merge(dst[key], value)
        else:
            dst[key] = value


def rewire(node, root: Path):
    """Every project path in a params tree (data/..., .cxr/...) moved under `root`, whatever the stage."""
    if isinstance(node, dict):
        return {k: rewire(v, root) for k, v in node.items()}
    if isinstance(node, list):  # e.g. audit.paths
        return [rewire(v, root) for v in node]
    if isinstance(node, str) and node.split("/")[0] in PROJECT_DIRS:
        return str(root / node.split("/", 1)[1]) if "/" in node else str(root)
    return node


PROJECT_DIRS = ("data", ".cxr")


def small_params_tree(root: Path) -> dict:
    tree = yaml.safe_load((REPO / "params.yaml").read_text())
    _merge(tree, SMALL)
    return rewire(tree, root)


@pytest.fixture(scope="session")
def small_params(tmp_path_factory):
    from components.params import Params

    root = tmp_path_factory.mktemp("small")
    return Params.model_validate(small_params_tree(root))


@pytest.fixture(scope="session")
def synth_dir(small_params) -> Path:
    from components.synth.generate import generate

    generate(small_params.synth, progress=False)
    return Path(small_params.synth.out)


@pytest.fixture(scope="session")
def ingest_dir(small_params, synth_dir) -> Path:
    from components.ingest.run import ingest

    ingest(small_params.ingest, progress=False)
    return Path(small_params.ingest.out)


@pytest.fixture(scope="session")
def clean_dir(small_params, ingest_dir) -> Path:
    from components.reports.clean import clean

    clean(small_params.clean, progress=False)
    return Path(small_params.clean.out)


@pytest.fixture(scope="session")
def variants_dir(small_params, clean_dir) -> Path:
    from components.variants.run import run_variants

    run_variants(small_params.variants, progress=False)
    return Path(small_params.variants.out)


@pytest.fixture(scope="session")
def encoder_dir(small_params, variants_dir) -> Path:
    from components.encoder.training import train_encoder

    train_encoder(small_params.encoder)
    return Path(small_params.encoder.out)


@pytest.fixture(scope="session")
def baseline_dir(small_params, variants_dir) -> Path:
    from components.encoder.training import train_baselines

    train_baselines(small_params.baselines, small_params.encoder)
    return Path(small_params.baselines.out)


@pytest.fixture(scope="session")
def embeddings_dir(small_params, encoder_dir) -> Path:
    from components.encoder.embed import embed

    embed(small_params.embed)
    return Path(small_params.embed.out)


@pytest.fixture(scope="session")
def clip_dir(small_params, embeddings_dir, ingest_dir) -> Path:
    """The tiny CLIP stage run once (cached mode, the LLM2VEC4CXR tower) for the tests that read a model."""
    from components.clip.train import train_clip

    train_clip(small_params.clip, small_params.ingest)
    return Path(small_params.clip.out)


@pytest.fixture(scope="session")
def package_clip_dir(small_params, encoder_dir, tmp_path_factory) -> Path:
    """A tiny CXRClip on the session's encoder (untrained: serving tests compare the service with the
    library, not with labels), decoding images at the session's ingest resolution."""
    import torch

    from components.clip.model import ClipModelConfig, CXRClip
    from components.encoder.text_encoder import TextEncoder

    torch.manual_seed(0)
    config = ClipModelConfig(vision_model="cxr-vit-tiny", image_size=32, embed_dim=16,
                             decode_resolution=small_params.ingest.resolution)
    out = tmp_path_factory.mktemp("clip") / "clip"
    CXRClip(config, TextEncoder.load(encoder_dir)).save(out)
    return out


@pytest.fixture(scope="session")
def package_params(small_params, package_clip_dir, clean_dir, encoder_dir):
    """The package section on the session's outputs (no evaluate output: the card records none)."""
    return small_params.package.model_copy(update={"encoder": str(encoder_dir), "clip": str(package_clip_dir),
                                                   "clean": str(clean_dir), "batch_size": 16})


@pytest.fixture(scope="session")
def packaged(package_params, small_params) -> dict:
    """The package stage without the Bento build: index + card, models saved in the session's store."""
    from components.packaging.bundle import build_package
    from serving.bento import save_models

    record = {"package": package_params.model_dump(mode="json"), "serve": small_params.serve.model_dump(mode="json")}
    summary = build_package(package_params, record)
    summary["models"] = save_models(package_params.encoder, package_params.clip, package_params.out)
    return summary


def run_checked(cmd: list[str], cwd: Path) -> str:
    """Run a command in a test project; its stdout, or a failure showing the end of both streams."""
    import subprocess

    result = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, f"{cmd} failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    return result.stdout
