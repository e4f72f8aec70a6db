"""Stage `embed` -> asset `text_embeddings`: every clean report and accepted variant, encoded and cached."""

from __future__ import annotations

from components.stages.base import Stage

STAGE = Stage(
    name="embed", asset="text_embeddings", group="encoder",
    description="Embeddings of every clean report and accepted variant, cached per encoder content hash.",
    params=("embed",),
    inputs=("${embed.encoder}", "${embed.clean}", "${embed.variants}"), outs=("${embed.out}",),
    metrics=("${embed.metrics}",),
)


def run(params) -> dict:
    from components.encoder.embed import embed

    return embed(params.embed)


def metadata(params, summary: dict) -> dict:
    return {k: summary[k] for k in ("encoder_hash", "dim", "reports", "variants", "encoded", "from_cache", "seconds")}
