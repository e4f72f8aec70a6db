"""Stage `evaluate` -> asset `evaluation`: every CLIP (the pipeline's and each ablation arm) and every text
encoder on the pipeline's test split and any `evaluate.datasets`: retrieval, zero-shot AUROC, clinical F1,
text robustness and the ranking protocol; metrics.json, report.md, figures and DVC plot data."""

from __future__ import annotations

from pathlib import Path

from components.stages.base import Plot, Stage

OUT = "${evaluate.out}"
STAGE = Stage(
    name="evaluate", asset="evaluation", group="evaluation",
    description="Retrieval, zero-shot AUROC, clinical F1, text robustness and the ranking protocol for every CLIP "
                "and text encoder, with intervals; report.md, metrics.json and plots.",
    params=("evaluate",),
    inputs=("${evaluate.clean}", "${evaluate.variants}", "${evaluate.ingest}", "${evaluate.clip}",
            "${evaluate.ablation_dir}", "${evaluate.encoder}", "${evaluate.baseline}"),
    outs=(f"{OUT}/report.md", f"{OUT}/details.json", f"{OUT}/figures", f"{OUT}/human_template.csv"),
    metrics=(f"{OUT}/metrics.json",),
    plots=(Plot(f"{OUT}/plots/recall_at_k.json", x="k", y="recall"), Plot(f"{OUT}/plots/roc.json", x="fpr", y="tpr"),
           Plot(f"{OUT}/plots/ablation.json", x="metric", y="value")),
)


def run(params) -> dict:
    from components.evaluation.stage import evaluate

    return evaluate(params.evaluate)


def metadata(params, summary: dict) -> dict:
    from components.pipes import md, md_table, png_md

    out = Path(params.evaluate.out)
    meta = {"ablation": md(md_table(summary["ablation"])), "report": md((out / "report.md").read_text()),
            "metrics": {"raw_value": summary["metrics"], "type": "json"}}
    for name in summary["figures"]:
        meta[f"figure_{Path(name).stem}"] = png_md((out / "figures" / name).read_bytes(), Path(name).stem)
    return meta
