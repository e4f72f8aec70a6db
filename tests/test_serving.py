"""The BentoML service in process (its ASGI app under Starlette's TestClient): every endpoint, its
happy path against the library's own results, and each bad input as a clear 4xx, never a 5xx."""

from __future__ import annotations

import io
import json
import logging
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest

pytestmark = pytest.mark.slow  # the package fixture trains the tiny encoder (shared by the session)
PHI_NAME = "Zyxwvut^Quirina"  # a header value that must never come back or reach the logs


@pytest.fixture(scope="module")
def service(packaged):
    from starlette.testclient import TestClient

    from serving.service import CXRService

    with TestClient(CXRService.to_asgi()) as client:  # runs the lifespan: models load once
        yield client


@pytest.fixture(scope="module")
def library(packaged, package_params):
    """The library objects the service must agree with, loaded independently."""
    from components.clip.model import CXRClip
    from components.encoder.text_encoder import TextEncoder

    return TextEncoder.load(package_params.encoder), CXRClip.load(package_params.clip)


@pytest.fixture(scope="module")
def dicoms(synth_dir, ingest_dir) -> list[Path]:
    """DICOMs that ingest accepted (the archive also holds planted corrupt and truncated ones)."""
    ids = set(pd.read_parquet(ingest_dir / "images.parquet")["image_id"])
    found = sorted(p for p in synth_dir.rglob("*.dcm") if p.stem in ids)
    assert len(found) >= 3
    return found[:3]


def _bitmap(path: Path, ext: str) -> bytes:
    from components.clip.preprocess import load_frame

    ok, buf = cv2.imencode(ext, load_frame(path))
    assert ok
    return buf.tobytes()


def _no_pixels(path: Path) -> bytes:
    import pydicom

    ds = pydicom.dcmread(path)
    del ds.PixelData
    ds.PatientName = PHI_NAME
    out = io.BytesIO()
    ds.save_as(out, enforce_file_format=True)
    return out.getvalue()


def _post(client, route, **kw):
    r = client.post(route, **kw)
    assert r.status_code < 500, r.text
    return r


def _error(r) -> str:
    body = r.json()
    body = body[0] if isinstance(body, list) else body
    return json.dumps(body)


# ---- /embed_text -----------------------------------------------------------------------------------------

def test_embed_text_equals_the_library(service, library):
    text_encoder, clip = library
    texts = ["No acute cardiopulmonary process.", "Small left pleural effusion. No pneumothorax."]
    r = _post(service, "/embed_text", json={"texts": texts})
    assert r.status_code == 200
    np.testing.assert_allclose(np.array(r.json()), text_encoder.encode(texts), atol=1e-5)
    mixed = [{"text": texts[0], "encoder": "clip", "section": "full"}, texts[1],
             {"text": texts[0], "instruction": ""}]
    got = _post(service, "/embed_text", json={"texts": mixed}).json()
    np.testing.assert_allclose(got[0], clip.encode_text(texts[:1], section="full")[0], atol=1e-5)
    np.testing.assert_allclose(got[1], text_encoder.encode(texts[1:])[0], atol=1e-5)
    np.testing.assert_allclose(got[2], text_encoder.encode(texts[:1], instruction="")[0], atol=1e-5)


