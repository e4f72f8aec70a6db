"""The evaluation's outputs: compact metrics.json (for `dvc metrics diff`), details.json (every figure with
its n and interval), report.md (every table), figures/*.png and plots/*.json (DVC plot data)."""

from __future__ import annotations

import json
from pathlib import Path

from components.evaluation.clinical import COMPETITION
from components.io import write_bytes_atomic, write_json
from components.pipes import md_table

ROBUSTNESS_KEYS = ("abbreviation_r_at_1", "paraphrase_r_at_1", "style_transfer_r_at_1", "impression_only_r_at_1",
                   "error_discrimination_strict", "error_discrimination_tie_aware", "error_discrimination_mean_rank",
                   "error_discrimination_margin")


def _r(x, nd: int = 4):
    return None if x is None else round(float(x), nd)


def _ci(v) -> str:
    return "" if not v else f"[{v[0]:.3f}, {v[1]:.3f}]"


def _fmt(value, ci=None) -> str:
    if value is None:
        return "n/a"
    return f"{value:.3f} {_ci(ci)}".strip()


def primary_dataset(details: dict) -> str | None:
    return next((n for n, d in details["datasets"].items() if d.get("systems")), None)


def compact_metrics(details: dict) -> dict:
    """The headline numbers, nested by dataset / system (DVC flattens them for `metrics diff`)."""
    out: dict = {}
    for name, d in details["datasets"].items():
        ds: dict = {}
        for system, m in (d.get("systems") or {}).items():
            ds[system] = {
                **{f"i2t_{k}": _r(v) for k, v in m["i2t"].items() if k.startswith("r_at_") and not k.endswith("ci")},
                **{f"t2i_{k}": _r(v) for k, v in m["t2i"].items() if k.startswith("r_at_") and not k.endswith("ci")},
                "i2t_median_rank": _r(m["i2t"]["median_rank"]), "t2i_median_rank": _r(m["t2i"]["median_rank"]),
                "label_hit_at_1": _r(m["label_hit"]["label_hit_at_1"]),
                "zero_shot_macro_auroc": _r(m["zero_shot"]["macro_auroc"]),
                "clinical_micro_f1": _r(m["clinical"]["all"]["micro_f1"]),
                "clinical_macro_f1": _r(m["clinical"]["all"]["macro_f1"]),
                "clinical_micro_f1_5": _r(m["clinical"]["competition"]["micro_f1"]),
                "clinical_macro_f1_5": _r(m["clinical"]["competition"]["macro_f1"]),
            }
        ds["robustness"] = {enc: {k: _r(row[k]["value"]) for k in ROBUSTNESS_KEYS if k in row}
                            for enc, row in d["robustness"]["encoders"].items() if "status" not in row}
        out[name] = ds
    if "ranking" in details:
        out["ranking"] = {judge: {s: _r(v["value"]) for s, v in agg["mean_rank"].items()}
                          for judge, agg in details["ranking"]["judges"].items()}
    return out


# (column header, key) of the terminal summary: point values only, the intervals are in report.md
_SYSTEM_COLUMNS = (("i2t R@1", "i2t_r_at_1"), ("i2t R@10", "i2t_r_at_10"), ("hit@1", "label_hit_at_1"),
                   ("AUROC", "zero_shot_macro_auroc"), ("clin F1", "clinical_micro_f1"))
_ENCODER_COLUMNS = (("abbrev", "abbreviation_r_at_1"), ("paraph", "paraphrase_r_at_1"),
                    ("style", "style_transfer_r_at_1"), ("impr", "impression_only_r_at_1"),
                    ("4-way", "error_discrimination_tie_aware"))


def summary_table(metrics: dict) -> str:
    """The evaluation's headline figures (metrics.json) as two narrow terminal tables per dataset: each
    CLIP system's retrieval, label hit, zero-shot AUROC and clinical F1; each text encoder's robustness."""
    def table(title: str, rows: dict, columns) -> list[str]:
        width = max([len(title), *map(len, rows)]) + 2
        lines = [title.ljust(width) + "".join(f"{h:>10}" for h, _ in columns)]
        for name, figures in rows.items():
            lines.append(name.ljust(width) + "".join(
                f"{figures[k]:>10.3f}" if figures.get(k) is not None else f"{'n/a':>10}" for _, k in columns))
        return lines

    lines = []
    for dataset, systems in metrics.items():
        if dataset == "ranking" or not isinstance(systems, dict):
            continue
        clips = {name: figures for name, figures in systems.items() if name != "robustness"}
        lines.append(f"evaluation of `{dataset}` (point values; intervals and every table: report.md)")
        if clips:
            lines += table("CLIP system", clips, _SYSTEM_COLUMNS)
        if systems.get("robustness"):
            lines += table("text encoder R@1 / 4-way", systems["robustness"], _ENCODER_COLUMNS)
    return "\n".join(lines)


