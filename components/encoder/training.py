"""The encoder and baselines stages: the LLM2VEC4CXR recipe end to end, and the same-budget BERT.

LLM2VEC4CXR: (pretrain the demo LM, unless encoder.base_model names a checkpoint) -> MNTP with LoRA ->
supervised contrastive with LoRA; each step resumes from its own checkpoints when re-run after a kill.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from components.io import write_json


def _curve(run_dir: Path, phase: str) -> list[dict]:
    """(step, loss) rows of a training step's metrics.jsonl, for DVC plots and the summary."""
    path = run_dir / "metrics.jsonl"
    if not path.exists():
        return []
    rows = (json.loads(line) for line in path.read_text().splitlines() if line.strip())
    return [{"phase": phase, "step": r["step"], "loss": round(r["loss"], 5)} for r in rows if "loss" in r]


def train_encoder(p) -> dict:
    """`p`: the encoder params section (components.params.EncoderParams)."""
    from components.encoder.contrastive import run_contrastive
    from components.encoder.mntp import run_mntp
    from components.encoder.pretrain import run_pretrain

    pretrain, mntp, contrastive = p.pretrain, p.mntp, p.contrastive
    for stage_dir, stage in ((p.clean, "clean"), (p.variants, "variants")):
        if not Path(stage_dir).exists():
            raise FileNotFoundError(f"{stage_dir} not found: run `cxr {stage}` first")
    start = time.perf_counter()
    steps = Path(p.steps_dir)
    base = Path(p.base_model) if p.base_model else run_pretrain(pretrain, p.clean, steps / "pretrained")
    adapted = run_mntp(mntp, p.clean, base, steps / "mntp")
    evaluation = run_contrastive(contrastive, p.clean, p.variants, adapted, p.out)
    curves = {phase: _curve(d, phase) for phase, d in (("pretrain", steps / "pretrained"), ("mntp", steps / "mntp"),
                                                        ("contrastive", Path(p.out))) if phase != "pretrain" or not p.base_model}
    summary = {
        "base_model": str(base), "pretrained_here": not p.base_model,
        "final_loss": {phase: rows[-1]["loss"] if rows else None for phase, rows in curves.items()},
        "evaluation": evaluation, "seconds": round(time.perf_counter() - start, 1),
    }
    write_json(p.metrics, {"pretrained_here": not p.base_model, "final_loss": summary["final_loss"],
                           "r_at_1_after": evaluation["r_at_1_after"],
                           "r_at_1_before": evaluation["r_at_1_before"]})  # headline figures only
    write_json(p.loss_plot, [row for rows in curves.values() for row in rows])
    return summary


def train_baselines(p, encoder) -> dict:
    """The fair comparison of recipes: a BERT of the demo LLM's size and data budget, MLM-pretrained
    (pretrain + MNTP steps) then trained with the same contrastive step and triples.
    `p`: the baselines params section; `encoder`: the encoder section (its pretrain, mntp, contrastive)."""
    from components.encoder.baselines import BertBaselineConfig, run_bert_baseline

    if not Path(p.variants).exists():
        raise FileNotFoundError(f"{p.variants} not found: run `cxr variants` first")
    start = time.perf_counter()
    cfg = BertBaselineConfig.matching(encoder.pretrain, encoder.mntp, encoder.contrastive)
    cfg = cfg.model_copy(update={"loop": cfg.loop.model_copy(update={"lr": p.mlm_lr})})
    result = run_bert_baseline(cfg, p.clean, p.variants, p.out)
    summary = {"encoder": p.out, "mlm_steps": result["mlm"].get("steps"), "mlm_lr": p.mlm_lr,
               "mlm_final_loss": result["mlm"].get("final_loss"),
               "evaluation": result["contrastive"], "seconds": round(time.perf_counter() - start, 1)}
    write_json(p.metrics, {"mlm_final_loss": summary["mlm_final_loss"],
                           "r_at_1_after": result["contrastive"]["r_at_1_after"]})  # headline figures only
    return summary
