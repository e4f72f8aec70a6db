"""Stage `baselines` -> asset `baseline_encoders`: the same-size, same-budget BERT (MiniLM ships ready)."""

from __future__ import annotations

from components.stages.base import Stage

STAGE = Stage(
    name="baselines", asset="baseline_encoders", group="encoder",
    description="BERT baseline of the same size and data budget (MLM + the same contrastive step); MiniLM ships ready.",
    # the LLM's sizes and loops set the budget; its base_model and paths do not concern the baseline
    params=("baselines", "encoder.pretrain", "encoder.mntp", "encoder.contrastive"),
    inputs=("${baselines.clean}", "${baselines.variants}"), outs=("${baselines.out}", "${baselines.out}-mlm"),
    metrics=("${baselines.metrics}",),
)


def run(params) -> dict:
    from components.encoder.training import train_baselines

    return train_baselines(params.baselines, params.encoder)


def metadata(params, summary: dict) -> dict:
    from components.pipes import md, md_table

    ev = summary["evaluation"]
    rows = [{"split": s, "R@1 before": b, "R@1 after": ev["r_at_1_after"].get(s)} for s, b in ev["r_at_1_before"].items()]
    return {"evaluation": md(md_table(rows)), "mlm_steps": summary["mlm_steps"], "seconds": summary["seconds"]}
