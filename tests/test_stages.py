"""The stage registry is the one declaration: the CLI, dvc.yaml, the Dagster definitions, the test
fixtures and the params model are held to it here."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from components.cli import app
from components.params import Params, load_params
from components.stages import ORDER, ScopedParams, all_stages, instances, module, upstream
from components.stages.base import resolve
from components.stages.code import code_deps
from components.stages.dvcfile import dvc_yaml
from tests.conftest import REPO, small_params_tree

PARAMS_TREE = yaml.safe_load((REPO / "params.yaml").read_text())


def test_dvc_yaml_is_generated_from_the_declarations():
    assert (REPO / "dvc.yaml").read_text() == dvc_yaml(), "run `cxr stages --write-dvc`"
    stages = yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"]
    assert list(stages) == list(ORDER)
    for s in all_stages():
        entry = stages[s.name]["do"] if s.foreach else stages[s.name]
        assert entry["cmd"] == (f"cxr {s.name} ${{item}}" if s.foreach else f"cxr {s.name}")
        assert entry["params"] == list(s.params) and stages[s.name].get("foreach", "") == s.foreach


def test_dagster_graph_is_the_dvc_graph_and_checks_are_declared(tmp_path):
    from dagster import Definitions

    from orchestration.definitions import defs
    from orchestration.partitions import GROUP, build_partition_assets
    from orchestration.resources import CxrProject

    # an input with pNN folders adds the partitioned ingest's assets, as in a real project
    (tmp_path / "raw" / "files" / "p10").mkdir(parents=True)
    (tmp_path / "params.yaml").write_text(yaml.safe_dump({"ingest": {"input": "raw", "source": "synth"}}))
    partitioned = build_partition_assets(CxrProject(root=str(tmp_path)))
    assert partitioned
    graph = Definitions.merge(defs, Definitions(assets=partitioned)).resolve_asset_graph()
    # The partitioned ingest (orchestration/partitions.py) is outside the DVC graph on purpose: it runs `cxr`
    # per pNN folder and merges, where DVC knows one ingest stage; its merge writes that stage's output.
    tags = {key: graph.get(key).tags for key in graph.get_all_asset_keys() if graph.get(key).group_name != GROUP}
    stage_of = {key: t["dvc_stage"] + (f"@{t['dvc_item']}" if "dvc_item" in t else "") for key, t in tags.items()}
    declared = {s.name: s for s in all_stages()}
    assert sorted(stage_of.values()) == sorted(s.instance(i) for s, i in instances(PARAMS_TREE))
    for key, name in stage_of.items():
        node, stage = graph.get(key), declared[tags[key]["dvc_stage"]]
        item = tags[key].get("dvc_item")
        assert key.to_user_string() == (f"{stage.asset}_{item}" if item else stage.asset)
        assert node.group_name == stage.group
    dagster_edges = {stage_of[k]: sorted(stage_of[p] for p in graph.get(k).parent_keys) for k in stage_of}

    # DVC's own view: a stage depends on the stages whose outs overlap one of its deps (`dvc dag`)
    stages = {}
    for n, s in yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"].items():
        for item in (declared[n].items(PARAMS_TREE) if "foreach" in s else [""]):
            stages[declared[n].instance(item)] = (s["do"] if "foreach" in s else s, item)
    outs = {n: [resolve(next(iter(o)) if isinstance(o, dict) else o, PARAMS_TREE, i) for o in s.get("outs", [])]
            for n, (s, i) in stages.items()}  # an out with flags ({path: {push: false}}) is still that path
    dvc_edges = {n: sorted({o for o, paths in outs.items() if o != n for p in paths
                            for d in (resolve(d, PARAMS_TREE, i) for d in s["deps"])
                            if d == p or d.startswith(p + "/") or p.startswith(d + "/")})
                 for n, (s, i) in stages.items()}
    assert dagster_edges == dvc_edges == {k: sorted(v) for k, v in upstream(PARAMS_TREE).items()}
    assert dvc_edges["embed"] == ["clean", "encoder", "variants"] and dvc_edges["synth"] == []

    checks = {key.name: key.asset_key.to_user_string() for key in graph.asset_check_keys}
    assert checks == {c.name: s.asset for s in all_stages() for c in s.checks}
    for s in all_stages():
        for c in s.checks:
            assert callable(getattr(module(s.name), f"check_{c.name}"))


def test_cli_has_one_command_per_stage_with_its_declared_options():
    runner = CliRunner()
    top = runner.invoke(app, ["--help"]).output
    for s in all_stages():
        assert f" {s.name} " in top
        shown = runner.invoke(app, [s.name, "--help"], terminal_width=200).output
        assert s.asset in shown  # the CLI names the asset it produces
        for option in s.options:
            assert option.flag in shown
    listed = runner.invoke(app, ["stages"]).output.splitlines()
    assert [line.split()[:3] for line in listed] == [[s.name, s.asset, s.group] for s in all_stages()]


def test_readme_shows_each_stage_with_its_asset():
    readme = (REPO / "README.md").read_text()
    for s in all_stages():
        assert f"| `{s.name}` | `{s.asset}` |" in readme


def test_params_yaml_holds_every_key_at_its_default():
    """One source of defaults: the committed params.yaml (the demo profile) is the params model's defaults."""
    assert load_params(REPO / "params.yaml").model_dump(mode="json") == Params().model_dump(mode="json")


