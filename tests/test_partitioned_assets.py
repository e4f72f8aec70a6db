"""The partitioned ingest in Dagster: each pNN partition materialized through Pipes, then the merge, on a
tiny synthetic project; the merged output equals one `cxr ingest` of the same input."""

from __future__ import annotations

import yaml
from dagster import DagsterInstance, Definitions, PipesSubprocessClient, materialize

from components.ingest.run import ingest
from components.packaging.lineage import dvc_hash
from components.params import load_params
from orchestration.assets import build_assets
from orchestration.jobs import build_jobs
from orchestration.partitions import GROUP, PARTS, build_partition_assets, build_partition_jobs, partition_keys
from orchestration.resources import CxrProject
from tests.conftest import small_params_tree


def test_partitions_then_merge_equal_one_ingest(tmp_path):
    from components.synth.generate import generate

    tree = small_params_tree(tmp_path)
    tree["synth"].update(n_studies=8, image_size=64, seed=1)
    tree["synth"]["traps"] = {k: 0.0 for k in tree["synth"]["traps"]}
    tree["ingest"].update(resolution=32, shard_size=4)
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(tree))
    params = load_params(tmp_path / "params.yaml")
    project = CxrProject(root=str(tmp_path))
    assert partition_keys(project) == []  # no input yet: no partitioned assets, nothing fails
    generate(params.synth, progress=False)
    keys = partition_keys(project)
    assert len(keys) >= 2, keys

    assets = build_partition_assets(project)
    defs = Definitions(assets=assets, jobs=build_partition_jobs(assets),
                       resources={"pipes": PipesSubprocessClient(), "project": project})
    job = defs.resolve_job_def("partitioned_ingest")
    assert job.executor_def.name == "multiprocess" and set(job.partitions_def.get_partition_keys()) == set(keys)
    assert {a.key.to_user_string() for a in assets} == {"ingest_partition", "merged_ingest"}
    assert all(a.group_names_by_key[a.key] == GROUP for a in assets)
    whole = Definitions(assets=build_assets(tree) + assets, jobs=build_jobs() + build_partition_jobs(assets),
                        resources={"pipes": PipesSubprocessClient(), "project": project})
    for name in ("full_pipeline", "ingest_and_downstream"):  # the stage jobs leave the partitioned ingest alone
        selected = {k.to_user_string() for k in whole.resolve_job_def(name).asset_layer.selected_asset_keys}
        assert "ingested_studies" in selected and not selected & {"ingest_partition", "merged_ingest"}

    resources = {"pipes": PipesSubprocessClient(), "project": project}
    with DagsterInstance.ephemeral() as instance:
        for key in keys:
            result = materialize(assets, selection=["ingest_partition"], partition_key=key, instance=instance,
                                 resources=resources)
            assert result.success
            (event,) = result.get_asset_materialization_events()
            assert event.partition == key and event.materialization.metadata["studies_in"].value > 0
            assert (tmp_path / PARTS / key / "summary.json").is_file()
        merged = materialize(assets, selection=["merged_ingest"], instance=instance, resources=resources)
        assert merged.success
        (event,) = merged.get_asset_materialization_events()
        metadata = event.materialization.metadata
        assert metadata["partitions"].value == ", ".join(keys) and "not recorded" in metadata["lineage"].value

    single = tmp_path / "single"
    ingest(params.ingest.model_copy(update={"metrics": str(tmp_path / "single.json")}), out=single, progress=False)
    assert dvc_hash(tmp_path / params.ingest.out) == dvc_hash(single)
