"""The one training loop every trainer shares (encoder pretrain, MNTP, contrastive; CLIP).

AdamW (no weight decay on gains, biases and scalars such as a logit scale) + warmup/cosine|linear
schedule + grad clipping + gradient accumulation; one JSON line of metrics per step; checkpoints
every N steps that a restarted run resumes from (trainable weights, optimizer, scheduler, RNG states,
data position), so a killed run finishes with the same metrics and weights as an uninterrupted one.
Under `torchrun` (WORLD_SIZE > 1) the model is wrapped in DDP (gloo on CPU, nccl on CUDA); only rank 0
writes. On CUDA the forward runs under bf16 autocast. The data order is `sampler.StepSampler`'s: a pure
function of (seed, step, rank), so the data position is the step.

Layout while running:  <out>.work/{run.json, metrics.jsonl, checkpoints/step-N/}
After `finish`:        <out>/{<model files>, metrics.jsonl, train_summary.json}, <out>.work removed.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import random
import shutil
import time
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch
import torch.distributed as dist
from torch import nn
from tqdm.auto import tqdm

from components.training.sampler import StepSampler, digest
from components.io import atomic_dir, stable, write_json
from components.params import LoopConfig

log = logging.getLogger(__name__)


@dataclass
class Dist:
    rank: int = 0
    world: int = 1
    device: torch.device = torch.device("cpu")

    @property
    def main(self) -> bool:
        return self.rank == 0


def init_distributed(device: str = "auto") -> Dist:
    """Join the torchrun process group when WORLD_SIZE > 1 (idempotent); pick this rank's device."""
    world, rank = int(os.environ.get("WORLD_SIZE", "1")), int(os.environ.get("RANK", "0"))
    cuda = device == "cuda" or (device == "auto" and torch.cuda.is_available())
    if cuda:
        dev = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
        torch.cuda.set_device(dev)
    else:
        dev = torch.device("cpu")
    if world > 1 and not dist.is_initialized():
        dist.init_process_group("nccl" if cuda else "gloo")
    return Dist(rank, world, dev)


def work_dir_for(out: str | Path) -> Path:
    """Checkpoints live next to the output, where a restarted run finds them."""
    out = Path(out)
    return out.with_name(out.name + ".work")


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def _barrier(d: Dist) -> None:
    if d.world > 1:
        dist.barrier()


def _gather(d: Dist, obj) -> list:
    """[obj of rank 0, obj of rank 1, ...] on every rank."""
    if d.world == 1:
        return [obj]
    out = [None] * d.world
    dist.all_gather_object(out, obj)
    return out


def _rng_state() -> dict:
    cuda = {"cuda": torch.cuda.get_rng_state_all()} if torch.cuda.is_available() else {}
    return {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state(), **cuda}


def _set_rng_state(state: dict) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _trainable(model: nn.Module) -> dict[str, torch.Tensor]:
    return {n: p.detach().cpu().clone() for n, p in model.named_parameters() if p.requires_grad}


def _checkpoints(work: Path) -> list[tuple[int, Path]]:
    found = [(int(p.name.split("-")[1]), p) for p in (work / "checkpoints").glob("step-*") if p.name[5:].isdigit()]
    return sorted(found)


def _schedule(opt, cfg: LoopConfig):
    warm, total = cfg.warmup_steps, max(cfg.steps, 1)

    def factor(step: int) -> float:
        if step < warm:
            return (step + 1) / (warm + 1)
        frac = min(1.0, (step - warm) / max(1, total - warm))
        return {"constant": 1.0, "linear": 1.0 - frac, "cosine": 0.5 * (1.0 + np.cos(np.pi * frac))}[cfg.schedule]

    return torch.optim.lr_scheduler.LambdaLR(opt, factor)


def param_groups(model: nn.Module, weight_decay: float) -> list[dict]:
    """Decay only matrices: gains, biases and scalars (norm weights, a logit scale) keep their size."""
    named = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    decay = [p for _, p in named if p.ndim >= 2]
    rest = [p for _, p in named if p.ndim < 2]
    return [g for g in ({"params": decay, "weight_decay": weight_decay}, {"params": rest, "weight_decay": 0.0})
            if g["params"]]


StepFn = Callable[[nn.Module, list[int], int], "tuple[torch.Tensor, dict]"]
AfterStep = Callable[[int], "dict | None"]