def test_a_merged_batch_runs_in_forward_passes_of_the_configured_size(service, library, dicoms, monkeypatch):
    """serve.text_batch_size / image_batch_size cut what adaptive batching merged into forward passes
    (texts sorted by length, longest first), with the vectors one pass would give."""
    import torch

    from components.encoder.text_encoder import TextEncoder
    from serving.inputs import SERVE

    text_encoder, clip = library
    passes = []

    def record(module, args, kwargs, output):  # (tower, items, padded length) of each forward pass
        if isinstance(module, TextEncoder):
            passes.append(("text", *kwargs["input_ids"].shape))
        elif type(module) is type(clip.visual):
            passes.append(("image", output.shape[0], None))

    texts = ["Clear lungs.", "Small left pleural effusion with adjacent atelectasis. No pneumothorax.",
             "No acute process.", "Mild cardiomegaly. Pulmonary vascular congestion without frank edema.",
             "Stable."]
    monkeypatch.setattr(SERVE, "text_batch_size", 2)
    monkeypatch.setattr(SERVE, "image_batch_size", 2)
    handle = torch.nn.modules.module.register_module_forward_hook(record, with_kwargs=True)
    try:
        got = _post(service, "/embed_text", json={"texts": texts})
        images = _post(service, "/embed_image",
                       files=[("images", (p.name, p.read_bytes(), "application/dicom")) for p in dicoms])
    finally:
        handle.remove()
    assert got.status_code == 200 and images.status_code == 200
    assert [(tower, n) for tower, n, _ in passes] == [("text", 2), ("text", 2), ("text", 1), ("image", 2), ("image", 1)]
    lengths = [length for tower, _, length in passes if tower == "text"]
    assert lengths == sorted(lengths, reverse=True) and lengths[0] > lengths[-1]
    np.testing.assert_allclose(np.array(got.json()), text_encoder.encode(texts, batch_size=len(texts)), atol=1e-5)
    np.testing.assert_allclose(np.array(images.json()), clip.encode_image(dicoms, batch_size=len(dicoms)), atol=1e-5)


@pytest.mark.parametrize("body, needle", [
    ({"texts": []}, "at least 1"),
    ({"texts": ["x"] * 65}, "at most 64"),
    ({"texts": ["a" * 20001]}, "at most 20000"),
    ({"texts": ["   "]}, "pattern"),
    ({"texts": [{"text": "Clear lungs.", "encoder": "gpt"}]}, "llm2vec4cxr"),
    ({"texts": [{"text": "Clear lungs.", "encoder": "clip", "instruction": "x"}]}, "instruction applies"),
    ({"texts": [{"text": "Clear lungs.", "section": "impression"}]}, "section applies"),
    ({"texts": [{"text": "Clear lungs.", "instruction": "word " * 150}]}, "leaves no room for text"),
    ({"text": "Clear lungs."}, "texts"),
])
def test_embed_text_rejects_bad_input(service, body, needle):
    r = _post(service, "/embed_text", json=body)
    assert r.status_code == 400 and needle in r.text


def test_a_rejected_request_is_one_log_line_that_never_quotes_its_input(service, caplog):
    """BentoML logs every failed request with a traceback; a pydantic error's text quotes the input,
    which here is a report (PHI). A 4xx is logged as one line: route, status, what was wrong."""
    from serving.inputs import SERVE

    caplog.set_level(logging.DEBUG)
    secret = "Zyxwvut Quirina seen in clinic"
    for body in ({"texts": [secret + " x" * SERVE.max_text_chars]},
                 {"texts": [{"text": secret, "encoder": "clip", "instruction": secret}]},
                 {"texts": [{"text": secret, "encoder": "gpt"}]}):
        caplog.clear()
        r = _post(service, "/embed_text", json=body)
        assert r.status_code == 400 and "Zyxwvut" not in r.text
        errors = [rec for rec in caplog.records if rec.levelno >= logging.WARNING]
        assert len(errors) == 1 and errors[0].levelno == logging.WARNING, caplog.text
        assert errors[0].getMessage().startswith("POST /embed_text rejected with 400: ")
        assert "validation error" in errors[0].getMessage()
        assert "Zyxwvut" not in caplog.text and "Traceback" not in caplog.text


def test_malformed_json_is_a_4xx(service):
    r = _post(service, "/embed_text", content=b"{not json", headers={"content-type": "application/json"})
    assert 400 <= r.status_code < 500


# ---- /embed_image ----------------------------------------------------------------------------------------

def test_embed_image_equals_the_library_for_dicom_png_and_jpeg(service, library, dicoms):
    _, clip = library
    png, jpeg = _bitmap(dicoms[1], ".png"), _bitmap(dicoms[2], ".jpg")
    files = [("images", ("a.dcm", dicoms[0].read_bytes(), "application/dicom")),
             ("images", ("b.png", png, "image/png")), ("images", ("c", jpeg, "application/octet-stream"))]
    r = _post(service, "/embed_image", files=files)
    assert r.status_code == 200
    expected = clip.encode_image([dicoms[0].read_bytes(), png, jpeg])
    np.testing.assert_allclose(np.array(r.json()), expected, atol=1e-5)


