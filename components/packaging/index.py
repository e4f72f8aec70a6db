"""Retrieval index: the reference report corpus, embedded once at packaging time.

Only reports that passed the PHI checks enter: the clean stage's verdict (`phi_spans == 0`) and,
because a served response must never carry PHI, a second look with the same detector. Two vector
sets share the rows: the text encoder's (text -> report search) and the CLIP text tower's (image ->
report search, the space the CLIP model was trained to align).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

TABLE = "reports.parquet"          # study_id, split, text
TEXT_VECTORS = "text_vectors.npy"  # (n, d_text) float32, L2-normalised
CLIP_VECTORS = "clip_vectors.npy"  # (n, d_clip) float32, L2-normalised


def reference_reports(clean_dir: str | Path, splits: list[str]) -> tuple[pd.DataFrame, dict]:
    """The clean reports of `splits` that carry no PHI, and how many were left out and why."""
    from components.privacy.phi import detect_phi

    table = pd.read_parquet(Path(clean_dir) / TABLE, columns=["study_id", "split", "text", "phi_spans"])
    in_split = table["split"].isin(splits)
    flagged = table["phi_spans"].fillna(1) > 0  # the clean stage kept it but its check still saw PHI
    redetected = table["text"].map(lambda t: bool(detect_phi(t)))
    keep = in_split & ~flagged & ~redetected
    counts = {"reports_in": int(len(table)), "other_splits": int((~in_split).sum()),
              "excluded_phi": int((in_split & (flagged | redetected)).sum()), "indexed": int(keep.sum())}
    kept = table.loc[keep, ["study_id", "split", "text"]].sort_values("study_id", kind="stable")
    return kept.reset_index(drop=True), counts


def build_index(reports: pd.DataFrame, text_encoder, clip, out: Path, batch_size: int = 64) -> dict:
    """Embed `reports` with both towers into `out` (a directory the caller makes atomic)."""
    texts = list(reports["text"])
    text_vecs = text_encoder.encode(texts, batch_size=batch_size).astype(np.float32)
    clip_vecs = clip.encode_text(texts, batch_size=batch_size).astype(np.float32)
    out.mkdir(parents=True, exist_ok=True)
    reports.to_parquet(out / TABLE, index=False)
    np.save(out / TEXT_VECTORS, text_vecs)
    np.save(out / CLIP_VECTORS, clip_vecs)
    return {"rows": len(reports), "text_dim": int(text_vecs.shape[1]), "clip_dim": int(clip_vecs.shape[1])}


class ReportIndex:
    """The saved index, searched by cosine similarity (rows and queries are unit vectors)."""

    def __init__(self, path: str | Path):
        path = Path(path)
        self.reports = pd.read_parquet(path / TABLE)
        self.vectors = {"text": np.load(path / TEXT_VECTORS), "clip": np.load(path / CLIP_VECTORS)}

    def __len__(self) -> int:
        return len(self.reports)

    def search(self, query: np.ndarray, space: str, k: int) -> list[dict]:
        """Top-k rows for one query vector in `space` ("text" or "clip"), best first."""
        scores = self.vectors[space] @ np.asarray(query, dtype=np.float32).reshape(-1)
        k = min(k, len(scores))
        top = np.argpartition(-scores, k - 1)[:k] if k else np.array([], dtype=int)
        top = top[np.lexsort((top, -scores[top]))]  # score desc, row order on ties: deterministic
        rows = self.reports.iloc[top]
        return [{"study_id": str(s), "score": float(scores[i]), "report": str(t)}
                for i, s, t in zip(top, rows["study_id"], rows["text"])]