def _retrieval_rows(d: dict, ks) -> list[dict]:
    rows = []
    for system, m in d["systems"].items():
        for direction in ("i2t", "t2i"):
            r = m[direction]
            rows.append({"system": system, "direction": direction, "gallery": r["gallery"], "queries": r["n_queries"],
                         **{f"R@{k}": _fmt(r[f"r_at_{k}"], r.get(f"r_at_{k}_ci")) for k in ks},
                         **{f"chance R@{k}": f"{r[f'chance_r_at_{k}']:.3f}" for k in ks},
                         "median rank": f"{r['median_rank']:.1f} (chance {r['chance_median_rank']:.1f})"})
    return rows


def ablation_rows(details: dict) -> list[dict]:
    name = primary_dataset(details)
    if name is None:
        return []
    rank = details.get("ranking", {}).get("judges", {}).get("rule", {}).get("mean_rank", {})
    rows = []
    for system, m in details["datasets"][name]["systems"].items():
        c = m["clinical"]
        rows.append({"system": system, "i2t R@1": _fmt(m["i2t"]["r_at_1"], m["i2t"].get("r_at_1_ci")),
                     "i2t R@10": _fmt(m["i2t"].get("r_at_10"), m["i2t"].get("r_at_10_ci")),
                     "label hit@1": _fmt(m["label_hit"]["label_hit_at_1"], m["label_hit"].get("ci")),
                     "zero-shot macro AUROC": _fmt(m["zero_shot"]["macro_auroc"], m["zero_shot"]["macro_ci"]),
                     "clinical micro F1 (14)": _fmt(c["all"]["micro_f1"], c["all"]["micro_f1_ci"]),
                     "clinical micro F1 (5)": _fmt(c["competition"]["micro_f1"], c["competition"]["micro_f1_ci"]),
                     "mean rank (rule judge)": _fmt(rank.get(system, {}).get("value"), rank.get(system, {}).get("ci"))})
    return rows


def report_markdown(details: dict, cfg) -> str:
    lines = ["# Evaluation", "", f"Systems: {', '.join(details['systems'])}. Retrieval corpus for clinical "
             f"alignment and ranking: {details['corpus']['reports']} distinct {details['corpus']['split']} reports. "
             f"Intervals: bootstrap 95% ({cfg.bootstrap} resamples). R@k and ranks are tie-aware; chance = a "
             f"random ranking.", ""]
    abl = ablation_rows(details)
    if abl:
        first = next(iter(details["datasets"][primary_dataset(details)]["systems"].values()))
        lines += ["## Text-tower ablation", "", f"On `{primary_dataset(details)}`: gallery {first['i2t']['gallery']} "
                  f"studies; chance i2t R@1 {first['i2t']['chance_r_at_1']:.3f}, R@10 "
                  f"{first['i2t'].get('chance_r_at_10', float('nan')):.3f}, label hit@1 "
                  f"{first['label_hit']['chance_label_hit_at_1']:.3f}, zero-shot AUROC 0.5; clinical F1 against "
                  f"a corpus of {details['corpus']['reports']} reports.", "", md_table(abl), ""]
    for name, d in details["datasets"].items():
        lines += [f"## Dataset `{name}` ({d['split']} split, {d['studies']} studies"
                  + (f", {d['no_image']} without image left out of image metrics" if d["no_image"] else "") + ")", ""]
        if d.get("systems"):
            lines += ["### Retrieval (exact pairs; identical report texts count as correct)", "",
                      md_table(_retrieval_rows(d, cfg.ks)), ""]
            for system, m in d["systems"].items():
                zs = m["zero_shot"]
                lines += [f"### `{system}`: zero-shot AUROC (macro {_fmt(zs['macro_auroc'], zs['macro_ci'])})", "",
                          md_table([{"observation": o, "AUROC": _fmt(r["auroc"], r["ci"]), "positive": r["n_positive"],
                                     "negative": r["n_negative"], "uncertain (excluded)": r["n_uncertain_excluded"],
                                     f"P@{cfg.precision_k}": _fmt(m["precision_at_k"][o]["precision"]),
                                     f"P@{cfg.precision_k} chance": _fmt(m["precision_at_k"][o]["chance"]),
                                     "clinical F1": _fmt(m["clinical"]["all"]["per_observation"][o])}
                                    for o, r in zs["per_observation"].items()]), ""]
                c, h = m["clinical"], m["label_hit"]
                lines += [f"Label-level hit@1 {_fmt(h['label_hit_at_1'], h.get('ci'))} (chance "
                          f"{_fmt(h['chance_label_hit_at_1'])}, gallery {h['gallery']}). Clinical F1 of the top-1 "
                          f"corpus report: micro {_fmt(c['all']['micro_f1'], c['all']['micro_f1_ci'])}, macro "
                          f"{_fmt(c['all']['macro_f1'], c['all']['macro_f1_ci'])} over 14; micro "
                          f"{_fmt(c['competition']['micro_f1'], c['competition']['micro_f1_ci'])}, macro "
                          f"{_fmt(c['competition']['macro_f1'], c['competition']['macro_f1_ci'])} over "
                          f"{', '.join(COMPETITION)}.", ""]
        rob = d["robustness"]
        lines += ["### Text robustness (" + ", ".join(f"{k} {v}" for k, v in rob["counts"].items()) +
                  f"; chance R@1 {rob['chance']['r_at_1']:.3f}, 4-way 0.25)", ""]
        rows = []
        for enc, row in rob["encoders"].items():
            if "status" in row:
                rows.append({"encoder": enc, **{k: row["status"] for k in ROBUSTNESS_KEYS}})
            else:
                rows.append({"encoder": enc, **{k: _fmt(row[k]["value"], row[k]["ci"]) for k in ROBUSTNESS_KEYS}})
        lines += [md_table(rows), ""]
        cats = sorted({c for row in rob["encoders"].values() for c in row.get("by_error_category", {})})
        if cats:
            lines += ["Pairwise (original vs one error variant, tie-aware) by error category:", "", md_table([
                {"encoder": enc, **{c: _fmt(row["by_error_category"][c]["tie_aware"]["value"]) if c in
                                    row["by_error_category"] else "n/a" for c in cats}}
                for enc, row in rob["encoders"].items() if "status" not in row]), ""]
    if "ranking" in details:
        rk = details["ranking"]
        lines += [f"## Ranking protocol ({rk['n_studies']} studies of `{rk['dataset']}`; rank 1 = closest to the "
                  "ground truth)", ""]
        for judge, agg in rk["judges"].items():
            lines += [f"### Judge: {judge}", "", md_table([{"system": s, "mean rank": _fmt(v["value"], v["ci"]),
                                                             "n": v["n"]} for s, v in agg["mean_rank"].items()]), "",
                      md_table([{"pair": p, "win rate": _fmt(v["value"], v["ci"]), "n": v["n"]}
                                for p, v in agg["win_rate"].items()]), ""]
        if rk["agreement"]:
            lines += ["### Agreement between judges", "", md_table([{"judges": p, **v} for p, v in
                                                                     rk["agreement"].items()]), ""]
        if "llm_counts" in rk:
            lines += [f"LLM judge: {json.dumps(rk['llm_counts'], sort_keys=True)}", ""]
        lines += ["Human ranking: fill in `human_template.csv` (column `rank`) and set "
                  "`evaluate.ranking.human_csv` to its path.", ""]
    return "\n".join(lines)


