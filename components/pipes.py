"""Report metadata to Dagster when a stage runs under Dagster Pipes; a no-op anywhere else."""

from __future__ import annotations

import base64
import os
from typing import Any

from dagster_pipes import DAGSTER_PIPES_CONTEXT_ENV_VAR, open_dagster_pipes


def under_dagster() -> bool:
    return bool(os.environ.get(DAGSTER_PIPES_CONTEXT_ENV_VAR))


def md(text: str) -> dict:
    return {"raw_value": text, "type": "md"}


def png_md(png: bytes, alt: str) -> dict:
    """A PNG shown inline in the Dagster UI as markdown."""
    return md(f"![{alt}](data:image/png;base64,{base64.b64encode(png).decode()})")


def md_table(rows: list[dict]) -> str:
    if not rows:
        return "_(none)_"
    cols = list(rows[0])
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    lines += ["| " + " | ".join(str(r.get(c, "")) for c in cols) + " |" for r in rows]
    return "\n".join(lines)


def report_materialization(metadata: dict[str, Any]) -> None:
    if not under_dagster():
        return
    with open_dagster_pipes() as pipes:
        pipes.report_asset_materialization(metadata=metadata)
