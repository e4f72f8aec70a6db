"""The ranking protocol: rule judge, aggregates, judge agreement, human CSV round trip, and the LLM judge
against a real chat-completions server on 127.0.0.1 (malformed and slow replies included)."""

from __future__ import annotations

import csv
import json
import re
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from components.evaluation import ranking
from components.evaluation.judge import LLMJudge, load_ranking_prompt, parse_ranking
from components.evaluation.ranking import RankingItem

REFERENCE = "Small left pleural effusion. No pneumothorax."
# One mistake each, in radiologists' phrasing; the rubric orders them severity < location < omission < false.
CANDIDATES = {
    "severity": "Large left pleural effusion. No pneumothorax.",
    "location": "Small right pleural effusion. No pneumothorax.",
    "omission": "No acute cardiopulmonary process.",
    "false": "Small left pleural effusion. Small right pneumothorax.",
}


def test_rule_judge_applies_the_rubric_order():
    ranks = ranking.rule_judge([RankingItem("s1", REFERENCE, {**CANDIDATES, "exact": REFERENCE})])["s1"]
    assert ranks == {"exact": 1, "severity": 2, "location": 3, "omission": 4, "false": 5}
    from components.reports.labeler import label_report

    _, counts = ranking.rule_penalty(label_report(REFERENCE), label_report(CANDIDATES["false"]))
    assert counts == {"false_finding": 1, "omission": 0, "location": 0, "severity": 0}


def test_competition_ranks_share_ties():
    assert ranking.competition_ranks({"a": 3.0, "b": 1.0, "c": 3.0, "d": 7.0}) == {"a": 2, "b": 1, "c": 2, "d": 4}


def test_mean_rank_and_win_rate_by_hand():
    rankings = {"s1": {"x": 1, "y": 2}, "s2": {"x": 1, "y": 1}, "s3": {"x": 1, "y": 2}, "s4": {"x": 2}}
    agg = ranking.aggregate(rankings, ["x", "y"], resamples=300)
    assert agg["mean_rank"]["x"]["value"] == pytest.approx(5 / 4) and agg["mean_rank"]["x"]["n"] == 4
    assert agg["mean_rank"]["y"]["value"] == pytest.approx(5 / 3) and agg["mean_rank"]["y"]["n"] == 3
    win = agg["win_rate"]["x vs y"]
    assert win["value"] == pytest.approx(2.5 / 3) and win["n"] == 3  # s4 lacks y: not a comparison
    assert agg["win_rate"]["y vs x"]["value"] == pytest.approx(0.5 / 3)
    lo, hi = win["ci"]
    assert lo <= win["value"] <= hi


def test_agreement_between_judges_by_hand():
    a = {"s1": {"x": 1, "y": 2, "z": 3}, "s2": {"x": 1, "y": 1, "z": 1}}
    b = {"s1": {"x": 1, "y": 3, "z": 2}, "s2": {"x": 1, "y": 2, "z": 3}}
    agr = ranking.agreement(a, b, ["x", "y", "z"])
    assert agr["kendall_tau"] == pytest.approx(1 / 3) and agr["spearman"] == pytest.approx(0.5)
    assert (agr["n_studies"], agr["n_undefined"]) == (1, 1)
    assert ranking.agreement(a, a, ["x", "y", "z"])["kendall_tau"] == pytest.approx(1.0)


