"""The `evaluate` stage: every CLIP (the pipeline's and each ablation arm) on every dataset of
`evaluate.datasets`, the text encoders' robustness, and the ranking protocol; then the report.

Image metrics need a dataset with ingested images; text-only datasets get the robustness suite.
Retrieval for clinical alignment and ranking draws from a report corpus (the `corpus_split` reports of
`evaluate.clean`, by default the training split), as a report-retrieval system would in use: the
study's own report is never among the candidates there. Exact-pair retrieval (item 1) is on the split itself.
"""

from __future__ import annotations

import logging
import random
from pathlib import Path

import numpy as np

from components.chexpert import OBSERVATIONS
from components.evaluation import clinical, ranking, retrieval, robustness, zero_shot
from components.evaluation.data import EvalSplit, load_corpus, load_split, same_text
from components.evaluation.stats import mean_ci
from components.evaluation.towers import arm_dir

log = logging.getLogger(__name__)
RANDOM_SYSTEM = "random"


def systems(cfg) -> dict[str, Path]:
    """CLIP models by system name: `clip` (the pipeline's) and one per ablation tower."""
    return {"clip": Path(cfg.clip), **{t: arm_dir(cfg.ablation_dir, t) / "model" for t in cfg.ablation}}


def load_models(cfg) -> dict:
    from components.clip.model import CXRClip

    models = {}
    for name, path in systems(cfg).items():
        if not (path / "config.json").exists():
            raise FileNotFoundError(f"CLIP model {name!r} not found at {path}: run `dvc repro "
                                    f"{'clip' if name == 'clip' else 'ablation@' + name}` first")
        models[name] = CXRClip.load(path)
    return models


def _with_ci(values, cfg) -> dict:
    return mean_ci(values, cfg.bootstrap, cfg.seed)


def image_metrics(model, image_vecs: np.ndarray, split: EvalSplit, corpus, corpus_vecs: np.ndarray, cfg) -> dict:
    """Items 1, 2 and 4 for one model on one split with images."""
    text_vecs = model.encode_text(split.texts, batch_size=cfg.batch_size)
    sim = image_vecs.astype(np.float64) @ text_vecs.astype(np.float64).T
    rel = same_text(split.texts)
    pos = split.positives
    out = {"i2t": retrieval.recall_metrics(sim, rel, cfg.ks), "t2i": retrieval.recall_metrics(sim.T, rel.T, cfg.ks)}
    for direction, s, r in (("i2t", sim, rel), ("t2i", sim.T, rel.T)):
        for k in cfg.ks:
            out[direction][f"r_at_{k}_ci"] = _with_ci(retrieval.hit_at_k(s, r, k), cfg)["ci"]
        out[direction]["curve"] = [round(float(retrieval.hit_at_k(s, r, k).mean()), 4) for k in range(1, max(cfg.ks) + 1)]
    hit = retrieval.label_hit_rate(sim, pos, pos)
    per_query = (retrieval.topk_weights(sim, 1) * (pos[:, None, :] == pos[None, :, :]).all(-1)).sum(1)
    hit["ci"] = _with_ci(per_query, cfg)["ci"]
    out["label_hit"] = hit
    out["precision_at_k"] = retrieval.precision_at_k(sim, pos, pos, OBSERVATIONS, cfg.precision_k)
    probs = zero_shot.zero_shot_probabilities(model, image_vecs)
    labels = {o: split.labels[:, j] for j, o in enumerate(OBSERVATIONS)}
    out["zero_shot"] = zero_shot.auroc_table(probs, labels, cfg.bootstrap, cfg.seed)
    out["roc"] = {o: zero_shot.roc_points(probs[o][m], y[m]) for o in out["zero_shot"]["observations_defined"]
                  for m, y in [zero_shot.binary_targets(labels[o])]}
    csim = image_vecs.astype(np.float64) @ corpus_vecs.astype(np.float64).T
    out["clinical"] = clinical.retrieved_f1(csim, pos, corpus.positives, resamples=cfg.bootstrap, seed=cfg.seed)
    out["clinical"]["corpus"] = len(corpus.texts)
    out["top1"] = csim.argmax(1)  # the report each image retrieves (lowest corpus index on a tie); not written
    return out


def ranking_items(split: EvalSplit, corpus, top1: dict[str, np.ndarray], cfg) -> list[ranking.RankingItem]:
    """Sampled studies with one candidate per system (its top-1 corpus report) and a random report."""
    rng = random.Random(cfg.seed)
    chosen = sorted(rng.sample(range(len(split.texts)), min(cfg.ranking.n_studies, len(split.texts))))
    items = []
    for i in chosen:
        candidates = {name: corpus.texts[int(t[i])] for name, t in top1.items()}
        if cfg.ranking.random_system:
            candidates[RANDOM_SYSTEM] = corpus.texts[random.Random(f"{cfg.seed}:{split.study_ids[i]}").randrange(
                len(corpus.texts))]
        items.append(ranking.RankingItem(split.study_ids[i], split.texts[i], candidates))
    return items