def test_dicom_without_pixels_is_422_and_its_header_is_never_echoed_or_logged(service, dicoms, caplog):
    caplog.set_level(logging.DEBUG)
    r = _post(service, "/embed_image", files=[("images", ("x.dcm", _no_pixels(dicoms[0]), "application/dicom"))])
    assert r.status_code == 422 and "no pixel data" in _error(r)
    assert "Zyxwvut" not in r.text and "Zyxwvut" not in caplog.text
    [logged] = [rec.getMessage() for rec in caplog.records if rec.levelno >= logging.WARNING]
    assert logged.startswith("POST /embed_image rejected with 422: Unprocessable: the DICOM has no pixel data")


@pytest.mark.parametrize("case, status, needle", [
    ("text/plain", 415, "unsupported content type"),
    ("png-declared-dicom-sent", 415, "content is DICOM"),
    ("random-bytes", 415, "not a DICOM, PNG or JPEG"),
    ("corrupt-png", 422, "could not decode the PNG"),
    ("truncated-dicom", 422, "could not decode the DICOM"),
    ("empty", 400, "empty upload"),
])
def test_embed_image_rejects_bad_uploads(service, dicoms, case, status, needle):
    good = dicoms[0].read_bytes()
    upload = {"text/plain": ("a.txt", b"hello", "text/plain"),
              "png-declared-dicom-sent": ("a.png", good, "image/png"),
              "random-bytes": ("a", bytes(range(256)) * 4, "application/octet-stream"),
              "corrupt-png": ("a.png", b"\x89PNG\r\n\x1a\n" + b"\x00" * 200, "image/png"),
              "truncated-dicom": ("a.dcm", good[: len(good) // 2], "application/dicom"),
              "empty": ("a.dcm", b"", "application/dicom")}[case]
    r = _post(service, "/embed_image", files=[("images", upload)])
    assert r.status_code == status and needle in _error(r)


def test_upload_limits(service, dicoms, monkeypatch):
    from serving import inputs

    r = _post(service, "/embed_image", data={})
    assert r.status_code == 400  # no images at all
    r = _post(service, "/embed_image", files=[("images", ("a.dcm", dicoms[0].read_bytes(), "application/dicom"))] * 17)
    assert r.status_code == 400 and "at most 16" in r.text
    monkeypatch.setattr(inputs.SERVE, "max_upload_bytes", 1000)
    r = _post(service, "/embed_image", files=[("images", ("a.dcm", dicoms[0].read_bytes(), "application/dicom"))])
    assert r.status_code == 413 and "larger than 1000 bytes" in _error(r)


def test_a_json_string_is_never_read_as_a_server_path(service):
    r = _post(service, "/embed_image", json={"images": ["/etc/hostname"]})
    assert r.status_code == 400 and "uploaded file" in r.text


# ---- /retrieve and /classify -----------------------------------------------------------------------------

def test_retrieve_by_text_finds_the_report_itself(service, package_params):
    index = pd.read_parquet(Path(package_params.out) / "index" / "reports.parquet")
    row = index.iloc[3]
    r = _post(service, "/retrieve", json={"text": row["text"], "k": 3})
    assert r.status_code == 200
    body = r.json()
    assert body["query"] == "text" and len(body["results"]) == 3
    top = body["results"][0]
    assert set(top) == {"study_id", "score", "report"} and top["score"] == pytest.approx(1.0, abs=1e-4)
    own = [x for x in body["results"] if x["study_id"] == row["study_id"]]  # ties with look-alikes allowed
    assert own and own[0]["report"] == row["text"] and own[0]["score"] == pytest.approx(top["score"], abs=1e-5)
    scores = [x["score"] for x in body["results"]]
    assert scores == sorted(scores, reverse=True)


def test_retrieve_by_image_ranks_reports_by_clip_similarity(service, library, dicoms, package_params):
    _, clip = library
    r = _post(service, "/retrieve", data={"k": "5"}, files=[("image", ("a.dcm", dicoms[0].read_bytes(),
                                                                       "application/dicom"))])
    assert r.status_code == 200 and r.json()["query"] == "image"
    results = r.json()["results"]
    index = pd.read_parquet(Path(package_params.out) / "index" / "reports.parquet")
    scores = np.load(Path(package_params.out) / "index" / "clip_vectors.npy") @ clip.encode_image([dicoms[0]])[0]
    score_of = dict(zip(index["study_id"], scores))
    assert [x["score"] for x in results] == pytest.approx([score_of[x["study_id"]] for x in results], abs=1e-5)
    assert [x["score"] for x in results] == pytest.approx(sorted(scores, reverse=True)[:5], abs=1e-5)


@pytest.mark.parametrize("kwargs, needle", [
    ({"json": {"k": 3}}, "exactly one of text or image"),
    ({"json": {"text": "Clear.", "k": 0}}, "greater than or equal to 1"),
    ({"json": {"text": "Clear.", "k": 101}}, "less than or equal to 100"),
    ({"json": {"text": ""}}, "at least 1"),
])
def test_retrieve_rejects_bad_input(service, kwargs, needle):
    r = _post(service, "/retrieve", **kwargs)
    assert r.status_code == 400 and needle in r.text


def test_retrieve_rejects_text_and_image_together(service, dicoms):
    r = _post(service, "/retrieve", data={"text": '"Clear."'},
              files=[("image", ("a.dcm", dicoms[0].read_bytes(), "application/dicom"))])
    assert r.status_code == 400 and "exactly one" in _error(r)


def test_classify_equals_the_zero_shot_library(service, library, dicoms):
    from components.evaluation.zero_shot import OBSERVATIONS, zero_shot_probabilities

    _, clip = library
    files = [("image", ("a.dcm", dicoms[0].read_bytes(), "application/dicom"))]
    r = _post(service, "/classify", files=files)
    assert r.status_code == 200
    probs = r.json()["probabilities"]
    assert list(probs) == list(OBSERVATIONS)
    expected = zero_shot_probabilities(clip, clip.encode_image([dicoms[0]]))
    for name in OBSERVATIONS:
        assert probs[name] == pytest.approx(float(expected[name][0]), abs=1e-5)
    r = _post(service, "/classify", files=files, data={"observations": json.dumps(["Edema", "Cardiomegaly"])})
    assert list(r.json()["probabilities"]) == ["Edema", "Cardiomegaly"]


@pytest.mark.parametrize("observations, needle", [
    (["Edema", "Broken Heart"], "unknown observations ['Broken Heart']"),
    ([], "at least 1"),
])
def test_classify_rejects_bad_observations(service, dicoms, observations, needle):
    r = _post(service, "/classify", files=[("image", ("a.dcm", dicoms[0].read_bytes(), "application/dicom"))],
              data={"observations": json.dumps(observations)})
    assert r.status_code == 400 and needle in r.text


def test_classify_without_an_image_is_400(service):
    r = _post(service, "/classify", json={"observations": ["Edema"]})
    assert r.status_code == 400


# ---- health and model card -------------------------------------------------------------------------------

def test_liveness_readiness_and_model_card(service, packaged, package_params):
    from components.packaging.lineage import dvc_hash

    assert service.get("/livez").status_code == 200 and service.get("/readyz").status_code == 200
    r = service.get("/model_card", follow_redirects=False)
    assert r.status_code == 200
    card = r.json()
    assert card["version"] == packaged["version"]
    assert card["inputs"]["text_encoder"]["md5"] == dvc_hash(package_params.encoder)
    assert card["inputs"]["clip"]["md5"] == dvc_hash(package_params.clip)
    assert card["inputs"]["clean_reports"]["md5"] == dvc_hash(package_params.clean)
    assert card["index"]["indexed"] == packaged["indexed"] and card["service"]["device"] in ("cpu", "cuda")
    assert all(t.endswith(":" + packaged["version"]) for t in card["service"]["models"])