def plot_data(details: dict) -> dict[str, list[dict]]:
    recall, roc, abl = [], [], []
    name = primary_dataset(details)
    if name:
        for system, m in details["datasets"][name]["systems"].items():
            recall += [{"system": system, "k": k, "recall": v} for k, v in enumerate(m["i2t"]["curve"], start=1)]
            roc += [{"system": system, "observation": o, "fpr": f, "tpr": t}
                    for o, pts in m["roc"].items() for f, t in zip(pts["fpr"], pts["tpr"])]
        metrics = compact_metrics(details)[name]
        for system in details["datasets"][name]["systems"]:
            abl += [{"system": system, "metric": k, "value": metrics[system][k]} for k in
                    ("i2t_r_at_10", "label_hit_at_1", "zero_shot_macro_auroc", "clinical_micro_f1")
                    if k in metrics[system]]
    return {"recall_at_k": recall, "roc": roc, "ablation": abl}


def write_outputs(details: dict, cfg, out_dir: Path) -> dict:
    from components.evaluation.plots import bars_png, curves_png

    metrics = compact_metrics(details)
    write_json(out_dir / "metrics.json", metrics)
    write_json(out_dir / "details.json", details)
    data = plot_data(details)
    for key, rows in data.items():
        write_json(out_dir / "plots" / f"{key}.json", rows)
    figures = out_dir / "figures"
    name = primary_dataset(details)
    if name:
        systems = details["datasets"][name]["systems"]
        write_bytes_atomic(figures / "recall_at_k.png", curves_png(
            {s: (list(range(1, len(m["i2t"]["curve"]) + 1)), m["i2t"]["curve"]) for s, m in systems.items()},
            f"image -> report Recall@K ({name})", "K", "recall"))
        for s, m in systems.items():
            write_bytes_atomic(figures / f"roc_{s}.png", curves_png(
                {o: (p["fpr"], p["tpr"]) for o, p in m["roc"].items()}, f"zero-shot ROC: {s}", "FPR", "TPR",
                (0.0, 1.0), diagonal=True))
        groups: dict = {}
        for row in data["ablation"]:
            groups.setdefault(row["metric"], {})[row["system"]] = row["value"]
        write_bytes_atomic(figures / "ablation.png", bars_png(groups, "text-tower ablation"))
    write_bytes_atomic(out_dir / "report.md", report_markdown(details, cfg).encode("utf-8"))
    return {"metrics": metrics, "ablation": ablation_rows(details), "out": str(cfg.out),
            "figures": sorted(p.name for p in figures.glob("*.png")) if figures.exists() else []}
