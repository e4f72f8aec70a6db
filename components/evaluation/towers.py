"""The text towers of the ablation and the CLIP params of each arm (same images, steps and seed)."""

from __future__ import annotations

from pathlib import Path

from components.params import TEXT_TOWERS


def arm_dir(ablation_dir: str | Path, tower: str) -> Path:
    return Path(ablation_dir) / tower


def arm_params(clip, ablation_dir: str | Path, tower: str):
    """The clip section for one arm: the pipeline's CLIP settings with this text tower, written under
    <ablation_dir>/<tower>. open_clip's text transformer has no frozen encoder to cache: it trains online."""
    if tower not in TEXT_TOWERS:
        raise ValueError(f"unknown text tower {tower!r}; known: {list(TEXT_TOWERS)}")
    out = arm_dir(ablation_dir, tower)
    update = {"text_tower": tower, "out": str(out / "model"), "metrics": str(out / "metrics.json"),
              "curve": str(out / "curve.json")}
    if tower == "openclip":
        update["text_mode"] = "online"
    return clip.model_copy(update=update)


def train_arm(params, tower: str) -> dict:
    """Train one ablation arm (the clip stage with this text tower); its summary."""
    from components.clip.train import train_clip

    return train_clip(arm_params(params.clip, params.evaluate.ablation_dir, tower), params.ingest)
