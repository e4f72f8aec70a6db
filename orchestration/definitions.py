"""Dagster entry point (`dagster dev -m orchestration.definitions`, or `make ui`)."""

from __future__ import annotations

import os

from dagster import Definitions, PipesSubprocessClient

from orchestration.assets import build_assets
from orchestration.checks import checks
from orchestration.jobs import build_jobs
from orchestration.partitions import build_partition_assets, build_partition_jobs
from orchestration.resources import CxrProject
from orchestration.sensors import new_raw_files

project = CxrProject(root=os.environ.get("CXR_PROJECT_ROOT", "."), params_file=os.environ.get("CXR_PARAMS", "params.yaml"))

partitioned = build_partition_assets(project)

defs = Definitions(
    assets=build_assets(project.params_tree()) + partitioned,
    asset_checks=checks,
    jobs=build_jobs() + build_partition_jobs(partitioned),
    sensors=[new_raw_files],
    resources={"pipes": PipesSubprocessClient(), "project": project},
)
