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


def read_source(source: str, root: Path, image_root: Path | None = None, partition: str = "") -> Iterator[RawStudy]:
    """Studies of `source` under `root` (only those under files/<partition>/ when given: MIMIC layout).

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
    if partition and _MODULES[source] is not mimic:
        raise ValueError(f"ingest.partition={partition!r}: partitions are the files/pNN folders of the "
                         f"MIMIC-CXR layout (sources mimic, synth), not of {source!r}")
    _MODULES[source].check_root(root)
    image_root = Path(image_root) if image_root is not None else None
    if partition:
        return mimic.read(root, image_root, partition)
    return READERS[source](root, image_root)