def test_human_csv_round_trip(tmp_path):
    items = [RankingItem(f"s{i}", REFERENCE, dict(CANDIDATES)) for i in range(4)]
    path = ranking.export_human_template(items, tmp_path / "human.csv", seed=5)
    rows = list(csv.DictReader(path.open(encoding="utf-8")))
    assert len(rows) == 16 and set(rows[0]) == set(ranking.HUMAN_COLUMNS)
    assert not any(r["rank"] for r in rows) and "severity" not in path.read_text()  # blinded
    truth = {"severity": 1, "location": 2, "omission": 3, "false": 3}
    text_of = {t: s for s, t in CANDIDATES.items()}
    for r in rows:  # a rater fills s0 and s1 properly, s2 with a bad rank, leaves s3 empty
        system = text_of[r["candidate_report"]]
        r["rank"] = {"s0": str(truth[system]), "s1": str(truth[system]),
                     "s2": "0" if system == "false" else "1"}.get(r["study_id"], "")
    rows.append({"study_id": "s9", "candidate": "A", "reference_report": "", "candidate_report": "", "rank": "1"})
    with (tmp_path / "filled.csv").open("w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=ranking.HUMAN_COLUMNS)
        writer.writeheader()
        writer.writerows(rows)
    rankings, problems = ranking.import_human_rankings(tmp_path / "filled.csv", items, seed=5)
    assert rankings == {"s0": truth, "s1": truth}
    reasons = {p["study_id"]: p["reason"] for p in problems}
    assert reasons["s9"] == "unknown_study_or_candidate" and reasons["s3"] == "unrated"
    assert reasons["s2"].startswith("rank_not_1_to_4")
    with pytest.raises(ValueError, match="missing columns"):
        (tmp_path / "bad.csv").write_text("a,b\n1,2\n")
        ranking.import_human_rankings(tmp_path / "bad.csv", items)


def test_parse_ranking_rejects_malformed_replies():
    assert parse_ranking('<think>hm</think>```json\n{"ranks": {"a": 1, "B": 2}}\n```', ["A", "B"]) == (
        {"A": 1, "B": 2}, None)
    assert parse_ranking("A is best", ["A", "B"]) == (None, "no_json")
    assert parse_ranking('{"ranks": {"A": 1}', ["A", "B"]) == (None, "bad_json")
    assert parse_ranking('{"ranks": {"A": 1, "B": 2, }}', ["A", "B"]) == (None, "bad_json")
    assert parse_ranking('{"ranks": {"A": 1, "C": 2}}', ["A", "B"]) == (None, "wrong_candidates")
    assert parse_ranking('{"ranks": {"A": 1, "B": 3}}', ["A", "B"]) == (None, "rank_out_of_range")
    assert parse_ranking('{"ranks": {"A": 1, "B": "first"}}', ["A", "B"]) == (None, "rank_out_of_range")
    assert parse_ranking('{"ranks": [1, 2]}', ["A", "B"]) == (None, "no_ranks")


class _Judge(BaseHTTPRequestHandler):
    """A chat-completions server that ranks by the rubric's cue words, with scripted misbehaviour:
    study `garbled` always answers prose, `flaky` answers bad JSON on the first attempt (seed 0),
    `slow` sleeps past the client's timeout."""

    calls: list = []

    def log_message(self, *args):
        pass

    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        user = body["messages"][1]["content"]
        named = re.search(r"study (\w+)", user)  # scripted studies; any other report is ranked by the cues
        study = named.group(1) if named else "any"
        type(self).calls.append((study, body["seed"]))
        blocks = dict(re.findall(r'([A-Z]):\n"""\n(.*?)\n"""', user, re.S))
        rank_of = {"Large": 1, "right pleural": 2, "No acute": 3, "right pneumothorax": 4}
        ranks = {k: min([r for cue, r in rank_of.items() if cue in v] or [1]) for k, v in blocks.items()}
        content = json.dumps({"ranks": ranks})
        if study == "garbled":
            content = "The best candidate is A."
        elif study == "flaky" and body["seed"] == 0:
            content = content[:-1]
        elif study == "slow":
            time.sleep(1.5)
        payload = json.dumps({"choices": [{"message": {"role": "assistant", "content": content},
                                           "finish_reason": "stop"}]}).encode()
        try:
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)
        except (BrokenPipeError, ConnectionResetError):
            pass


@pytest.fixture()
def judge_server():
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Judge)
    _Judge.calls = []
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/v1"
    server.shutdown()
    server.server_close()


def test_llm_judge_over_http(judge_server):
    items = [RankingItem(s, f"{REFERENCE} (study {s})", dict(CANDIDATES))
             for s in ("good", "flaky", "garbled", "slow")]
    judge = LLMJudge(judge_server, "judge-model", malformed_retries=2, timeout_s=0.5, max_attempts=2, backoff_s=0.01)
    rankings, counts = judge.rank(items)
    expected = {"severity": 1, "location": 2, "omission": 3, "false": 4}
    assert rankings == {"good": expected, "flaky": expected}
    assert counts["malformed"] == {"bad_json": 1, "no_json": 3}
    assert counts["unranked"] == {"malformed": 1, "timeout": 1}
    assert counts["ranked"] == 2 and counts["requests"] == 4 + 2 + 1 and counts["prompt_version"] == "ranking_v1"
    assert sorted(seed for study, seed in _Judge.calls if study == "garbled") == [0, 1, 2]  # new seed per retry
    assert sorted(seed for study, seed in _Judge.calls if study == "slow") == [0, 0]  # transport retry only


def test_ranking_prompt_is_versioned():
    prompt = load_ranking_prompt("ranking_v1")
    item = RankingItem("s", "REF {x}", {"a": "one", "b": "two"})
    user = prompt.messages(item, item.blinded())[1]["content"]
    assert "REF {x}" in user and '"ranks"' in user and "A, B" in user
    with pytest.raises(FileNotFoundError, match="ranking_v1"):
        load_ranking_prompt("ranking_v0")
