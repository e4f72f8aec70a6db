"""Encoder training on tiny models: pretrain -> MNTP -> contrastive learns, resumes after SIGKILL, and
runs under a 2-process torchrun (gloo) with disjoint data shards and identical final weights."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from safetensors.torch import load_file

from components.encoder.contrastive import info_nce, run_contrastive
from components.encoder.data import load_corpus, load_triples
from components.training.sampler import StepSampler
from components.encoder.mntp import run_mntp
from components.encoder.pretrain import run_pretrain
from components.training.loop import read_metrics
from components.params import ContrastiveConfig, LMSize, LoopConfig, LoraSettings, MNTPConfig, PretrainConfig

REPO = Path(__file__).resolve().parent.parent
TINY = LMSize(hidden=32, layers=2, heads=2, kv_heads=2, intermediate=64, max_positions=128)


def _loop(**kw) -> LoopConfig:
    return LoopConfig(**{"batch_size": 8, "warmup_steps": 3, "checkpoint_every": 10, "progress": False, **kw})


def contrastive_config(small: bool = False, **loop) -> ContrastiveConfig:
    """The learning test's config; `small`: fewer, shorter texts and no retrieval eval (subprocess tests)."""
    return ContrastiveConfig(max_length=96 if small else 128, temperature=0.05, hard_negatives=1 if small else 2,
                             eval_splits=() if small else ("train", "val"),
                             lora=LoraSettings(r=8, alpha=16, dropout=0.05),
                             loop=_loop(**{"steps": 30, "batch_size": 4 if small else 8, "lr": 5e-3, **loop}))


@pytest.fixture(scope="module")
def variants(variants_dir) -> Path:
    return variants_dir  # the real variants stage: if it fails, these tests fail with it


@pytest.fixture(scope="module")
def trained(tmp_path_factory, clean_dir, variants) -> dict:
    root = tmp_path_factory.mktemp("encoder")
    t0 = time.time()
    run_pretrain(PretrainConfig(vocab_size=400, max_length=128, size=TINY, loop=_loop(steps=30, lr=1e-2)),
                 clean_dir, root / "lm")
    t1 = time.time()
    run_mntp(MNTPConfig(max_length=128, lora=LoraSettings(r=8, alpha=16), loop=_loop(steps=20, lr=5e-3)),
             clean_dir, root / "lm", root / "mntp")
    t2 = time.time()
    result = run_contrastive(contrastive_config(), clean_dir, variants, root / "mntp", root / "encoder")
    print(f"pretrain {t1 - t0:.1f}s, mntp {t2 - t1:.1f}s, contrastive {time.time() - t2:.1f}s; {result}")
    return {"root": root, "result": result, "clean": clean_dir, "variants": variants}


def _train_lines(path: Path) -> list[dict]:
    return [m for m in read_metrics(path) if m.get("event") != "eval"]


def test_sampler_is_deterministic_and_shards_disjoint():
    a, b = StepSampler(10, 3, seed=1, rank=0, world=2), StepSampler(10, 3, seed=1, rank=1, world=2)
    assert a.indices(5) == StepSampler(10, 3, seed=1, rank=0, world=2).indices(5)
    assert not set(a.indices(0)) & set(b.indices(0)) and len(a.indices(0)) == 3
    assert sorted(a.global_batch(0) + a.global_batch(1)[:4]) == list(range(10))  # one epoch, each item once


def test_info_nce_masks_same_report_positives():
    import torch

    anchors = torch.tensor([[1.0, 0.0], [1.0, 0.0]])
    candidates = torch.tensor([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0]])  # two positives, one negative
    owner, group = torch.tensor([0, 1, 0]), torch.tensor([7, 7])  # both rows are the same report
    loss, acc = info_nce(anchors, candidates, owner, group, 0.05)
    assert loss.item() < 1e-6 and acc.item() == 1.0


@pytest.mark.slow  # trains the tiny recipe end to end
def test_pipeline_learns(trained):
    root, result = trained["root"], trained["result"]
    for stage in ("lm", "mntp", "encoder"):
        lines = _train_lines(root / stage / "metrics.jsonl")
        assert lines and all({"step", "loss", "lr"} <= set(m) and "seconds" not in m for m in lines)
        assert [m["step"] for m in lines] == list(range(1, len(lines) + 1))
        assert not (root / f"{stage}.work").exists()  # checkpoints removed after success
    losses = [m["loss"] for m in _train_lines(root / "encoder" / "metrics.jsonl")]
    print(f"contrastive loss first 5 {np.mean(losses[:5]):.3f} -> last 5 {np.mean(losses[-5:]):.3f}")
    assert np.mean(losses[-5:]) < np.mean(losses[:5]) - 0.3, losses
    before, after = result["r_at_1_before"]["train"], result["r_at_1_after"]["train"]
    assert after > before + 0.03, result
    eval_line = read_metrics(root / "encoder" / "metrics.jsonl")[-1]
    assert eval_line["event"] == "eval" and eval_line["train/r_at_1_after"] == after

    from components.encoder.text_encoder import TextEncoder

    enc = TextEncoder.load(root / "encoder")
    emb = enc.encode(["No pneumothorax.", "Small left effusion."])
    assert emb.shape == (2, TINY.hidden) and np.allclose(np.linalg.norm(emb, axis=1), 1, atol=1e-5)
    assert enc.config.instruction == ContrastiveConfig().instruction


