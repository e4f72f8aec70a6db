"""Stage `synth` -> asset `raw_studies`: a synthetic MIMIC-CXR-style archive with planted traps."""

from __future__ import annotations

from components.stages.base import Option, Stage

STAGE = Stage(
    name="synth", asset="raw_studies", group="data",
    description="Synthetic MIMIC-CXR-style archive: DICOMs, reports, truth table and planted traps.",
    params=("synth",),
    outs=("${synth.out}",), private=True, metrics=("${synth.metrics}",),
    options=(Option("--n-studies", "synth.n_studies", int, "number of studies"),
             Option("--seed", "synth.seed", int, "random seed"),
             Option("--out", "synth.out", str, "output folder (MIMIC-CXR layout)")),
)


def run(params) -> dict:
    from components.synth.generate import generate

    return generate(params.synth)


def metadata(params, summary: dict) -> dict:
    from components.pipes import md, md_table

    traps = [{"trap": k, "studies": v} for k, v in summary["traps"].items()]
    styles = [{"style": k, "studies": v} for k, v in summary["styles"].items()]
    return {"studies": summary["n_studies"], "subjects": summary["n_subjects"], "images": summary["n_images"],
            "planted_traps": md(md_table(traps)), "report_styles": md(md_table(styles)),
            "seconds": summary["seconds"]}
