"""The jobs a data team launches: the full pipeline, retraining from the text encoder on (data stages kept),
and re-evaluation. Each is a stage and everything downstream of it, so stages added later join by
themselves; a job whose starting stage is not declared (yet) is left out."""

from __future__ import annotations

from dagster import AssetSelection, define_asset_job

from components.stages import ORDER, module
from orchestration.partitions import GROUP

JOBS = {  # job name -> (first stage, None = every stage; description)
    "full_pipeline": (None, "Every stage on the configured data, in dependency order."),
    "retrain_from_encoder": ("encoder", "Retrain the text encoder and everything built on it; data stages kept."),
    # started by the new_raw_files sensor (orchestration/sensors.py)
    "ingest_and_downstream": ("ingest", "Ingest the configured input again and rebuild everything built on it."),
    "reevaluate": ("evaluate", "Evaluate the current models again (and rebuild what depends on the evaluation)."),
}


def build_jobs() -> list:
    jobs = []
    for name, (first, description) in JOBS.items():
        if first is None:  # every stage: the partitioned ingest is a job of its own
            selection = AssetSelection.all() - AssetSelection.groups(GROUP)
        elif first in ORDER:
            selection = AssetSelection.assets(module(first).STAGE.asset).downstream()
        else:
            continue
        jobs.append(define_asset_job(name, selection=selection, description=description))
    return jobs
