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
def webserver(tmp_path, request):
    """The webserver over `request.param` (a project root; default the repo), stopped by its process group."""
    home = tmp_path / "dagster_home"
    home.mkdir()
    # the project's instance config, launching runs at once: without `dagster dev`'s daemon nothing
    # would take a run off the default queue
    (home / "dagster.yaml").write_text((REPO / "orchestration" / "dagster.yaml").read_text() + (
        "run_coordinator:\n  module: dagster._core.run_coordinator\n  class: DefaultRunCoordinator\n"))
    project = getattr(request, "param", None) or REPO
    if callable(project):
        project = project(tmp_path)
    env = {**os.environ, "DAGSTER_HOME": str(home), "CXR_PROJECT_ROOT": str(project), "PYTHONPATH": str(REPO)}
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
    import yaml

    from components.stages import instances
    from orchestration.assets import asset_name

    from orchestration.partitions import GROUP

    # the partitioned ingest's assets (outside the DVC graph) exist once data/raw holds pNN folders
    nodes = {"/".join(n["assetKey"]["path"]): n for n in data["data"]["assetNodes"] if n["groupName"] != GROUP}
    expected = {asset_name(s, item): s for s, item in instances(yaml.safe_load((REPO / "params.yaml").read_text()))}
    assert set(nodes) == set(expected)  # a foreach stage's items are assets of their own
    for name, s in expected.items():
        node = nodes[name]
        assert node["groupName"] == s.group and "full_pipeline" in node["jobNames"]
        checks = {c["name"] for c in node["assetChecksOrError"]["checks"]}
        assert checks == ({c.name for c in s.checks} if name == s.asset else set()), name
    (repo,) = data["data"]["repositoriesOrError"]["nodes"]
    jobs = {j["name"] for j in repo["jobs"]}
    assert {"full_pipeline", "retrain_from_encoder", "reevaluate"} <= jobs
    assert "reevaluate" in nodes["evaluation"]["jobNames"] and "reevaluate" not in nodes["text_encoder"]["jobNames"]
    assert "retrain_from_encoder" in nodes["text_embeddings"]["jobNames"]
    assert "retrain_from_encoder" not in nodes["clean_reports"]["jobNames"]  # data stages are kept


def _dvc_project(tmp_path: Path) -> Path:
    from tests.test_lineage import _project

    return _project(tmp_path / "project", n_studies=12)


LAUNCH = """mutation($p: ExecutionParams!) { launchRun(executionParams: $p) {
  __typename ... on LaunchRunSuccess { run { runId } } ... on PythonError { message }
  ... on RunConfigValidationInvalid { errors { message } } ... on InvalidSubsetError { message } } }"""


@pytest.mark.parametrize("webserver", [_dvc_project], indirect=True)
def test_a_run_launched_through_graphql_is_recorded_by_dvc(webserver, tmp_path):
    """As the UI's "Materialize" does: launch the data assets of a tiny DVC project through GraphQL, wait
    for success, then DVC has the record and `cxr lineage` traces the output to its params."""
    import yaml

    from components.lineage import trace

    root = tmp_path / "project"
    repos = _graphql(webserver, "{ repositoriesOrError { ... on RepositoryConnection { nodes { name location { name } } } } }")
    (repo,) = repos["data"]["repositoriesOrError"]["nodes"]
    selector = {"repositoryLocationName": repo["location"]["name"], "repositoryName": repo["name"],
                "jobName": "__ASSET_JOB", "assetSelection": [{"path": ["raw_studies"]}, {"path": ["ingested_studies"]}]}
    request = urllib.request.Request(
        f"http://127.0.0.1:{webserver}/graphql", headers={"Content-Type": "application/json"},
        data=json.dumps({"query": LAUNCH, "variables": {"p": {"selector": selector, "runConfigData": {}}}}).encode())
    with urllib.request.urlopen(request, timeout=60) as response:
        launched = json.loads(response.read())["data"]["launchRun"]
    assert launched["__typename"] == "LaunchRunSuccess", launched
    run_id = launched["run"]["runId"]
    deadline = time.monotonic() + 420
    while True:
        status = _graphql(webserver, '{ runOrError(runId: "%s") { ... on Run { status } } }' % run_id)
        status = status["data"]["runOrError"]["status"]
        if status in ("SUCCESS", "FAILURE", "CANCELED"):
            break
        assert time.monotonic() < deadline, f"run still {status} after 420 s"
        assert status != "QUEUED" or time.monotonic() < deadline - 360, "run not dequeued within 60 s"
        time.sleep(2)
    assert status == "SUCCESS"
    lock = yaml.safe_load((root / "dvc.lock").read_text())["stages"]
    assert set(lock) == {"synth", "ingest"}
    traced = trace(root, "data/ingested/studies.parquet")
    assert traced["workspace_matches_lock"] and traced["stages"][0]["params"]["synth.n_studies"] == 12


def test_the_asset_graph_renders_in_headless_chromium(webserver, tmp_path):
    """The UI itself, not only its API: Chromium loads the asset graph page and its screenshot is not blank.
    CXR_SCREENSHOT=path keeps the picture (the README's is orchestration/asset_graph.png)."""
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        pytest.skip("no chromium here: run .ci/install-chromium (Debian's package) to enable this test")
    from PIL import Image, ImageStat

    shot = tmp_path / "asset_graph.png"
    subprocess.run([chromium, "--headless=new", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
                    f"--user-data-dir={tmp_path / 'chromium'}", "--window-size=1600,1000",
                    "--virtual-time-budget=25000", f"--screenshot={shot}",
                    f"http://127.0.0.1:{webserver}/asset-groups"], capture_output=True, timeout=180, check=True)
    image = Image.open(shot).convert("L")
    assert image.size == (1600, 1000) and ImageStat.Stat(image).stddev[0] > 10  # drawn, not a blank page
    if os.environ.get("CXR_SCREENSHOT"):
        shutil.copy(shot, os.environ["CXR_SCREENSHOT"])
