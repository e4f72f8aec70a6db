"""CLIP training options beyond the default run: the SigLIP loss and gradient accumulation.

The loop-level tests drive components/training/loop.py with a tiny CXRClip (open_clip text tower, 32 px
ViT) on fixed random inputs, so every gradient can be recomputed by hand; the stage-level tests run
`train_clip` (what `cxr clip train` and the DVC stage call) on the session's tiny profile.
"""

from __future__ import annotations

import copy
import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from components.params import ClipParams, LoopConfig
from components.training.sampler import StepSampler

N = 12  # items of the loop-level data set


class Killed(Exception):
    """A run stopped mid-step (after its last checkpoint), as a kill would stop it."""


@pytest.fixture(autouse=True)
def _one_thread():
    """Bitwise-repeatable sums, and the shared 2-core machine stays usable."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _tiny(loss: str = "clip"):
    from components.clip.model import ClipModelConfig, CXRClip

    torch.manual_seed(0)
    return CXRClip(ClipModelConfig(vision_model="cxr-vit-tiny", image_size=32, embed_dim=16, text_mode="online",
                                   text_tower="openclip", loss=loss))


def _data(model):
    g = torch.Generator().manual_seed(1)
    images = torch.randn(N, 3, 32, 32, generator=g)
    words = ["effusion", "pneumothorax", "cardiomegaly", "edema", "atelectasis", "nodule"]
    tokens = model.tokenizer([f"{words[i % 6]} {words[(i // 2) % 6]} case {i}" for i in range(N)])
    return images, tokens


def _loss_fn(loss: str = "clip"):
    from components.clip.train import _loss
    from components.training.loop import Dist

    return _loss(ClipParams(loss=loss), Dist())


def _micro_loss(model, loss_fn, images, tokens, idx):
    image, text, scale, bias = model(images[idx], tokens[idx])
    return loss_fn(image, text, scale, bias)


def _hand_grads(model, loss_fn, images, tokens, micro_batches) -> tuple[dict, list[float]]:
    """The mean over micro-batches of each one's own gradient, each from a fresh backward."""
    model.train()
    per, losses = [], []
    for idx in micro_batches:
        model.zero_grad(set_to_none=True)
        loss = _micro_loss(model, loss_fn, images, tokens, idx)
        loss.backward()
        losses.append(float(loss.detach()))
        per.append({n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None})
    return {n: sum(g[n] for g in per) / len(per) for n in per[0]}, losses


def _loop_cfg(**kw) -> LoopConfig:
    base = {"steps": 1, "batch_size": 3, "lr": 1e-3, "warmup_steps": 0, "grad_clip": 0.0, "checkpoint_every": 0,
            "progress": False, "device": "cpu", "seed": 0}
    return LoopConfig(**{**base, **kw})


def _run_loop(model, cfg, work, loss_fn, images, tokens, fail_at: int | None = None):
    """train() with a step function that records its (step, items); the gradients the optimizer applied
    at each step (after_step runs after opt.step, before the next step clears them)."""
    from components.training import loop

    calls, grads = [], {}

    def step_fn(net, idx, step):
        if step == fail_at:
            raise Killed("simulated kill")
        calls.append((step, list(idx)))
        return _micro_loss(net, loss_fn, images, tokens, list(idx)), {}

    def after(done):
        grads[done] = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}

    summary = loop.train(model, step_fn, N, cfg, work, run_key={"test": "accumulate"}, after_step=after)
    return summary, calls, grads


def _max_diff(a: dict, b: dict) -> float:
    assert a.keys() == b.keys()
    return max(float((a[k] - b[k]).abs().max()) for k in a)


def test_accumulate_two_consumes_two_batches_and_applies_the_mean_micro_batch_gradient(tmp_path):
    from components.training.loop import read_metrics

    model = _tiny()
    images, tokens = _data(model)
    loss_fn = _loss_fn()
    start = copy.deepcopy(model)
    summary, calls, grads = _run_loop(model, _loop_cfg(accumulate=2), tmp_path / "w", loss_fn, images, tokens)

    # one optimizer step reads batch_size * accumulate = 6 distinct items: the sampler's first 6 positions
    whole = StepSampler(N, 6, seed=0).indices(0)
    assert calls == [(0, whole[0::2]), (0, whole[1::2])]
    assert len({i for _, idx in calls for i in idx}) == 6

    hand, losses = _hand_grads(copy.deepcopy(start), loss_fn, images, tokens, [whole[0::2], whole[1::2]])
    scale = max(float(g.abs().max()) for g in hand.values())
    assert _max_diff(grads[1], hand) <= 1e-6 * scale
    logged = read_metrics(tmp_path / "w" / "metrics.jsonl")
    assert len(logged) == 1 and abs(logged[0]["loss"] - sum(losses) / 2) < 1e-6
    assert abs(summary["final_loss"] - sum(losses) / 2) < 1e-6

    # what accumulation is not: the contrastive gradient of one batch of 6, or the sum of the two
    full, _ = _hand_grads(copy.deepcopy(start), loss_fn, images, tokens, [whole])
    assert _max_diff(grads[1], full) > 100 * 1e-6 * scale
    assert _max_diff(grads[1], {k: 2 * v for k, v in hand.items()}) > 0.1 * scale


