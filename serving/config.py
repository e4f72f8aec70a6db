"""The service's settings: the `serve` section of params.yaml, read once at import (BentoML fixes
batch sizes and limits when the service class is declared). CXR_PARAMS names another params file."""

from __future__ import annotations

import os
from pathlib import Path

from components.params import ServeParams, load_params

ROOT = Path(__file__).resolve().parent.parent  # the checkout, or a Bento's src/ (params.yaml is included)


def serve_params() -> ServeParams:
    path = Path(os.environ.get("CXR_PARAMS", ROOT / "params.yaml"))
    return load_params(path).serve if path.exists() else ServeParams()


# Model store tags. `cxr package` pins the version it just saved while building the Bento; inside a
# Bento (or in a plain `bentoml serve`) "latest" is the one packed with it / the newest saved.
MODEL_VERSION = os.environ.get("CXR_PACKAGE_VERSION", "latest")
TEXT_MODEL, CLIP_MODEL, INDEX_MODEL = "cxr-text-encoder", "cxr-clip", "cxr-report-index"
SERVICE_NAME = "cxr-service"
