"""Stage `package` -> asset `bento`: the retrieval index of PHI-checked reference reports and the model
card (data/package, DVC-tracked); the text encoder, the CLIP model and the index saved into the BentoML
model store under one version (git commit + inputs digest); then `bentoml build` of the service."""

from __future__ import annotations

from pathlib import Path

from components.stages.base import Stage

STAGE = Stage(
    name="package", asset="bento", group="serving",
    description="Retrieval index of PHI-checked reports and a model card (git commit, inputs' DVC hashes, params, "
                "evaluation metrics), the models in the BentoML store, and the Bento tagged with that lineage.",
    params=("package", "serve"),
    inputs=("${package.encoder}", "${package.clip}", "${package.clean}", "${package.evaluation}"),
    outs=("${package.out}",), metrics=("${package.metrics}",),
)


def run(params) -> dict:
    from components.packaging.bundle import build_package
    # The BentoML half lives in serving/ (components/ never imports bentoml at module level).
    from serving.bento import build_bento, save_models

    p = params.package
    summary = build_package(p, params.values())
    summary["models"] = save_models(p.encoder, p.clip, p.out)
    summary["bento"] = build_bento(p.out) if p.bento else None
    return summary


def metadata(params, summary: dict) -> dict:
    import json

    from components.pipes import md, md_table

    card = json.loads((Path(params.package.out) / "model_card.json").read_text())
    inputs = [{"input": k, "path": v["path"], "dvc md5": v["md5"]} for k, v in card["inputs"].items()]
    return {
        "package_version": summary["version"], "bento": summary["bento"] or "(not built)",
        "models": md(md_table([{"model": t} for t in summary["models"].values()])),
        "inputs": md(md_table(inputs)), "git_commit": str(card["git"]["commit"]),
        "indexed_reports": summary["indexed"], "excluded_phi": summary["excluded_phi"],
        "evaluation": {"raw_value": card["evaluation"], "type": "json"} if card["evaluation"] else "(not run)",
        "seconds": summary["seconds"],
    }