def test_accumulate_one_is_one_plain_batch_per_step(tmp_path):
    model = _tiny()
    images, tokens = _data(model)
    loss_fn = _loss_fn()
    start = copy.deepcopy(model)
    _, calls, grads = _run_loop(model, _loop_cfg(steps=2, batch_size=6), tmp_path / "w", loss_fn, images, tokens)
    sampler = StepSampler(N, 6, seed=0)
    assert calls == [(0, sampler.indices(0)), (1, sampler.indices(1))]  # one call per step, the whole batch
    hand, _ = _hand_grads(start, loss_fn, images, tokens, [sampler.indices(0)])
    assert all(torch.equal(grads[1][k], hand[k]) for k in hand) and grads[1].keys() == hand.keys()


def test_an_accumulating_run_resumes_at_its_data_position(tmp_path):
    cfg = _loop_cfg(steps=3, accumulate=2, checkpoint_every=1)
    model = _tiny()
    images, tokens = _data(model)
    loss_fn = _loss_fn()
    _, straight, _ = _run_loop(model, cfg, tmp_path / "a", loss_fn, images, tokens)
    sampler = StepSampler(N, 6, seed=0)
    # step s reads stream positions [6s, 6s + 6): step 2 starts the second epoch of the 12 items
    assert [c for c in straight if c[0] == 2] == [(2, sampler.indices(2)[0::2]), (2, sampler.indices(2)[1::2])]
    assert sorted(sampler.indices(0) + sampler.indices(1)) == list(range(N))

    with pytest.raises(Killed):
        _run_loop(_tiny(), cfg, tmp_path / "b", loss_fn, images, tokens, fail_at=2)
    resumed = _tiny()
    summary, calls, _ = _run_loop(resumed, cfg, tmp_path / "b", loss_fn, images, tokens)
    assert summary["resumed_from"] == 2
    assert calls == [c for c in straight if c[0] == 2]
    worst = max(float((a - b).detach().abs().max()) for a, b in zip(model.parameters(), resumed.parameters()))
    assert worst <= 1e-6


def test_siglip_starts_at_the_papers_scale_and_bias_and_its_loss_uses_the_bias():
    model = _tiny("siglip")
    # SigLIP (Zhai et al. 2023) and open_clip: logit scale 10 (log 10 in log space), bias -10
    assert abs(float(model.log_logit_scale.detach()) - math.log(10)) < 1e-6 and abs(model.logit_scale - 10) < 1e-5
    assert float(model.logit_bias.detach()) == -10.0 and "logit_bias" in model.own_state()
    clip = _tiny("clip")
    assert abs(clip.logit_scale - 1 / 0.07) < 1e-4 and clip.logit_bias is None and "logit_bias" not in clip.own_state()

    images, tokens = _data(model)
    loss_fn = _loss_fn("siglip")
    assert type(loss_fn).__name__ == "SigLipLoss"
    image, text, scale, bias = model(images[:6], tokens[:6])
    assert bias is model.logit_bias
    loss = loss_fn(image, text, scale, bias)
    logits = scale * image @ text.T + bias
    labels = 2 * torch.eye(6) - 1
    expected = -torch.nn.functional.logsigmoid(labels * logits).sum() / 6
    assert abs(float(loss.detach()) - float(expected.detach())) < 1e-4
    loss.backward()
    # at -10 every pair reads as a non-match: the 6 positives dominate and push the bias up
    assert model.logit_bias.grad is not None and float(model.logit_bias.grad) < -0.5


def _clip_variant(p, tmp_path: Path, name: str, **update):
    loop = p.loop.model_copy(update=update.pop("loop", {}))
    return p.model_copy(update={"out": str(tmp_path / name), "metrics": str(tmp_path / f"{name}.json"),
                                "curve": str(tmp_path / f"{name}-curve.json"), "eval_every": 0, "grid_images": 0,
                                "workers": 0, "loop": loop, **update})


