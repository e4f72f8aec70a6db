"""Stage `ablation` (foreach text tower) -> assets `clip_ablation_<tower>`: the clip stage trained with each
text tower of `evaluate.ablation`, everything else equal (images, steps, seed), each its own artifact."""

from __future__ import annotations

from components.stages.base import Plot, Stage

ARM = "${evaluate.ablation_dir}/${item}"
STAGE = Stage(
    name="ablation", asset="clip_ablation", group="evaluation",
    description="CLIP trained with one text tower of the ablation (llm2vec4cxr, bert_baseline, minilm, openclip), "
                "on the same images, steps and seed as every other arm.",
    params=("clip", "ingest.resolution", "ingest.percentiles", "evaluate.ablation_dir"),
    inputs=("${clip.ingest}", "${clip.clean}", "${clip.variants}", "${clip.embeddings}", "${clip.encoder}",
            "${clip.baseline}"),
    outs=(f"{ARM}/model",), metrics=(f"{ARM}/metrics.json",), plots=(Plot(f"{ARM}/curve.json", x="step", y="loss"),),
    foreach="${evaluate.ablation}",
)


def run(params, tower: str) -> dict:
    from components.evaluation.towers import train_arm

    return train_arm(params, tower)


def metadata(params, summary: dict, tower: str) -> dict:
    from components.pipes import md, md_table

    after = summary.get("after") or {}
    return {"text_tower": tower, "final_loss": summary.get("final_loss"),
            "best_step": summary.get("best_step"),
            "validation": md(md_table([{"metric": k, "value": v} for k, v in after.items()]))}
