"""The Dagster UI as a user starts it: the webserver on 127.0.0.1 over this repo's definitions, with the
project's dagster.yaml; GraphQL lists every asset (in its group), every declared check and the jobs."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from components.stages import all_stages
from tests.conftest import REPO

pytestmark = pytest.mark.slow  # starts a real webserver and its code server (about a minute on 2 cores)

QUERY = """{
  assetNodes { assetKey { path } groupName jobNames
               assetChecksOrError { ... on AssetChecks { checks { name } } } }
  repositoriesOrError { ... on RepositoryConnection { nodes { name jobs { name } } } }
}"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _graphql(port: int, query: str) -> dict:
    request = urllib.request.Request(f"http://127.0.0.1:{port}/graphql", data=json.dumps({"query": query}).encode(),
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read())


@pytest.fixture
def webserver(tmp_path):
    home = tmp_path / "dagster_home"
    home.mkdir()
    shutil.copy(REPO / "orchestration" / "dagster.yaml", home / "dagster.yaml")
    env = {**os.environ, "DAGSTER_HOME": str(home), "CXR_PROJECT_ROOT": str(REPO), "PYTHONPATH": str(REPO)}
    port = _free_port()
    log = open(tmp_path / "webserver.log", "w")
    proc = subprocess.Popen([str(Path(sys.executable).with_name("dagster-webserver")), "-m", "orchestration.definitions",
                             "-h", "127.0.0.1", "-p", str(port)], cwd=REPO, env=env, stdout=log,
                            stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + 240
        while True:
            assert proc.poll() is None, (tmp_path / "webserver.log").read_text()[-3000:]
            try:
                if _graphql(port, "{ version }").get("data"):
                    break
            except OSError:
                pass
            assert time.monotonic() < deadline, "webserver did not answer in 240 s"
            time.sleep(1)
        yield port
    finally:
        os.killpg(proc.pid, signal.SIGTERM)  # the webserver and the code server it started, by process group
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        log.close()


def test_webserver_serves_every_asset_check_and_job(webserver):
    data = _graphql(webserver, QUERY)
    assert "errors" not in data, data
    nodes = {"/".join(n["assetKey"]["path"]): n for n in data["data"]["assetNodes"]}
    assert set(nodes) == {s.asset for s in all_stages()}
    for s in all_stages():
        node = nodes[s.asset]
        assert node["groupName"] == s.group and "full_pipeline" in node["jobNames"]
        assert {c["name"] for c in node["assetChecksOrError"]["checks"]} == {c.name for c in s.checks}
    (repo,) = data["data"]["repositoriesOrError"]["nodes"]
    jobs = {j["name"] for j in repo["jobs"]}
    assert {"full_pipeline", "retrain_from_encoder"} <= jobs
    assert "retrain_from_encoder" in nodes["text_embeddings"]["jobNames"]
    assert "retrain_from_encoder" not in nodes["clean_reports"]["jobNames"]  # data stages are kept
