"""The built Bento: its model card names the DVC hashes of its inputs, and a real `bentoml serve` of it
on 127.0.0.1 answers the Python client, alone and under concurrent requests."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tests.conftest import REPO

pytestmark = pytest.mark.slow  # a Bento build and a real server


@pytest.fixture(scope="module")
def bento(packaged, package_params):
    import bentoml

    from serving.bento import build_bento

    tag = build_bento(package_params.out)
    return bentoml.bentos.get(tag)


def test_bento_carries_models_and_a_card_with_the_inputs_dvc_hashes(bento, packaged, package_params):
    import bentoml

    from components.packaging.lineage import dvc_hash

    version = packaged["version"]
    assert str(bento.tag) == f"cxr-service:{version}" and bento.info.labels["package"] == version
    assert bento.info.labels["git_commit"] == packaged["git_commit"][:12]
    assert bento.info.labels["dvc_clip"] == dvc_hash(package_params.clip)
    tags = {str(m.tag) for m in bento.info.all_models}  # exact tags, resolved from the model store
    assert tags == {f"{n}:{version}" for n in ("cxr-text-encoder", "cxr-clip", "cxr-report-index")}
    card = json.loads((Path(bentoml.models.get(f"cxr-report-index:{version}").path) / "model_card.json").read_text())
    assert card["inputs"]["text_encoder"]["md5"] == dvc_hash(package_params.encoder)
    assert card["inputs"]["clip"]["md5"] == dvc_hash(package_params.clip)
    assert card["inputs"]["clean_reports"]["md5"] == dvc_hash(package_params.clean)
    assert card["inputs"]["clean_reports"]["md5"].endswith(".dir") and len(card["params_hash"]) == 12
    assert card["git"]["commit"] == packaged["git_commit"]
    src = Path(bento.path) / "src"
    assert (src / "serving" / "service.py").exists() and (src / "params.yaml").exists()
    assert (src / "components" / "evaluation" / "prompts.yaml").exists() and not (src / "tests").exists()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server(bento, tmp_path_factory):
    """`bentoml serve <bento>` in its own process group (job control), stopped by its PID."""
    import httpx

    port = _free_port()
    log = tmp_path_factory.mktemp("serve") / "serve.log"
    bentoml_cli = str(Path(sys.executable).with_name("bentoml"))
    with open(log, "wb") as out:
        proc = subprocess.Popen([bentoml_cli, "serve", str(bento.tag), "--host", "127.0.0.1", "--port", str(port)],
                                cwd=REPO, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 180
        while True:
            assert proc.poll() is None, f"bentoml serve exited:\n{log.read_text()[-3000:]}"
            try:
                if httpx.get(f"{url}/readyz", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, f"not ready in 180 s:\n{log.read_text()[-3000:]}"
            time.sleep(0.5)
        yield url, log
    finally:
        os.killpg(proc.pid, signal.SIGTERM)  # the group: the server and its worker processes
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


@pytest.fixture(scope="module")
def library(package_params):
    from components.clip.model import CXRClip
    from components.encoder.text_encoder import TextEncoder

    return TextEncoder.load(package_params.encoder), CXRClip.load(package_params.clip)


@pytest.fixture(scope="module")
def dicom(synth_dir, ingest_dir) -> Path:
    ids = set(pd.read_parquet(ingest_dir / "images.parquet")["image_id"])
    return next(p for p in sorted(synth_dir.rglob("*.dcm")) if p.stem in ids)


def test_python_client_against_a_real_server(server, library, dicom):
    import bentoml

    url, log = server
    text_encoder, clip = library
    with bentoml.SyncHTTPClient(url) as client:
        vecs = client.embed_text(texts=["No acute process.", "Right lower lobe pneumonia."])
        np.testing.assert_allclose(np.array(vecs), text_encoder.encode(["No acute process.",
                                                                          "Right lower lobe pneumonia."]), atol=1e-5)
        image_vecs = client.embed_image(images=[dicom])
        np.testing.assert_allclose(np.array(image_vecs), clip.encode_image([dicom]), atol=1e-5)
        hits = client.retrieve(image=dicom, k=3)["results"]
        assert len(hits) == 3 and all(set(h) == {"study_id", "score", "report"} for h in hits)
        probs = client.classify(image=dicom, observations=["Edema"])["probabilities"]
        assert set(probs) == {"Edema"} and 0 <= probs["Edema"] <= 1
        with pytest.raises(bentoml.exceptions.BentoMLException, match="at least 1"):
            client.embed_text(texts=[])
    import httpx

    card = httpx.get(f"{url}/model_card", timeout=10).json()
    assert card["inputs"]["text_encoder"]["md5"].endswith(".dir")
    served = log.read_text()
    assert "status=5" not in served  # nothing answered 5xx
    assert "POST /embed_text rejected with 400" in served and "Traceback" not in served  # one line per 4xx


def test_concurrent_requests_are_batched_and_each_gets_its_own_answer(server, library):
    import bentoml
    import httpx

    url, _ = server
    text_encoder, _ = library
    texts = [f"Right pleural effusion, {i} cm." for i in range(32)]
    expected = text_encoder.encode(texts)

    def one(i: int):
        with bentoml.SyncHTTPClient(url) as client:
            return i, client.embed_text(texts=[texts[i]])[0]

    with ThreadPoolExecutor(16) as pool:
        results = list(pool.map(one, range(len(texts))))
    for i, vec in results:
        np.testing.assert_allclose(vec, expected[i], atol=1e-5)  # no request got another's vector
    metrics = httpx.get(f"{url}/metrics", timeout=10).text
    counts = [line for line in metrics.splitlines()
              if line.startswith("bentoml_service_adaptive_batch_size_count") and "embed_text" in line]
    assert counts and sum(float(c.rsplit(" ", 1)[1]) for c in counts) >= 1  # the batcher served them
