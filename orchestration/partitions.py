"""Partitioned ingest (a dataset too big for one run): asset `ingest_partition`, partitioned by the files/pNN
folders of a MIMIC-layout input, each partition `cxr ingest --partition pNN --out data/ingest-parts/pNN`
through Pipes; asset `merged_ingest` merges every partition (`cxr ingest merge`) into the ingest stage's
output, which then equals what one `cxr ingest` writes (tests/test_partitioned_ingest.py).

Both are outside the DVC graph: DVC records stages it runs itself, and these run `cxr` directly, so
the merge is reported as not recorded in dvc.lock (README "Partitioned ingest"). Partitions are the
folders found when the definitions load (reload the code location after adding one).
"""

from dagster import (AssetExecutionContext, AssetSelection, Config, MaterializeResult, PipesSubprocessClient,
                     StaticPartitionsDefinition, asset, define_asset_job, multiprocess_executor)
from pydantic import Field

from orchestration.resources import CxrProject

PARTS = "data/ingest-parts"  # one folder per partition, under the project root
GROUP = "ingest_partitions"
MIMIC_LAYOUT = ("mimic", "synth")


def partition_keys(project: CxrProject) -> list[str]:
    """The pNN folders of the configured input ([] when it is absent or not in the MIMIC layout)."""
    from components.ingest.readers import mimic

    ingest = project.params_tree().get("ingest") or {}
    root = project.path / (ingest.get("input") or "data/raw/synth")
    image_root = project.path / ingest["image_root"] if ingest.get("image_root") else None
    if ingest.get("source", "synth") not in MIMIC_LAYOUT or not root.is_dir():
        return []
    return mimic.partitions(root, image_root)


class PartitionConfig(Config):
    workers: int = Field(1, description="decoding processes per partition (partitions already run side by side)")


def build_partition_assets(project: CxrProject) -> list:
    keys = partition_keys(project)
    if not keys:
        return []

    @asset(partitions_def=StaticPartitionsDefinition(keys), group_name=GROUP, kinds={"python"},
           description="One files/pNN folder of the configured input, ingested on its own "
                       f"(`cxr ingest --partition pNN --out {PARTS}/pNN`). Not recorded by DVC.")
    def ingest_partition(context: AssetExecutionContext, config: PartitionConfig, pipes: PipesSubprocessClient,
                         project: CxrProject):
        key = context.partition_key
        command = project.cli("ingest", "--partition", key, "--out", f"{PARTS}/{key}", "--workers", str(config.workers))
        return pipes.run(command=command, context=context, cwd=str(project.path),
                         env=project.env()).get_materialize_result()

    @asset(deps=[ingest_partition], group_name=GROUP, kinds={"python"},
           description="Every partition merged into the ingest stage's output (`cxr ingest merge`): the same "
                       "files one `cxr ingest` writes. Not recorded by DVC: `dvc repro ingest` records the stage.")
    def merged_ingest(context: AssetExecutionContext, pipes: PipesSubprocessClient, project: CxrProject):
        parts = [arg for key in keys for arg in ("--part", f"{PARTS}/{key}")]
        with project.dvc_lock():  # it writes a DVC stage's output: not while DVC runs
            reported = pipes.run(command=project.cli("ingest", "merge", *parts), context=context,
                                 cwd=str(project.path), env=project.env()).get_materialize_result()
        metadata = dict(reported.metadata or {})
        metadata["lineage"] = "not recorded: a partitioned ingest runs outside DVC (README, Partitioned ingest)"
        return MaterializeResult(metadata=metadata)

    return [ingest_partition, merged_ingest]


def build_partition_jobs(assets: list) -> list:
    """`partitioned_ingest`: a backfill of every partition, then the merge (Dagster runs each partition
    as its own run, as many at once as the run queue allows; steps of a run share the multiprocess executor)."""
    if not assets:
        return []
    return [define_asset_job("partitioned_ingest", selection=AssetSelection.groups(GROUP),
                             executor_def=multiprocess_executor.configured({"max_concurrent": 2}),
                             description="Ingest each files/pNN folder apart, then merge them into the ingest output.")]
