"""Dataset readers: list the studies of a source (ids, report text, image paths) without decoding pixels.

Each reader is `read(root, image_root=None) -> Iterator[RawStudy]` in sorted study-id order; bad
records are yielded with an error code, never raised. `image_root` is where the images live when
they are kept apart from the tables and reports (ingest.image_root); None means under `root`. read_source() checks the root up front so a wrong path fails
before the pipeline starts rather than on the first record.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

from components.ingest.readers import chexpert_plus, manifest, mimic, openi
from components.ingest.records import RawStudy

# "synth": the synthetic generator writes the MIMIC-CXR layout.
_MODULES = {"synth": mimic, "mimic": mimic, "chexpert-plus": chexpert_plus, "openi": openi,
            "manifest": manifest}

READERS: dict[str, Callable[..., Iterator[RawStudy]]] = {k: m.read for k, m in _MODULES.items()}


def read_source(source: str, root: Path, image_root: Path | None = None) -> Iterator[RawStudy]:
    """Studies of `source` under `root`.

    Raises ValueError for an unknown source (or a manifest lacking required columns) and
    FileNotFoundError when root is absent or does not look like that source.
    """
    if source not in _MODULES:
        raise ValueError(f"unknown source {source!r}; expected one of {', '.join(sorted(_MODULES))}")
    root = Path(root)
    if not root.exists():
        raise FileNotFoundError(f"{source} root {root} does not exist")
    if image_root is not None and not Path(image_root).is_dir():
        raise FileNotFoundError(f"image root {image_root} is not a folder")
    _MODULES[source].check_root(root)
    return READERS[source](root, Path(image_root) if image_root is not None else None)
