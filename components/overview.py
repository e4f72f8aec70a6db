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
        for item in s.items(params_tree):  # a foreach stage: one row per item (ablation@minilm, ...)
            figures, ran = {}, bool(s.metrics or s.outs)
            for metrics in s.metrics:
                path = root / resolve(metrics, params_tree, item)
                if path.exists():
                    figures.update(_flat(json.loads(path.read_text())))
                else:
                    ran = False
            outs = [resolve(o, params_tree, item) for o in s.outs]
            ran = ran and all((root / o).exists() for o in outs)
            files = (outs + [resolve(m, params_tree, item) for m in s.metrics]
                     + [resolve(p.path, params_tree, item) for p in s.plots])
            table.append({"stage": s.instance(item), "asset": s.asset, "ran": ran, "figures": figures,
                          "files": files, "outs": outs or files})
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


def _folders(files: list[str]) -> str:
    """Where a stage's files are, compactly: each file's folder once (its metrics are in data/metrics)."""
    folders = list(dict.fromkeys(Path(f).parent if Path(f).suffix else Path(f) for f in files))
    return ", ".join(str(f) for f in folders if not any(other in f.parents for other in folders))


def format_table(table: list[dict], width: int = 56) -> str:
    name = max(len(r["stage"]) for r in table)
    lines = [f"{'stage':<{name}}  {'headline figures (all: data/metrics, dvc metrics show)':<{width}}  outputs in"]
    for r in table:
        figures = _fit(r["figures"], width) if r["ran"] else "(not run yet)"
        lines.append(f"{r['stage']:<{name}}  {figures:<{width}}  {_folders(r['outs'])}")
    return "\n".join(lines)