def test_declared_params_exist_and_path_keys_belong_to_a_stage():
    params = Params()
    for s in all_stages():
        for key in s.params:
            node = params
            for part in key.split("."):
                node = getattr(node, part)  # AttributeError names a key the model lacks
        for ref in s.refs():
            assert any(ref == k or ref.startswith(k + ".") for k in s.params), f"{s.name}: {ref} not in its params"


def test_fixture_rewiring_moves_every_project_path(tmp_path):
    tree = small_params_tree(tmp_path)

    def strings(node):
        if isinstance(node, (dict, list)):
            for v in node.values() if isinstance(node, dict) else node:
                yield from strings(v)
        elif isinstance(node, str):
            yield node
    leftovers = [v for v in strings(tree) if v.startswith(("data/", ".cxr/"))]
    assert not leftovers
    for s in all_stages():  # every declared input and output lands in the temporary project
        for path in (*s.inputs, *s.outs, *s.metrics):
            assert resolve(path, tree, "item").startswith(str(tmp_path)), (s.name, path)


def test_a_stage_reads_only_the_keys_it_declares():
    scoped = ScopedParams(Params(), module("baselines").STAGE.params)
    assert scoped.baselines.mlm_lr == 5e-4 and scoped.encoder.pretrain.size.hidden == 128
    with pytest.raises(AttributeError, match="encoder.base_model"):
        scoped.encoder.base_model
    with pytest.raises(AttributeError, match="'ingest'"):
        scoped.ingest
    other = ScopedParams(Params(), ("baselines", "encoder.pretrain", "encoder.mntp", "encoder.contrastive"))
    assert other.digest() == scoped.digest() and scoped.digest() != ScopedParams(Params(), ("encoder",)).digest()


def test_code_deps_follow_the_import_graph():
    encoder = code_deps("encoder")
    assert "components/encoder/pretrain.py" in encoder  # imported lazily inside a function
    assert "components/encoder/embed.py" not in encoder and "components/stages/embed.py" not in encoder
    assert not [d for d in encoder if d.startswith("components/params")] and "components/cli.py" not in encoder
    assert "components/reports/data" in code_deps("clean")  # the labeler's phrase files
    assert not [d for d in code_deps("ingest") if d.startswith("components/synth/")]  # real data: no generator
    assert "components/ingest/run.py" in code_deps("ingest")


@pytest.mark.parametrize("door", ["cli", "dagster", "dvc"])
def test_a_typo_in_a_nested_key_is_rejected_through_every_door(door, tmp_path):
    typo = "encoder.contrastive.temprature"
    if door == "cli":
        result = CliRunner().invoke(app, ["synth", "--params", str(REPO / "params.yaml"), "--set", f"{typo}=0.1"])
        assert result.exit_code == 2 and "temprature" in result.output
    elif door == "dagster":
        from dagster import PipesSubprocessClient, materialize

        from orchestration.assets import build_assets
        from orchestration.resources import CxrProject

        root = tmp_path / "project"
        root.mkdir()
        (root / "params.yaml").write_text(yaml.safe_dump(small_params_tree(Path("data"))))
        synth = [a for a in build_assets(PARAMS_TREE) if a.key.to_user_string() == "raw_studies"]
        result = materialize(synth, raise_on_error=False,
                             resources={"pipes": PipesSubprocessClient(), "project": CxrProject(root=str(root))},
                             run_config={"ops": {"raw_studies": {"config": {"overrides": {typo: "0.1"}}}}})
        assert not result.success and not (root / "data").exists()
    else:
        root = tmp_path / "repo"
        root.mkdir()
        (root / "params.yaml").write_text(yaml.safe_dump(small_params_tree(Path("data"))))
        (root / "dvc.yaml").write_text(yaml.safe_dump({"stages": {"synth": {
            "cmd": "cxr synth", "params": ["synth"], "outs": ["data/raw/synth"]}}}))
        env_bin = str(Path(sys.executable).parent)
        for cmd in (["git", "init", "-q"], ["dvc", "init", "-q"], ["git", "add", "-A"],
                    ["git", "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "init"]):
            subprocess.run(cmd, cwd=root, check=True, capture_output=True)
        result = subprocess.run([f"{env_bin}/dvc", "exp", "run", "-S", f"{typo}=0.1", "synth"], cwd=root,
                                capture_output=True, text=True, timeout=300)
        assert result.returncode != 0 and "temprature" in result.stdout + result.stderr
        assert not (root / "data" / "raw" / "synth").exists()


def test_no_import_cycles_and_no_test_imports_bench():
    """Layering: the library's import graph (lazy imports included) is acyclic, and tests use the
    library, never the benchmarks."""
    from graphlib import CycleError, TopologicalSorter

    from components.stages.code import ROOT, _parse

    modules = {".".join(p.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__"): p
               for p in (ROOT / "components").rglob("*.py")}
    graph = {}
    for name, path in modules.items():
        targets = set()
        for imported in _parse(path)[0]:
            owner = imported if imported in modules else imported.rsplit(".", 1)[0]
            if owner in modules and owner != name and not name.startswith(owner + "."):
                targets.add(owner)
        graph[name] = targets
    try:
        tuple(TopologicalSorter(graph).static_order())
    except CycleError as e:
        pytest.fail(f"import cycle: {e.args[1]}")
    for test in (t for t in (REPO / "tests").glob("*.py") if t.name != Path(__file__).name):  # not this check
        assert "from bench" not in test.read_text() and "import bench" not in test.read_text(), test.name
