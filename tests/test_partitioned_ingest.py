"""Partitioned ingest: each files/pNN folder ingested apart, then merged, equals one run over the input."""

from __future__ import annotations

import json

import pandas as pd
import pytest
from typer.testing import CliRunner

from components.ingest.merge import merge
from components.ingest.readers import mimic
from components.ingest.run import ingest
from components.packaging.lineage import dvc_hash
from tests.conftest import REPO


@pytest.fixture(scope="module")
def runs(small_params, synth_dir, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("partitioned")
    cfg = small_params.ingest.model_copy(update={"metrics": str(tmp / "single.json")})
    ingest(cfg, out=tmp / "single", progress=False)
    keys = mimic.partitions(synth_dir)
    parts = {}
    for key in keys:
        parts[key] = ingest(cfg.model_copy(update={"partition": key, "metrics": str(tmp / f"{key}.json")}),
                            out=tmp / "parts" / key, progress=False)
    return cfg, tmp, keys, parts


def test_each_partition_reads_its_folder_and_conserves_its_records(runs, synth_dir):
    cfg, tmp, keys, parts = runs
    assert len(keys) >= 3 and keys == sorted(keys)
    single = json.loads((tmp / "single" / "summary.json").read_text())
    assert sum(p["records"]["in"] for p in parts.values()) == single["records"]["in"]
    assert sum(p["studies"]["in"] for p in parts.values()) == single["studies"]["in"]
    for key, summary in parts.items():
        assert summary["conservation_ok"] and summary["partition"] == key
        subjects = pd.read_parquet(tmp / "parts" / key / "studies.parquet")["subject_id"]
        assert all(f"p{s[:2]}" == key for s in subjects)  # synth files subject 10123456 under p10
        assert json.loads((tmp / f"{key}.json").read_text())["studies_out"] == summary["studies"]["out"]


def test_merged_partitions_equal_the_single_run_byte_for_byte(runs):
    cfg, tmp, keys, _ = runs
    merged = tmp / "merged"
    summary = merge(cfg.model_copy(update={"metrics": str(tmp / "merged.json")}),
                    [tmp / "parts" / k for k in reversed(keys)], merged, progress=False)
    single = tmp / "single"
    assert summary["conservation_ok"] and summary["partitions"] == keys
    assert len(list((single / "images").iterdir())) > 1  # the shards really are re-cut
    files = sorted(p.relative_to(single) for p in single.rglob("*") if p.is_file())
    assert files == sorted(p.relative_to(merged) for p in merged.rglob("*") if p.is_file())
    for name in files:
        assert (single / name).read_bytes() == (merged / name).read_bytes(), name
    assert dvc_hash(merged) == dvc_hash(single)
    assert json.loads((tmp / "merged.json").read_text()) == json.loads((tmp / "single.json").read_text())


def test_merge_refuses_what_would_differ_from_one_run(runs):
    cfg, tmp, keys, _ = runs
    with pytest.raises(ValueError, match=f"missing: \\['{keys[-1]}'\\]"):
        merge(cfg, [tmp / "parts" / k for k in keys[:-1]], tmp / "bad", progress=False)
    with pytest.raises(ValueError, match="not a partition's output"):
        merge(cfg, [tmp / "single"], tmp / "bad", progress=False)
    assert not (tmp / "bad").exists()


def test_unknown_partition_is_an_error_naming_the_partitions(runs, synth_dir):
    cfg, tmp, keys, _ = runs
    with pytest.raises(ValueError, match=f"unknown partition 'p99'.*{keys[0]}, {keys[1]}"):
        ingest(cfg.model_copy(update={"partition": "p99"}), out=tmp / "p99", progress=False)
    chexpert = cfg.model_copy(update={"partition": keys[0], "source": "openi"})
    with pytest.raises(ValueError, match="MIMIC-CXR layout"):
        ingest(chexpert, out=tmp / "openi", progress=False)


def test_cli_ingests_a_partition_and_merges(runs, small_params, tmp_path):
    """`cxr ingest --partition` per folder and `cxr ingest merge` give what `cxr ingest --out` gives."""
    import yaml

    from components.cli import app

    cfg, tmp, keys, _ = runs
    params = tmp_path / "params.yaml"
    tree = small_params.model_dump(mode="json")
    params.write_text(yaml.safe_dump(tree))
    (tmp_path / ".dvc").mkdir()  # a DVC project, whose .dvcignore keeps the run log (_run/) out of hashes
    (tmp_path / ".dvcignore").write_text((REPO / ".dvcignore").read_text())
    runner = CliRunner()
    result = runner.invoke(app, ["ingest", "--params", str(params), "--out", str(tmp_path / "single")])
    assert result.exit_code == 0, result.output
    for key in keys:
        result = runner.invoke(app, ["ingest", "--params", str(params), "--partition", key,
                                     "--out", str(tmp_path / "parts" / key)])
        assert result.exit_code == 0, result.output
    result = runner.invoke(app, ["ingest", "merge", "--params", str(params), "--out", str(tmp_path / "merged"),
                                 *[a for k in keys for a in ("--part", str(tmp_path / "parts" / k))]])
    assert result.exit_code == 0, result.output
    assert dvc_hash(tmp_path / "merged") == dvc_hash(tmp_path / "single")  # metrics.json included
    assert (tmp_path / "merged" / "metrics.json").read_bytes() == (tmp_path / "single" / "metrics.json").read_bytes()
    assert json.loads((tmp_path / "merged" / "metrics.json").read_text())["conservation_ok"] is True


@pytest.mark.parametrize("layout", ["damaged_record_list", "tree_walk"])
def test_merge_equals_single_run_for_unlisted_and_unparsable_records(layout, small_params, synth_dir, tmp_path):
    """Records that name no folder go to the first partition; without a record list the tree is walked."""
    import shutil

    root = tmp_path / "mimic"
    shutil.copytree(synth_dir, root)
    if layout == "tree_walk":
        (root / "cxr-record-list.csv").unlink()
        (root / "cxr-study-list.csv").unlink()
    else:
        with open(root / "cxr-record-list.csv", "a") as fh:
            fh.write("13129560,59999999,abc,\n")  # no path: source_record_invalid
            fh.write('13129561,59999998,"unterminated,files/p13/x\n')  # broken quoting: malformed
    cfg = small_params.ingest.model_copy(update={"source": "mimic", "input": str(root),
                                                 "metrics": str(tmp_path / "m.json")})
    single = ingest(cfg, out=tmp_path / "single", progress=False)
    keys = mimic.partitions(root)
    for key in keys:
        ingest(cfg.model_copy(update={"partition": key, "metrics": str(tmp_path / f"{key}.json")}),
               out=tmp_path / "parts" / key, progress=False)
    merged = merge(cfg, [tmp_path / "parts" / k for k in keys], tmp_path / "merged", progress=False)
    reasons = merged["studies"]["by_reason"]
    if layout == "damaged_record_list":
        assert reasons["source_record_invalid"] == 1 and reasons["source_record_malformed"] == 1
        first = pd.read_parquet(tmp_path / "parts" / keys[0] / "quarantine.parquet")
        assert {"source_record_invalid", "source_record_malformed"} <= set(first["reason"])
    assert merged["conservation_ok"] and merged["records"]["in"] == single["records"]["in"]
    for name in ("studies.parquet", "images.parquet", "quarantine.parquet", "summary.json"):
        assert (tmp_path / "single" / name).read_bytes() == (tmp_path / "merged" / name).read_bytes(), name
    assert dvc_hash(tmp_path / "merged") == dvc_hash(tmp_path / "single")