@pytest.mark.slow  # trains the tiny recipe end to end
def test_triples_are_same_report(trained):
    triples = load_triples(trained["clean"], trained["variants"], "train", hard_negatives=2, seed=0)
    corpus = set(load_corpus(trained["clean"]))
    assert triples and all(t.anchor in corpus and t.positive != t.anchor and len(t.negatives) <= 2 for t in triples)
    assert load_triples(trained["clean"], trained["variants"], "train", 2, 0) == triples  # deterministic


SCRIPT = """
import sys, time
from components.encoder import contrastive
from tests.test_encoder_training import contrastive_config
if sys.argv[1] == "slow":  # give the parent time to kill us between checkpoint and the end
    real = contrastive.info_nce
    contrastive.info_nce = lambda *a, **k: (time.sleep(0.3), real(*a, **k))[1]
contrastive.run_contrastive(contrastive_config(small=True, steps=12, checkpoint_every=4), *sys.argv[2:])
"""


def _run(mode: str, *args) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", SCRIPT, mode, *map(str, args)], cwd=REPO,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


@pytest.mark.slow  # trains the tiny recipe end to end
def test_resume_after_sigkill_matches_uninterrupted_run(trained, tmp_path):
    args = (trained["clean"], trained["variants"], trained["root"] / "mntp")
    full, resumed = tmp_path / "full", tmp_path / "resumed"
    work = resumed.with_name("resumed.work")
    victim = _run("slow", *args, resumed)
    deadline = time.time() + 90
    while time.time() < deadline and victim.poll() is None:  # kill two steps after the step-4 checkpoint
        if (work / "metrics.jsonl").exists() and any(m["step"] >= 6 for m in read_metrics(work / "metrics.jsonl")):
            break
        time.sleep(0.05)
    assert victim.poll() is None, victim.communicate()[0][-3000:]
    os.kill(victim.pid, signal.SIGKILL)
    victim.wait()
    assert not resumed.exists() and (work / "checkpoints" / "step-4").exists()
    restart = _run("fast", *args, resumed)
    run_contrastive(contrastive_config(small=True, steps=12, checkpoint_every=4), *args, full)  # the reference
    out, _ = restart.communicate(timeout=120)
    assert restart.returncode == 0 and (resumed / "metrics.jsonl").exists(), out[-3000:]

    assert json.loads((resumed / "train_summary.json").read_text())["resumed_from"] == 4
    a, b = _train_lines(full / "metrics.jsonl"), _train_lines(resumed / "metrics.jsonl")
    assert [m["step"] for m in a] == [m["step"] for m in b] == list(range(1, 13))
    assert np.allclose([m["loss"] for m in a], [m["loss"] for m in b], atol=1e-5, rtol=0)
    wa, wb = load_file(full / "model.safetensors"), load_file(resumed / "model.safetensors")
    assert wa.keys() == wb.keys() and all(np.allclose(wa[k], wb[k], atol=1e-5) for k in wa)


@pytest.mark.slow  # trains the tiny recipe end to end
def test_torchrun_two_processes_gloo(trained, tmp_path):
    torchrun = Path(sys.executable).parent / "torchrun"
    config = tmp_path / "config.json"
    cfg = contrastive_config(small=True, steps=4, checkpoint_every=2, device="cpu").model_dump(mode="json")
    config.write_text(json.dumps(cfg))
    out = tmp_path / "ddp"
    proc = subprocess.run(
        [str(torchrun), "--standalone", "--nproc_per_node", "2", "-m", "components.encoder.contrastive",
         "--config", str(config), "--clean_dir", str(trained["clean"]), "--variants_dir", str(trained["variants"]),
         "--backbone_dir", str(trained["root"] / "mntp"), "--out", str(out)],
        cwd=REPO, capture_output=True, text=True, timeout=180, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-4000:]
    lines = _train_lines(out / "metrics.jsonl")
    assert [m["step"] for m in lines] == list(range(1, 5))
    assert all(len(m["shards"]) == 2 and m["shards"][0] != m["shards"][1] for m in lines)
    summary = json.loads((out / "train_summary.json").read_text())
    assert summary["world_size"] == 2 and summary["param_checksums"][0] == summary["param_checksums"][1]
