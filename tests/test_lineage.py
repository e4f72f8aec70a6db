"""One lineage whichever door is used: a Dagster materialization runs its stage through DVC, so dvc.lock,
the DVC cache and `cxr lineage` record it exactly as `dvc repro` would."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from tests.conftest import REPO, small_params_tree


def _project(root: Path, n_studies: int = 24, dvc: bool = True) -> Path:
    """A project checkout (git + DVC) with small params writing inside it, as the repo does."""
    root.mkdir(parents=True, exist_ok=True)
    for name in ("dvc.yaml", ".dvcignore"):
        shutil.copy(REPO / name, root / name)
    shutil.copytree(REPO / "components", root / "components", ignore=shutil.ignore_patterns("__pycache__"))
    tree = small_params_tree(Path("data"))
    tree["synth"]["n_studies"] = n_studies
    (root / "params.yaml").write_text(yaml.safe_dump(tree, sort_keys=False))
    if dvc:
        (root / ".gitignore").write_text("/.cxr/\n")
        (root / "data").mkdir()
        shutil.copy(REPO / "data" / ".gitignore", root / "data" / ".gitignore")  # metrics stay in git
        for cmd in (["git", "init", "-q"], ["dvc", "init", "-q"], ["dvc", "config", "core.analytics", "false"],
                    ["git", "add", "-A"], ["git", "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "init"]):
            _run(cmd, root)
    return root


def _run(cmd: list[str], cwd: Path) -> subprocess.CompletedProcess:
    result = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, f"{cmd} failed:\n{result.stdout}\n{result.stderr}"
    return result


def _materialize(root: Path, names: tuple[str, ...], overrides: dict | None = None):
    from dagster import PipesSubprocessClient, materialize

    from orchestration.assets import build_assets
    from orchestration.resources import CxrProject

    project = CxrProject(root=str(root))
    assets = [a for a in build_assets(project.params_tree()) if a.key.to_user_string() in names]
    config = {"ops": {name: {"config": {"overrides": overrides}} for name in names}} if overrides else None
    result = materialize(assets, resources={"pipes": PipesSubprocessClient(), "project": project},
                         run_config=config, raise_on_error=False)
    events = {e.materialization.asset_key.to_user_string(): e for e in result.get_asset_materialization_events()}
    return result, {k: e.materialization for k, e in events.items()}


def _lineage(root: Path, path: str) -> dict:
    from components.cli import app
    from components.lineage import trace

    shown = CliRunner().invoke(app, ["lineage", str(root / path)])
    assert shown.exit_code == 0, shown.output
    return {"text": shown.output, **trace(root, path)}


@pytest.mark.slow  # real DVC and Dagster runs of a tiny project
def test_a_dagster_materialization_leaves_the_dvc_record(tmp_path):
    root = _project(tmp_path / "project")
    result, made = _materialize(root, ("raw_studies", "ingested_studies"))
    assert result.success
    lock = yaml.safe_load((root / "dvc.lock").read_text())["stages"]
    assert set(lock) == {"synth", "ingest"}
    ingested = next(o for o in lock["ingest"]["outs"] if o["path"] == "data/ingested")
    # the data version is DVC's hash of the outs; the outs are in the DVC cache; DVC finds nothing to do
    assert made["ingested_studies"].tags["dagster/data_version"] == ingested["md5"]
    assert (root / ".dvc/cache/files/md5" / ingested["md5"][:2] / ingested["md5"][2:]).exists()
    assert "changed" not in _run(["dvc", "status", "ingest"], root).stdout
    # Pipes metadata crossed DVC: the stage's own figures reached Dagster
    assert made["ingested_studies"].metadata["studies_in"].value == 24
    assert made["raw_studies"].metadata["lineage"].value == "dvc.lock"
    assert made["raw_studies"].tags["dagster/code_version"]

    # nothing changed: DVC does not re-run, the data version stays
    result, again = _materialize(root, ("ingested_studies",))
    assert result.success and "dvc_skipped" in again["ingested_studies"].metadata
    assert again["ingested_studies"].tags["dagster/data_version"] == ingested["md5"]

    # lineage of a file inside the ingest output, back to the raw data and the params that made it
    traced = _lineage(root, "data/ingested/studies.parquet")
    assert [s["stage"] for s in traced["stages"]] == ["synth", "ingest"]
    assert traced["stages"][0]["params"]["synth.n_studies"] == 24
    assert traced["out"]["md5"] == ingested["md5"] and traced["file_md5"]
    assert traced["git"]["commit"] == _run(["git", "rev-parse", "HEAD"], root).stdout.strip()
    assert traced["workspace_matches_lock"] is True
    assert "param synth.n_studies = 24" in traced["text"] and "[ingest]  cxr ingest" in traced["text"]


@pytest.fixture(scope="module")
def repro(tmp_path_factory) -> Path:
    """A project with the repo's DVC config (its default local remote), `dvc repro clean` done, committed."""
    root = _project(tmp_path_factory.mktemp("repro") / "project")
    shutil.copy(REPO / ".dvc" / "config", root / ".dvc" / "config")
    _run(["dvc", "repro", "clean"], root)
    _run(["git", "add", "-A"], root)
    _run(["git", "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "ran"], root)
    return root


@pytest.mark.slow  # real DVC and Dagster runs of a tiny project
def test_push_to_the_default_local_remote_and_pull_into_a_fresh_clone(repro):
    remote = repro.parent / "cxr-dvc-remote"  # .dvc/config: a directory beside the checkout
    assert not remote.exists()
    assert "pushed" in _run(["dvc", "push"], repro).stdout
    assert (remote / "files" / "md5").is_dir()
    clone = repro.parent / "clone"
    _run(["git", "clone", "-q", str(repro), str(clone)], repro.parent)
    assert not (clone / "data/clean").exists() and (clone / "data/metrics/clean.json").exists()  # in git
    _run(["dvc", "pull", "clean"], clone)
    for path in ("data/clean/reports.parquet", "data/clean/summary.json", "data/clean/gx/results.json"):
        assert (clone / path).read_bytes() == (repro / path).read_bytes(), path
    # outputs that hold PHI by design (the raw archive, ingest's report text) are `push: false`
    lock = yaml.safe_load((repro / "dvc.lock").read_text())["stages"]
    pushed = {p.parent.name + p.name for p in (remote / "files" / "md5").glob("*/*")}
    for stage, path in (("synth", "data/raw/synth"), ("ingest", "data/ingested"), ("clean", "data/clean")):
        digest = next(o["md5"] for o in lock[stage]["outs"] if o["path"] == path)
        assert (digest in pushed) == (stage == "clean"), stage


@pytest.mark.slow  # real DVC and Dagster runs of a tiny project
def test_a_rerun_on_the_same_inputs_changes_no_hash_and_nothing_downstream(repro, monkeypatch):
    """Tracked files hold no timings, dates or cache hits (they go to the run log), so forcing a stage to
    run again leaves its outs' hashes, and hence every downstream stage, as they were."""

    root = repro
    before = yaml.safe_load((root / "dvc.lock").read_text())["stages"]
    for stage in ("synth", "ingest", "clean"):
        _run(["dvc", "repro", "--force", "--single-item", stage], root)
    after = yaml.safe_load((root / "dvc.lock").read_text())["stages"]
    for stage in ("synth", "ingest", "clean"):
        assert after[stage]["outs"] == before[stage]["outs"], stage
    assert "up to date" in _run(["dvc", "status", "clean"], root).stdout  # clean and everything above it
    assert "data_docs" not in json.dumps(after["clean"]["outs"])  # GX's HTML names its run time
    last = json.loads((root / "data/ingested/_run/ingest.json").read_text())  # in the folder .dvcignore names
    assert last["seconds"]["total"] > 0 and last["images_per_second"] > 0 and last["hostname"]

    # `cxr report`: each stage's few headline figures (its DVC metrics) and where its files are
    from components.cli import app
    from components.overview import rows

    monkeypatch.chdir(root)
    shown = CliRunner().invoke(app, ["report"], terminal_width=300)
    assert shown.exit_code == 0, shown.output
    lines = {line.split()[0]: line for line in shown.output.splitlines()[1:]}
    assert "studies=24" in lines["synth"] and "data/raw/synth" in lines["synth"]
    assert "conservation_ok=yes" in lines["ingest"] and "gx_success=yes" in lines["clean"]
    assert "(not run yet)" in lines["variants"]
    for row in rows(yaml.safe_load((root / "params.yaml").read_text())):
        assert len(row["figures"]) <= 12, (row["stage"], row["figures"])  # headline figures, not tables

    # an image setting re-runs ingest and clean, but clean (which reads no pixels) writes the same
    # bytes, so nothing after it (variants, the encoder) would re-run
    params = yaml.safe_load((root / "params.yaml").read_text())
    params["ingest"]["resolution"] = 32
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    _run(["dvc", "repro", "clean"], root)
    changed = yaml.safe_load((root / "dvc.lock").read_text())["stages"]
    assert changed["ingest"]["outs"] != after["ingest"]["outs"] and changed["clean"]["outs"] == after["clean"]["outs"]


@pytest.mark.slow  # real DVC and Dagster runs of a tiny project
def test_launchpad_overrides_run_as_a_dvc_experiment(tmp_path):
    root = _project(tmp_path / "project")
    result, made = _materialize(root, ("raw_studies",), {"synth.n_studies": "30"})
    assert result.success and made["raw_studies"].metadata["studies"].value == 30
    # dvc.lock and params.yaml both say 30: the artifact is attributed to the params it was built with
    lock = yaml.safe_load((root / "dvc.lock").read_text())["stages"]
    assert lock["synth"]["params"]["params.yaml"]["synth"]["n_studies"] == 30
    assert yaml.safe_load((root / "params.yaml").read_text())["synth"]["n_studies"] == 30
    assert "changed" not in _run(["dvc", "status", "synth"], root).stdout
    assert _run(["dvc", "exp", "list", "--name-only"], root).stdout.strip()  # recorded as an experiment
    assert _lineage(root, "data/raw/synth")["stages"][0]["params"]["synth.n_studies"] == 30


@pytest.mark.slow  # real DVC and Dagster runs of a tiny project
def test_a_project_without_dvc_runs_the_stage_and_says_nothing_was_recorded(tmp_path):
    root = _project(tmp_path / "project", n_studies=12, dvc=False)
    result, made = _materialize(root, ("raw_studies",), {"synth.n_studies": "10"})
    assert result.success and made["raw_studies"].metadata["studies"].value == 10
    assert made["raw_studies"].metadata["lineage"].value.startswith("not recorded: no DVC project")
    assert "dagster/data_version" not in made["raw_studies"].tags or not (root / "dvc.lock").exists()
    from components.lineage import trace

    with pytest.raises(FileNotFoundError, match="dvc.lock"):
        trace(root, "data/raw/synth")


def test_lineage_refuses_a_path_no_stage_wrote(tmp_path):
    from components.lineage import trace

    (tmp_path / "dvc.lock").write_text(yaml.safe_dump({"schema": "2.0", "stages": {"synth": {
        "cmd": "cxr synth", "outs": [{"path": "data/raw/synth", "md5": "abc.dir"}]}}}))
    with pytest.raises(ValueError, match="not an output recorded in dvc.lock.*data/raw/synth"):
        trace(tmp_path, "params.yaml", verify=False)
    assert trace(tmp_path, "data/raw/synth/x.dcm", verify=False)["stage"] == "synth"
    assert json.dumps(trace(tmp_path, "data/raw/synth", verify=False))


def test_the_run_folder_is_outside_dvc_hashes_and_ours_agree(tmp_path):
    """A stage's `_run/` (run log, Data Docs) changes on every run; .dvcignore keeps it out of the hash
    DVC records, and the model card's hash (components.packaging.lineage.dvc_hash) is that same hash."""
    from components.packaging.lineage import dvc_hash

    root = tmp_path / "p"
    root.mkdir()
    shutil.copy(REPO / ".dvcignore", root / ".dvcignore")
    (root / "dvc.yaml").write_text(yaml.safe_dump({"stages": {"s": {
        "cmd": "mkdir -p out/_run && echo result > out/a.txt && date +%s%N > out/_run/s.json", "outs": ["out"]}}}))
    for cmd in (["git", "init", "-q"], ["dvc", "init", "-q"], ["dvc", "repro", "-q"]):
        _run(cmd, root)
    recorded = yaml.safe_load((root / "dvc.lock").read_text())["stages"]["s"]["outs"][0]["md5"]
    assert dvc_hash(root / "out") == recorded
    (root / "out" / "_run" / "s.json").write_text("another run")
    assert "up to date" in _run(["dvc", "status"], root).stdout and dvc_hash(root / "out") == recorded
    (root / "out" / "a.txt").write_text("another result")  # the result itself still counts
    assert dvc_hash(root / "out") != recorded and "modified" in _run(["dvc", "status"], root).stdout


def test_a_package_is_traced_through_the_dvc_lock_that_read_its_inputs_even_a_committed_one(tmp_path):
    """`cxr lineage <Bento tag>` starts from the model card: the stage that read exactly the card's
    inputs (paths and DVC hashes) is found in dvc.lock, or in the newest commit whose dvc.lock has it."""
    from components.lineage import trace_package
    from components.packaging.lineage import dvc_hash

    root = tmp_path / "p"
    root.mkdir()
    # pack, like the package stage: a metrics file beside its folder, a code dep under serving/, and a
    # folder dep (ev) that holds another stage's files rather than being one stage's out
    stages = {"make": {"cmd": "mkdir -p m && echo model-$(cat seed) > m/w", "deps": ["seed"], "outs": ["m"]},
              "report": {"cmd": "mkdir -p ev && cat m/w > ev/report.md", "deps": ["m"], "outs": ["ev/report.md"]},
              "pack": {"cmd": "mkdir -p pkg && cat m/w ev/report.md > pkg/card && echo '{\"n\": 1}' > pack.json",
                       "deps": ["m", "corpus", "ev", "serving/svc.py"], "outs": ["pkg"],
                       "metrics": [{"pack.json": {"cache": False}}]}}
    (root / "dvc.yaml").write_text(yaml.safe_dump({"stages": stages}))
    (root / "seed").write_text("1")
    (root / "corpus").write_text("reports")
    (root / "serving").mkdir()
    (root / "serving" / "svc.py").write_text("SERVICE = 1\n")
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@t"]
    for cmd in (["git", "init", "-q"], ["dvc", "init", "-q"], ["dvc", "repro", "-q"], ["git", "add", "-A"],
                [*git, "commit", "-qm", "first model"]):
        _run(cmd, root)
    first = _run(["git", "rev-parse", "HEAD"], root).stdout.strip()
    card = {"version": "v1", "tag": "svc:v1", "inputs": {"model": {"path": str(root / "m"), "md5": dvc_hash(root / "m")},
                                                         "corpus": {"path": "corpus", "md5": dvc_hash(root / "corpus")}}}

    t = trace_package(root, card, verify=False)  # the workspace lock records it
    assert t["stage"] == "pack" and t["package"]["recorded_in"] == "dvc.lock" and t["out"]["path"] == "pkg"
    assert [s["stage"] for s in t["stages"]] == ["make", "report", "pack"] and set(t["sources"]) == {"seed", "corpus"}
    pack = t["stages"][-1]
    assert {i["path"]: i["from"] for i in pack["inputs"]} == {"m": "make", "corpus": None, "ev": "report"}
    assert pack["code"]["files"] == 1  # serving/ is code, not raw data

    (root / "seed").write_text("2")  # a newer model replaces it; the first package's record is history
    _run(["dvc", "repro", "-q"], root)
    t = trace_package(root, card, verify=False)
    assert t["package"]["recorded_in"] == f"dvc.lock at commit {first}" and t["git"]["commit"] == first
    assert t["stages"][0]["inputs"][0]["md5"] == yaml.safe_load(
        _run(["git", "show", f"{first}:dvc.lock"], root).stdout)["stages"]["make"]["deps"][0]["md5"]

    card["inputs"]["model"]["md5"] = "0" * 32 + ".dir"  # made elsewhere: said, not guessed
    with pytest.raises(ValueError, match="no dvc.lock .* records a stage that read this package's inputs"):
        trace_package(root, card, verify=False)
