"""Dagster entry point (`dagster dev -m orchestration.definitions`, or `make ui`)."""

from __future__ import annotations

import os

from dagster import AssetSelection, Definitions, PipesSubprocessClient, define_asset_job

from orchestration.assets import build_assets
from orchestration.checks import checks
from orchestration.resources import CxrProject

project = CxrProject(root=os.environ.get("CXR_PROJECT_ROOT", "."), params_file=os.environ.get("CXR_PARAMS", "params.yaml"))

demo_job = define_asset_job("demo_pipeline", selection=AssetSelection.all(),
                            description="Every stage on the configured data, in dependency order.")

defs = Definitions(
    assets=build_assets(project.params_tree()),
    asset_checks=checks,
    jobs=[demo_job],
    resources={"pipes": PipesSubprocessClient(), "project": project},
)