@pytest.mark.slow  # trains the tiny CLIP model for a few steps (on the session's encoder and embeddings)
def test_siglip_trains_through_the_stage_and_round_trips_its_bias(small_params, embeddings_dir, tmp_path):
    from safetensors.numpy import load_file

    from components.clip.model import CXRClip
    from components.clip.train import train_clip
    from components.training.loop import read_metrics

    p = _clip_variant(small_params.clip, tmp_path, "siglip", loss="siglip", text_mode="cached",
                      loop={"steps": 12, "batch_size": 8})
    summary = train_clip(p, small_params.ingest)
    rows = [r for r in read_metrics(Path(p.out) / "metrics.jsonl") if "loss" in r]
    losses = [r["loss"] for r in rows]
    assert len(losses) == 12 and all(np.isfinite(losses))
    # the sigmoid loss starts where every pair reads as a non-match: the bias must rise and the loss fall
    assert rows[0]["logit_bias"] == -10.0 and abs(rows[0]["logit_scale"] - 10) < 1e-5
    assert rows[-1]["logit_bias"] > -10.0 and summary["logit_bias"] > -10.0
    assert np.mean(losses[-3:]) < 0.8 * np.mean(losses[:3]), losses

    config = json.loads((Path(p.out) / "config.json").read_text())
    assert config["loss"] == "siglip" and config["init_logit_scale"] == 10.0 and config["init_logit_bias"] == -10.0
    weights = load_file(Path(p.out) / "model.safetensors")
    assert float(weights["logit_bias"]) == pytest.approx(summary["logit_bias"]) and float(weights["logit_bias"]) > -10
    model = CXRClip.load(p.out)
    assert float(model.logit_bias.detach()) == float(weights["logit_bias"])

    frames = [np.random.default_rng(i).integers(0, 255, (64, 64), dtype=np.uint8) for i in range(3)]
    texts = ["No acute cardiopulmonary process.", "Small left pleural effusion."]
    img, txt = model.encode_image(frames), model.encode_text(texts)
    logits = model.similarity(img, txt)
    by_hand = img @ txt.T * float(np.exp(weights["log_logit_scale"])) + float(weights["logit_bias"])
    assert np.abs(logits - by_hand).max() < 1e-5  # the bias is in the logits
    model.save(tmp_path / "again")
    back = CXRClip.load(tmp_path / "again")
    assert back.config.loss == "siglip" and float(back.logit_bias.detach()) == float(model.logit_bias.detach())
    assert np.abs(back.similarity(back.encode_image(frames), back.encode_text(texts)) - logits).max() < 1e-6


@pytest.mark.slow  # trains the tiny CLIP model for a few steps, twice (one of them killed and resumed)
def test_stage_accumulation_reads_every_micro_batch_and_resumes_in_step(small_params, embeddings_dir, tmp_path,
                                                                       monkeypatch):
    from components.clip.data import ClipDataset
    from components.clip.train import train_clip

    seen: list[tuple[int, int]] = []
    fail = {"step": None}
    original = ClipDataset.__getitem__

    def recording(self, key):
        if self.train:
            if key[0] == fail["step"]:
                raise Killed("simulated kill")
            seen.append(key)
        return original(self, key)

    monkeypatch.setattr(ClipDataset, "__getitem__", recording)
    p = _clip_variant(small_params.clip, tmp_path, "acc", loop={"steps": 3, "batch_size": 4, "accumulate": 2,
                                                                "checkpoint_every": 1})
    straight = train_clip(p, small_params.ingest)  # the stage's loader-vs-loop check raises on a mismatch
    n = straight["train"]["studies"]
    sampler = StepSampler(n, 8, seed=p.loop.seed)
    by_step = {s: [i for t, i in seen if t == s] for s in range(3)}
    # micro-batch k of step s = every other item of the step's 8: together exactly batch_size * 2 studies
    assert all(by_step[s] == sampler.indices(s)[0::2] + sampler.indices(s)[1::2] for s in range(3)), by_step

    killed = _clip_variant(p, tmp_path, "killed")
    seen.clear()
    fail["step"] = 2
    with pytest.raises(Killed):
        train_clip(killed, small_params.ingest)
    fail["step"] = None
    seen.clear()
    resumed = train_clip(killed, small_params.ingest)
    assert resumed["resumed_from"] == 2
    assert seen == [(2, i) for i in by_step[2]]  # the resumed run reads step 2's 8 studies, nothing earlier
    from safetensors.numpy import load_file

    a, b = load_file(Path(p.out) / "model.safetensors"), load_file(Path(killed.out) / "model.safetensors")
    assert a.keys() == b.keys() and max(float(np.abs(a[k] - b[k]).max()) for k in a) <= 1e-5
