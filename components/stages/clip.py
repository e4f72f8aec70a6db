"""Stage `clip` -> asset `clip_model`: LLM2CLIP4CXR, an open_clip vision tower against the report encoder."""

from __future__ import annotations

import json
from pathlib import Path

from components.stages.base import Option, Plot, Stage

STAGE = Stage(
    name="clip", asset="clip_model", group="clip",
    description="LLM2CLIP4CXR: open_clip vision tower + report encoder (cached adapter or online LoRA), "
                "kept by validation image->report R@5.",
    # ingest.resolution / percentiles: how the frames were decoded, recorded so that CXRClip decodes
    # DICOM / PNG / JPEG inputs exactly as ingest did
    params=("clip", "ingest.resolution", "ingest.percentiles"),
    inputs=("${clip.ingest}", "${clip.clean}", "${clip.variants}", "${clip.embeddings}", "${clip.encoder}",
            "${clip.baseline}"),
    outs=("${clip.out}",), metrics=("${clip.metrics}",),
    plots=(Plot("${clip.curve}", x="step", y="loss"),),
    options=(Option("--text-mode", "clip.text_mode", str,
                    "cached: frozen text encoder, vectors encoded once, a residual MLP adapter trains (LLM2CLIP); "
                    "online: the encoder trains in the loop with LoRA (LLM2CLIP4CXR)"),
             Option("--text-tower", "clip.text_tower", str,
                    "llm2vec4cxr (clip.encoder) | bert_baseline (clip.baseline) | minilm (shipped all-MiniLM-L6-v2) "
                    "| openclip (open_clip's text transformer from scratch; online only)"),
             Option("--vision-model", "clip.vision_model", str,
                    "cxr-vit-tiny | cxr-vit-b-16 | cxr-resnet50 (components/clip/model_configs) or an open_clip name"),
             Option("--nproc", "clip.nproc", int, "processes; > 1 launches torchrun (DDP: gloo on CPU, nccl on GPU)")),
)


def run(params) -> dict:
    from components.clip.train import train_clip

    return train_clip(params.clip, params.ingest)


def metadata(params, summary: dict) -> dict:
    from components.pipes import md, md_table, png_md
    from components.plots import line_png

    out = Path(params.clip.out)
    lines = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines() if x]
    steps = [x for x in lines if "loss" in x]
    rows = [{"metric": k, "untrained": summary["before"].get(k), "trained": v}
            for k, v in summary["after"].items() if k != "n"]
    meta = {"final_loss": summary["final_loss"], "logit_scale": summary["logit_scale"],
            "best_step": summary["best_step"], "val_studies": summary["val"]["studies"],
            "validation_retrieval": md(md_table(rows)),
            "text_mode": params.clip.text_mode, "text_tower": params.clip.text_tower,
            "encoder_hash": str(summary.get("encoder_hash"))}
    if "seconds" in summary:  # a torchrun launch returns rank 0's tracked summary, without run facts
        meta["seconds"] = summary["seconds"]
    if steps:
        xs = [x["step"] for x in steps]
        meta["loss_curve"] = png_md(line_png(xs, [x["loss"] for x in steps], "loss"), "loss")
        meta["logit_scale_curve"] = png_md(line_png(xs, [x["logit_scale"] for x in steps], "logit scale"),
                                           "logit scale")
    if (out / "val_grid.png").exists():
        meta["validation_top3"] = png_md((out / "val_grid.png").read_bytes(), "validation images and top-3 reports")
    return meta