def train(model: nn.Module, step_fn: StepFn, n_items: int, cfg: LoopConfig, work: str | Path,
          d: Dist | None = None, run_key: dict | None = None, after_step: AfterStep | None = None) -> dict:
    """Optimise `model`'s trainable parameters for `cfg.steps` steps, resuming from `work` if a
    checkpoint of the same run (`run_key`: config + inputs) is there.

    step_fn(model, indices, step) -> (loss, extras): the loss on this rank's items of the global batch;
    `model` is the DDP wrapper under torchrun (call it, not its module, so gradients are synchronised).
    With cfg.accumulate > 1 it is called once per micro-batch of the step, in order.
    after_step(step_done) runs on every rank after each optimizer step (clamps, evaluation); the keys
    of the dict it returns join that step's metrics line.
    Returns a summary dict (steps, final loss, resumed_from, seconds, per-rank weight checksums)."""
    d = d or init_distributed(cfg.device)
    work = Path(work)
    loop = {k: v for k, v in cfg.model_dump(mode="json").items() if k not in ("progress", "checkpoint_every", "keep_checkpoints")}
    key = hashlib.sha1(json.dumps({"loop": loop, "run": run_key, "world": d.world},
                                  sort_keys=True, default=str).encode()).hexdigest()
    if d.main:
        run_file = work / "run.json"
        if work.exists() and (not run_file.exists() or json.loads(run_file.read_text()).get("key") != key):
            log.warning("%s holds another run's state (config or inputs changed): starting over", work)
            shutil.rmtree(work)
        (work / "checkpoints").mkdir(parents=True, exist_ok=True)
        write_json(run_file, {"key": key})
    _barrier(d)

    model.to(d.device)
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(param_groups(model, cfg.weight_decay), lr=cfg.lr)
    sched = _schedule(opt, cfg)
    seed_everything(cfg.seed + d.rank)
    start = 0
    found = _checkpoints(work)
    if found:
        start, path = found[-1]
        state = torch.load(path / "state.pt", weights_only=False, map_location="cpu")
        unexpected = model.load_state_dict(state["model"], strict=False).unexpected_keys
        if unexpected:  # the run key matched, so this is a bug, not a changed config
            raise RuntimeError(f"checkpoint {path} has weights the model lacks: {unexpected[:3]}")
        opt.load_state_dict(state["optimizer"])
        sched.load_state_dict(state["scheduler"])
        _set_rng_state(state["rng"][d.rank])
        assert state["step"] == start, "checkpoint step and directory name disagree"
        log.info("resuming from %s", path)
    metrics = work / "metrics.jsonl"
    if d.main:  # drop lines a killed run wrote after its last checkpoint
        kept = [m for m in read_metrics(metrics) if m["step"] <= start]
        metrics.write_text("".join(json.dumps(m) + "\n" for m in kept))

    net = nn.parallel.DistributedDataParallel(model, device_ids=[d.device.index] if d.device.type == "cuda"
                                              else None) if d.world > 1 else model
    sampler = StepSampler(n_items, cfg.batch_size * cfg.accumulate, cfg.seed, d.rank, d.world)
    bar = tqdm(total=cfg.steps, initial=start, disable=not (cfg.progress and d.main), desc="train")
    t0, loss_value = time.time(), float("nan")
    model.train()
    with open(metrics, "a") if d.main else open(os.devnull, "w") as sink:
        for step in range(start, cfg.steps):
            t = time.time()
            idx = sampler.indices(step)
            opt.zero_grad(set_to_none=True)
            loss_t, extras = torch.zeros((), device=d.device), {}
            for k in range(cfg.accumulate):  # micro-batch k of the step; DDP syncs gradients on the last
                sync = k == cfg.accumulate - 1 or d.world == 1
                with net.no_sync() if not sync else nullcontext():
                    with torch.autocast("cuda", dtype=torch.bfloat16, enabled=d.device.type == "cuda"):
                        loss, extras = step_fn(net, idx[k::cfg.accumulate], step)
                    (loss / cfg.accumulate).backward()
                loss_t += loss.detach().float() / cfg.accumulate
            grad_norm = nn.utils.clip_grad_norm_(params, cfg.grad_clip if cfg.grad_clip > 0 else float("inf"))
            lr = sched.get_last_lr()[0]
            opt.step()
            sched.step()
            if after_step is not None:
                extras = {**extras, **(after_step(step + 1) or {})}
            if d.world > 1:
                dist.all_reduce(loss_t)
                loss_t /= d.world
            loss_value, shards = loss_t.item(), _gather(d, digest(idx))
            line = {"step": step + 1, "loss": loss_value, "lr": lr, "seconds": round(time.time() - t, 4),
                    "grad_norm": float(grad_norm), **{k: float(v) for k, v in extras.items()}}
            if d.world > 1:
                line["shards"] = shards
            sink.write(json.dumps(line) + "\n")
            sink.flush()
            bar.update(1)
            bar.set_postfix(loss=f"{loss_value:.4f}")
            if cfg.checkpoint_every and (step + 1) % cfg.checkpoint_every == 0 and step + 1 < cfg.steps:
                _save_checkpoint(work, step + 1, model, opt, sched, cfg, d)
    bar.close()
    sums = _gather(d, float(sum(p.detach().double().sum().item() for p in params)))
    model.eval()
    return {"steps": cfg.steps, "final_loss": loss_value, "resumed_from": start, "world_size": d.world,
            "seconds": round(time.time() - t0, 2), "param_checksums": sums}


