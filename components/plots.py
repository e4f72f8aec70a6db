"""A dependency-free line chart (PIL) for training curves in Dagster metadata."""

from __future__ import annotations

import io

from PIL import Image, ImageDraw


def line_png(xs: list[float], ys: list[float], label: str, size: tuple[int, int] = (480, 240)) -> bytes:
    w, h = size
    pad = 30
    image = Image.new("RGB", size, "white")
    draw = ImageDraw.Draw(image)
    x0, x1, y0, y1 = min(xs), max(xs), min(ys), max(ys)
    sx = (w - 2 * pad) / ((x1 - x0) or 1)
    sy = (h - 2 * pad) / ((y1 - y0) or 1)
    points = [(pad + (x - x0) * sx, h - pad - (y - y0) * sy) for x, y in zip(xs, ys)]
    draw.rectangle([pad, pad, w - pad, h - pad], outline="#999")
    if len(points) > 1:
        draw.line(points, fill="#1f77b4", width=2)
    draw.text((pad, 8), f"{label}: {ys[0]:.3f} -> {ys[-1]:.3f} over {len(ys)} steps", fill="black")
    buf = io.BytesIO()
    image.save(buf, format="PNG")
    return buf.getvalue()
