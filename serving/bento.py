"""`cxr package`, BentoML half: the packaged models into the model store, then `bentoml build`.

Three models share one version, the package version of the model card (git commit + a digest of the
inputs' DVC hashes and the params), so `bentoml models list` and the Bento tag both lead back to the
commit and the data that made them. Saving is idempotent: a version already in the store is kept.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

from serving.config import CLIP_MODEL, INDEX_MODEL, ROOT, SERVICE_NAME, TEXT_MODEL

CARD = "model_card.json"


def _metadata(card: dict) -> dict:
    """The card's lineage as model-store metadata (what `bentoml models get` shows)."""
    return {"package_version": card["version"], "git_commit": card["git"]["commit"] or "",
            "git_dirty": bool(card["git"]["dirty"]), "params_hash": card["params_hash"],
            "inputs": {name: entry["md5"] for name, entry in card["inputs"].items()},
            "evaluation": json.dumps(card["evaluation"], sort_keys=True) if card["evaluation"] else ""}


def save_models(encoder_dir: str | Path, clip_dir: str | Path, package_dir: str | Path) -> dict[str, str]:
    """Save text encoder, CLIP model and index (+ model card) as `<name>:<package version>`."""
    import bentoml
    from bentoml.exceptions import NotFound

    package_dir = Path(package_dir)
    card = json.loads((package_dir / CARD).read_text())
    version = card["version"]
    labels = {"package": version, "git_commit": (card["git"]["commit"] or "none")[:12]}
    sources = {TEXT_MODEL: [Path(encoder_dir)], CLIP_MODEL: [Path(clip_dir)],
               INDEX_MODEL: [package_dir / "index"]}
    tags = {}
    for name, dirs in sources.items():
        tag = f"{name}:{version}"
        try:
            bentoml.models.get(tag)  # same version = same code, inputs and params: already saved
        except NotFound:
            with bentoml.models.create(tag, labels=labels, metadata=_metadata(card)) as model:
                for src in dirs:
                    dst = Path(model.path) / (src.name if name == INDEX_MODEL else "")
                    shutil.copytree(src, dst, dirs_exist_ok=True)
                shutil.copy2(package_dir / CARD, Path(model.path) / CARD)
        tags[name] = tag
    return tags


def build_bento(package_dir: str | Path) -> str:
    """`bentoml build` of the project (config: [tool.bentoml.build] in pyproject.toml, packages not
    locked, so nothing is resolved against a network), tagged with the package version. The Bento
    references its models by exact tag; its labels repeat the lineage (commit, inputs' DVC hashes)
    so `bentoml get` shows where it came from without opening the models."""
    import bentoml
    from bentoml.exceptions import NotFound

    import serving.service  # noqa: F401 - a broken service fails here, before the build; and DVC tracks its code

    card = json.loads((Path(package_dir) / CARD).read_text())
    version = card["version"]
    labels = {"package": version, "git_commit": (card["git"]["commit"] or "none")[:12],
              "params_hash": card["params_hash"],
              **{f"dvc_{name}": entry["md5"] for name, entry in card["inputs"].items()}}
    tag = f"{SERVICE_NAME}:{version}"
    try:
        bentoml.bentos.delete(tag)  # a rebuild of the same package (e.g. the service code changed)
    except NotFound:
        pass
    bentoml_cli = str(Path(sys.executable).with_name("bentoml"))
    cmd = [bentoml_cli, "build", "--version", version, "-o", "tag", str(ROOT)]
    for key, value in labels.items():
        cmd += ["--label", f"{key}={value}"]
    env = {**os.environ, "CXR_PACKAGE_VERSION": version, "BENTOML_DO_NOT_TRACK": "True"}
    done = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"bentoml build failed:\n{done.stderr[-4000:] or done.stdout[-4000:]}")
    return bentoml.bentos.get(tag).tag.__str__()


def stored_card(tag: str) -> dict:
    """The model card of a Bento or of a model that `cxr package` saved, read from the BentoML store."""
    import bentoml
    from bentoml.exceptions import BentoMLException, NotFound

    try:
        models = [m.tag for m in bentoml.bentos.get(tag).info.all_models]  # a service's own models too
    except NotFound:
        models = [tag]  # a model tag (cxr-clip:<version>), or nothing known
    except BentoMLException as e:
        raise ValueError(f"{tag!r} is not a Bento or model tag: {e}") from None
    for model in models:
        try:
            card = Path(bentoml.models.get(model).path) / CARD
        except (NotFound, BentoMLException):
            continue
        if card.exists():
            return {**json.loads(card.read_text()), "tag": tag}
    raise ValueError(f"{tag} is neither a Bento nor a model of `cxr package` in the BentoML store "
                     f"({os.environ.get('BENTOML_HOME', '~/bentoml')}); `bentoml list` shows what is there")
