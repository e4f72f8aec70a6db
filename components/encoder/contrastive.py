"""Step 2 of LLM2Vec: supervised contrastive learning (InfoNCE) with LoRA on the bidirectional encoder.

Each anchor (a clean report) must pick its positive (an accepted equivalent variant: paraphrase,
abbreviation, split, ...) out of: its own hard negatives (accepted error variants of the same report:
a swapped side, a wrong severity ...), and every other row's positive and hard negatives (in-batch
negatives). Positives of other rows of the *same* report are masked out: they are not negatives.
Under DDP each rank contrasts its own shard (no all-gather): in-batch negatives = batch_size - 1.

Written before and after training: variant-to-original retrieval R@1 (queries: accepted equivalent
variants; gallery: all clean reports of the split), on the train and val splits.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from components.training import loop as train_loop
from components.encoder.config import EncoderConfig
from components.encoder.data import RetrievalSet, Triple, load_retrieval, load_triples, text_digest
from components.io import write_json
from components.params import ContrastiveConfig

log = logging.getLogger(__name__)


def _encoder_config(cfg: ContrastiveConfig) -> EncoderConfig:
    return EncoderConfig(family=cfg.family, pooling=cfg.pooling, max_length=cfg.max_length,
                         instruction=cfg.instruction)


def info_nce(anchors: torch.Tensor, candidates: torch.Tensor, owner: torch.Tensor, group: torch.Tensor,
             temperature: float) -> tuple[torch.Tensor, torch.Tensor]:
    """anchors (B, D); candidates (B + N, D): B positives (row i's at i) then N hard negatives;
    owner (B + N,): the anchor row each candidate belongs to; group (B,): report id of each row.
    Returns (loss, accuracy of picking the positive)."""
    a, c = F.normalize(anchors.float(), dim=-1), F.normalize(candidates.float(), dim=-1)
    logits = a @ c.T / temperature
    b = a.shape[0]
    is_pos = torch.arange(c.shape[0], device=c.device) < b
    same_report = group[:, None] == group[owner][None, :]
    other_row = torch.arange(b, device=c.device)[:, None] != owner[None, :]
    logits = logits.masked_fill(same_report & other_row & is_pos[None, :], float("-inf"))
    target = torch.arange(b, device=c.device)
    return F.cross_entropy(logits, target), (logits.argmax(1) == target).float().mean()


def retrieval_r_at_1(encoder, rs: RetrievalSet, batch_size: int = 32) -> float | None:
    """Share of variant queries whose nearest clean report (cosine) is their own; None without queries."""
    if not rs.queries:
        return None
    q, g = encoder.encode(rs.queries, batch_size=batch_size), encoder.encode(rs.gallery, batch_size=batch_size)
    return float(np.mean((q @ g.T).argmax(1) == np.asarray(rs.target)))


def _evaluate(encoder, sets: dict[str, RetrievalSet]) -> dict[str, float | None]:
    return {split: retrieval_r_at_1(encoder, rs) for split, rs in sets.items()}


def train_contrastive(cfg: ContrastiveConfig, triples: list[Triple], backbone_dir: str | Path, out: str | Path,
                      eval_sets: dict[str, RetrievalSet] | None = None) -> dict:
    """Contrastive LoRA training of the TextEncoder built on `backbone_dir` (the MNTP output); LoRA is
    merged and the encoder written to `out` with TextEncoder.save (atomically, with metrics.jsonl,
    train_summary.json, eval.json). Resumes a killed run. Returns the evaluation dict."""
    from peft import get_peft_model

    from components.encoder.text_encoder import TextEncoder

    d = train_loop.init_distributed(cfg.loop.device)
    work = train_loop.work_dir_for(out)
    eval_sets = eval_sets or {}
    train_loop.seed_everything(cfg.loop.seed)  # latent pooler and LoRA init
    encoder = TextEncoder.from_backbone(Path(backbone_dir), _encoder_config(cfg))
    encoder.to(d.device)
    before = _evaluate(encoder, eval_sets) if d.main else {}
    encoder.backbone = get_peft_model(encoder.backbone, cfg.lora.peft_config("FEATURE_EXTRACTION"))
    log.info("contrastive training on %d triples from %d reports; R@1 before: %s", len(triples),
             len({t.group for t in triples}), before)

    def step(net, idx, _step):
        rows = [triples[i] for i in idx]
        negatives = [(row, neg) for row, t in enumerate(rows) for neg in t.negatives]
        texts = [t.anchor for t in rows] + [t.positive for t in rows] + [n for _, n in negatives]
        batch = {k: v.to(d.device) for k, v in encoder.tokenize(texts).items()}
        emb = net(**batch)
        b = len(rows)
        owner = torch.tensor(list(range(b)) + [row for row, _ in negatives], device=d.device)
        group = torch.tensor([t.group for t in rows], device=d.device)
        loss, acc = info_nce(emb[:b], emb[b:], owner, group, cfg.temperature)
        return loss, {"accuracy": acc.item(), "candidates": len(texts) - b}

    run_key = {"cfg": cfg.model_dump(mode="json"), "backbone": str(Path(backbone_dir).resolve()),
               "triples": text_digest(repr(t) for t in triples)}
    summary = train_loop.train(encoder, step, len(triples), cfg.loop, work, d, run_key)
    encoder.backbone = encoder.backbone.merge_and_unload()
    after = _evaluate(encoder, eval_sets) if d.main else {}
    result = {"r_at_1_before": before, "r_at_1_after": after, "triples": len(triples)}
    log.info("R@1 after: %s", after)
    eval_line = {"step": cfg.loop.steps, "event": "eval",
                 **{f"{s}/r_at_1_before": v for s, v in before.items()},
                 **{f"{s}/r_at_1_after": v for s, v in after.items()}}

    def save(tmp: Path):
        encoder.save(tmp)
        write_json(tmp / "eval.json", result)

    train_loop.finish(out, work, save, summary, d, extra_metrics=[eval_line])
    return result


def run_contrastive(cfg: ContrastiveConfig, clean_dir: str | Path, variants_dir: str | Path,
                    backbone_dir: str | Path, out: str | Path) -> dict:
    """The stage: triples from the train split; retrieval evaluated on `cfg.eval_splits`."""
    triples = load_triples(clean_dir, variants_dir, "train", cfg.hard_negatives, cfg.loop.seed)
    sets = {s: load_retrieval(clean_dir, variants_dir, s) for s in cfg.eval_splits}
    return train_contrastive(cfg, triples, backbone_dir, out, sets)


if __name__ == "__main__":  # torchrun --nproc_per_node N -m components.encoder.contrastive --config c.json ...
    train_loop.stage_main(run_contrastive, ContrastiveConfig)
