"""Validation retrieval of a CXRClip: image -> report and report -> image recall@k and median rank,
and a picture of a few validation images with the reports they retrieve.

A retrieved report counts as correct when its text equals the study's own report: templated normal
reports repeat word for word across studies, and retrieving an identical text is not an error.
"""

from __future__ import annotations

import textwrap

import numpy as np

KS = (1, 5, 10)


def _ranks(sim: np.ndarray, correct: np.ndarray) -> np.ndarray:
    """1-based rank of the best-ranked correct column per row (sim and correct: queries x gallery)."""
    best = np.where(correct, sim, -np.inf).max(axis=1, keepdims=True)
    return (sim > best).sum(axis=1) + 1


def retrieval_metrics(image_vecs: np.ndarray, text_vecs: np.ndarray, reports: list[str]) -> dict:
    """Row i of image_vecs and text_vecs are study i; `reports` their texts (for the identity of texts)."""
    sim = image_vecs @ text_vecs.T
    same = np.array([[a == b for b in reports] for a in reports])
    out = {"n": len(reports)}
    for name, s in (("i2t", sim), ("t2i", sim.T)):
        ranks = _ranks(s, same)
        out.update({f"{name}_r{k}": round(float((ranks <= k).mean()), 6) for k in KS})
        out[f"{name}_median_rank"] = float(np.median(ranks))
    return out


def grid_png(frames: list[np.ndarray], top_reports: list[list[str]], truth: list[str], cell: int = 160) -> bytes:
    """One row per image: the image, then its top-3 retrieved reports (a check mark on the study's own)."""
    import io

    from PIL import Image, ImageDraw

    width, height = cell + 3 * 260, cell * len(frames)
    canvas = Image.new("RGB", (width, max(height, 1)), "white")
    draw = ImageDraw.Draw(canvas)
    for row, (frame, tops, own) in enumerate(zip(frames, top_reports, truth)):
        y = row * cell
        canvas.paste(Image.fromarray(frame).convert("RGB").resize((cell, cell)), (0, y))
        for j, text in enumerate(tops):
            mark = "[own] " if text == own else ""
            wrapped = textwrap.fill(f"{j + 1}. {mark}{text}", width=40)
            lines = wrapped.splitlines()[:10]
            draw.text((cell + 8 + j * 260, y + 4), "\n".join(lines), fill="black" if mark else "#555")
        draw.line([(0, y + cell - 1), (width, y + cell - 1)], fill="#ccc")
    buf = io.BytesIO()
    canvas.save(buf, format="PNG")
    return buf.getvalue()
