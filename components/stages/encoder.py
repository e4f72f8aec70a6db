"""Stage `encoder` -> asset `text_encoder`: LLM2VEC4CXR (pretrain demo LM -> MNTP -> contrastive, LoRA)."""

from __future__ import annotations

import json
from pathlib import Path

from components.stages.base import Plot, Stage

STAGE = Stage(
    name="encoder", asset="text_encoder", group="encoder",
    description="LLM2VEC4CXR: bidirectional LM adapted with MNTP and supervised contrastive learning (LoRA, merged).",
    params=("encoder",),
    inputs=("${encoder.clean}", "${encoder.variants}"), outs=("${encoder.out}", "${encoder.steps_dir}"),
    metrics=("${encoder.metrics}",), plots=(Plot("${encoder.loss_plot}", x="step", y="loss"),),
)


def run(params) -> dict:
    from components.encoder.training import train_encoder

    return train_encoder(params.encoder)


def metadata(params, summary: dict) -> dict:
    from components.pipes import md, md_table, png_md
    from components.plots import line_png

    lines = [json.loads(x) for x in (Path(params.encoder.out) / "metrics.jsonl").read_text().splitlines() if x]
    steps = [(x["step"], x["loss"]) for x in lines if "loss" in x and "step" in x]
    ev = summary["evaluation"]
    evaluation = [{"split": split, "R@1 before": before, "R@1 after": ev["r_at_1_after"].get(split)}
                  for split, before in ev["r_at_1_before"].items()]
    meta = {"final_loss": {"raw_value": summary["final_loss"], "type": "json"},
            "evaluation": md(md_table(evaluation)), "seconds": summary["seconds"],
            "base_model": summary["base_model"]}
    if steps:
        meta["contrastive_loss"] = png_md(line_png([s for s, _ in steps], [v for _, v in steps], "loss"), "loss")
    return meta
