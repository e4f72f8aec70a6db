"""`cxr report`: every stage's headline figures (its DVC metrics file) and where its files are, as one
compact table, read from what the stages wrote (nothing is recomputed)."""

from __future__ import annotations

import json
from pathlib import Path

from components.stages import all_stages
from components.stages.base import resolve


def _flat(node, prefix: str = "") -> dict:
    if isinstance(node, dict):
        out = {}
        for key, value in node.items():
            out.update(_flat(value, f"{prefix}{key}."))
        return out
    return {prefix.rstrip("."): node}


def _fmt(value) -> str:
    if isinstance(value, bool):
        return "yes" if value else "NO"
    if isinstance(value, float):
        return f"{value:.3g}"
    return "-" if value is None else str(value)


def rows(params_tree: dict, root: Path = Path(".")) -> list[dict]:
    """One row per stage: name, headline figures (flattened metrics), files, and whether it has run."""
    table = []
    for s in all_stages():
        figures, ran = {}, bool(s.metrics or s.outs)
        for metrics in s.metrics:
            path = root / resolve(metrics, params_tree)
            if path.exists():
                figures.update(_flat(json.loads(path.read_text())))
            else:
                ran = False
        outs = [resolve(o, params_tree) for o in s.outs]
        ran = ran and all((root / o).exists() for o in outs)
        files = outs + [resolve(m, params_tree) for m in s.metrics] + [resolve(p.path, params_tree) for p in s.plots]
        table.append({"stage": s.name, "asset": s.asset, "ran": ran, "figures": figures, "files": files})
    return table


def _fit(figures: dict, width: int) -> str:
    """As many `key=value` as fit in `width` characters, then how many more the metrics file holds."""
    shown, text = 0, ""
    for key, value in figures.items():
        more = f"  (+{len(figures) - shown - 1} more)" if shown + 1 < len(figures) else ""
        item = f"{'  ' if text else ''}{key}={_fmt(value)}"
        if shown and len(text + item + more) > width:
            return f"{text}  (+{len(figures) - shown} more)"
        text, shown = text + item, shown + 1
    return text


def format_table(table: list[dict], width: int = 66) -> str:
    lines = [f"{'stage':<10} {'headline figures':<{width}} files"]
    for r in table:
        figures = _fit(r["figures"], width) if r["ran"] else "(not run yet)"
        lines.append(f"{r['stage']:<10} {figures:<{width}} {', '.join(r['files'])}")
    return "\n".join(lines)