def _save_checkpoint(work: Path, step: int, model, opt, sched, cfg: LoopConfig, d: Dist) -> None:
    rng = _gather(d, _rng_state())
    if d.main:
        tmp = work / "checkpoints" / f".step-{step}.tmp"
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        torch.save({"step": step, "model": _trainable(model), "optimizer": opt.state_dict(),
                    "scheduler": sched.state_dict(), "rng": rng}, tmp / "state.pt")
        os.replace(tmp, work / "checkpoints" / f"step-{step}")  # a checkpoint exists whole or not at all
        for _, old in _checkpoints(work)[:-max(1, cfg.keep_checkpoints)]:
            shutil.rmtree(old, ignore_errors=True)
    _barrier(d)


def finish(out: str | Path, work: str | Path, save: Callable[[Path], None], summary: dict,
           d: Dist | None = None, extra_metrics: list[dict] | None = None) -> Path:
    """Rank 0 writes the output directory atomically (model via `save`, metrics, summary) and removes
    the work dir; other ranks wait for it."""
    d = d or init_distributed()
    out, work = Path(out), Path(work)
    if d.main:
        with atomic_dir(out) as tmp:
            save(tmp)
            # the kept record is the run's result: per-step timings stay in the run log, not in DVC's out
            rows = read_metrics(work / "metrics.jsonl") if (work / "metrics.jsonl").exists() else []
            (tmp / "metrics.jsonl").write_text("".join(json.dumps(stable(m)) + "\n"
                                                       for m in [*rows, *(extra_metrics or [])]))
            write_json(tmp / "train_summary.json", stable(summary))
        shutil.rmtree(work, ignore_errors=True)
    _barrier(d)
    return out


def read_metrics(path: str | Path) -> list[dict]:
    """The JSON lines of a metrics file; a half-written last line (a run killed mid-write) is skipped."""
    out = []
    for ln in Path(path).read_text().splitlines() if Path(path).exists() else []:
        try:
            out.append(json.loads(ln))
        except json.JSONDecodeError:
            continue
    return out


def stage_main(fn: Callable, config_cls, argv: list[str] | None = None):
    """`python -m <stage module> --config cfg.json --<path arg> PATH ...`: the entry torchrun launches.
    (The `cxr` CLI calls the same stage functions with params.yaml values.)"""
    import argparse
    import inspect

    parser = argparse.ArgumentParser(prog=fn.__module__)
    parser.add_argument("--config", help="JSON file of the stage config (defaults when omitted)")
    for name in list(inspect.signature(fn).parameters)[1:]:
        parser.add_argument(f"--{name}", required=True)
    args = vars(parser.parse_args(argv))
    config_path = args.pop("config")
    raw = json.loads(Path(config_path).read_text()) if config_path else {}
    main_rank = os.environ.get("RANK", "0") == "0"  # one readable log, not one per rank
    logging.basicConfig(level=logging.INFO if main_rank else logging.WARNING,
                        format="%(asctime)s %(name)s %(message)s")
    fn(config_cls.model_validate(raw), **args)
    if dist.is_initialized():
        dist.destroy_process_group()