def run_ranking(items: list[ranking.RankingItem], names: list[str], cfg, out_dir: Path) -> dict:
    """Item 5: every available judge, the aggregates per judge and the agreement between judges."""
    judges = {"rule": ranking.rule_judge(items)}
    out: dict = {"n_studies": len(items), "systems": names, "judges": {}}
    ranking.export_human_template(items, out_dir / "human_template.csv", cfg.seed)
    if cfg.ranking.llm.model:
        from components.evaluation.judge import LLMJudge

        llm = cfg.ranking.llm
        import os

        judge = LLMJudge(llm.base_url, llm.model, os.environ.get(llm.api_key_env), llm.prompt_version,
                         llm.malformed_retries, llm.temperature, llm.max_tokens, concurrency=llm.concurrency,
                         timeout_s=llm.timeout_s, max_attempts=llm.max_attempts, backoff_s=llm.backoff_s)
        judges["llm"], out["llm_counts"] = judge.rank(items, cfg.seed)
    if cfg.ranking.human_csv:
        judges["human"], problems = ranking.import_human_rankings(cfg.ranking.human_csv, items, cfg.seed)
        out["human_problems"] = {"n": len(problems), "by_reason": _count(p["reason"].split(":")[0] for p in problems)}
    for name, rankings in judges.items():
        out["judges"][name] = ranking.aggregate(rankings, names, cfg.bootstrap, cfg.seed)
    pairs = [(a, b) for i, a in enumerate(judges) for b in list(judges)[i + 1:]]
    out["agreement"] = {f"{a} vs {b}": ranking.agreement(judges[a], judges[b], names) for a, b in pairs}
    return out


def _count(values) -> dict:
    out: dict = {}
    for v in values:
        out[v] = out.get(v, 0) + 1
    return dict(sorted(out.items()))


def text_encoders(cfg) -> dict:
    """TextEncoders for the robustness suite by name; a missing directory is reported, not fatal."""
    from components.encoder.text_encoder import TextEncoder

    named = [("llm2vec4cxr", cfg.encoder), ("bert_baseline", cfg.baseline)]
    named += [(Path(p).name, p) for p in cfg.extra_encoders]
    encoders: dict = {}
    for name, path in named:
        if (Path(path) / "config.json").exists():
            encoders[name] = TextEncoder.load(path)
        else:
            encoders[name] = {"status": "missing", "path": str(path)}
    if cfg.minilm:
        from components.encoder.baselines import load_minilm

        encoders["minilm"] = load_minilm()
    return encoders


def evaluate(cfg) -> dict:
    """Run every evaluation and write metrics.json, details.json, report.md, figures/ and plots/ under cfg.out."""
    from components.io import atomic_dir

    with atomic_dir(cfg.out) as tmp:
        return _evaluate(cfg, tmp)


def _evaluate(cfg, out_dir: Path) -> dict:
    from components.evaluation.report import write_outputs

    models = load_models(cfg)
    names = list(models)
    corpus = load_corpus(cfg.clean, cfg.corpus_split)
    corpus_vecs = {n: m.encode_text(corpus.texts, batch_size=cfg.batch_size) for n, m in models.items()}
    encoders = text_encoders(cfg)
    details: dict = {"systems": {n: str(p) for n, p in systems(cfg).items()}, "datasets": {},
                     "corpus": {"path": cfg.clean, "split": cfg.corpus_split, "reports": len(corpus.texts)},
                     "prompts_hash": zero_shot.prompts_hash()}
    ranked = False
    for ds in cfg.all_datasets():
        split = load_split(ds.name, ds.clean, ds.split, ds.ingest)
        entry: dict = {"split": ds.split, "studies": len(split.texts), "no_image": split.no_image,
                       "images": split.images is not None}
        log.info("evaluating %s: %d studies", ds.name, len(split.texts))
        if split.images is not None:
            frames = split.frames()
            entry["systems"], top1 = {}, {}
            for name, model in models.items():
                image_vecs = model.encode_image(frames, batch_size=cfg.batch_size)
                entry["systems"][name] = image_metrics(model, image_vecs, split, corpus, corpus_vecs[name], cfg)
                top1[name] = entry["systems"][name].pop("top1")
            if not ranked and cfg.ranking.n_studies:
                items = ranking_items(split, corpus, top1, cfg)
                all_names = names + ([RANDOM_SYSTEM] if cfg.ranking.random_system else [])
                details["ranking"] = {"dataset": ds.name, **run_ranking(items, all_names, cfg, out_dir)}
                ranked = True
        rs = robustness.load_robustness_set(ds.clean, ds.variants, ds.split, cfg.seed)
        entry["robustness"] = robustness.robustness_table(encoders, rs, cfg.batch_size, cfg.bootstrap, cfg.seed)
        details["datasets"][ds.name] = entry
    return write_outputs(details, cfg, out_dir)
