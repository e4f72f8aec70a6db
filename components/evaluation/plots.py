"""Dependency-free (PIL) charts for the evaluation report: curves (Recall@K, ROC) and grouped bars."""

from __future__ import annotations

import io

from PIL import Image, ImageDraw

COLORS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f")
PAD, LEGEND = 36, 150


def _png(image: Image.Image) -> bytes:
    buf = io.BytesIO()
    image.save(buf, format="PNG")
    return buf.getvalue()


def _frame(title: str, size: tuple[int, int]):
    image = Image.new("RGB", size, "white")
    draw = ImageDraw.Draw(image)
    w, h = size
    draw.rectangle([PAD, PAD, w - LEGEND, h - PAD], outline="#999")
    draw.text((PAD, 10), title, fill="black")
    return image, draw


def _legend(draw, names: list[str], w: int) -> None:
    for i, name in enumerate(names):
        y = PAD + 14 * i
        draw.rectangle([w - LEGEND + 8, y + 2, w - LEGEND + 18, y + 10], fill=COLORS[i % len(COLORS)])
        draw.text((w - LEGEND + 22, y), name[:20], fill="black")


def curves_png(series: dict[str, tuple[list[float], list[float]]], title: str, xlabel: str, ylabel: str,
               x_range: tuple[float, float] | None = None, diagonal: bool = False,
               size: tuple[int, int] = (560, 320)) -> bytes:
    """One line per series on [x_range] x [0, 1] (rates); `diagonal` draws the chance line of a ROC plot."""
    image, draw = _frame(title, size)
    w, h = size
    xs_all = [x for xs, _ in series.values() for x in xs] or [0.0, 1.0]
    x0, x1 = x_range or (min(xs_all), max(xs_all))
    sx, sy = (w - LEGEND - PAD) / ((x1 - x0) or 1), (h - 2 * PAD)

    def pt(x, y):
        return PAD + (x - x0) * sx, h - PAD - y * sy
    if diagonal:
        draw.line([pt(x0, 0), pt(x1, 1)], fill="#ccc")
    for i, (xs, ys) in enumerate(series.values()):
        points = [pt(x, y) for x, y in zip(xs, ys) if y is not None]
        if len(points) > 1:
            draw.line(points, fill=COLORS[i % len(COLORS)], width=2)
        for p in points:
            draw.ellipse([p[0] - 2, p[1] - 2, p[0] + 2, p[1] + 2], fill=COLORS[i % len(COLORS)])
    draw.text((PAD, h - PAD + 8), f"{xlabel}: {x0:g} .. {x1:g}", fill="black")
    draw.text((PAD + 4, PAD + 4), f"{ylabel} (0 .. 1)", fill="#555")
    _legend(draw, list(series), w)
    return _png(image)


def bars_png(groups: dict[str, dict[str, float | None]], title: str, size: tuple[int, int] = (560, 320)) -> bytes:
    """Grouped bars in [0, 1]: one group per metric, one bar per system (a missing value leaves a gap)."""
    image, draw = _frame(title, size)
    w, h = size
    systems = sorted({s for g in groups.values() for s in g})
    gw = (w - LEGEND - PAD) / max(len(groups), 1)
    bw = gw * 0.8 / max(len(systems), 1)
    for gi, (metric, values) in enumerate(groups.items()):
        gx = PAD + gi * gw + gw * 0.1
        for si, s in enumerate(systems):
            v = values.get(s)
            if v is None:
                continue
            top = h - PAD - max(0.0, min(1.0, v)) * (h - 2 * PAD)
            draw.rectangle([gx + si * bw, top, gx + (si + 1) * bw - 1, h - PAD], fill=COLORS[si % len(COLORS)])
        draw.text((gx, h - PAD + 8), metric[:int(gw / 6)], fill="black")
    _legend(draw, systems, w)
    return _png(image)
