"""Conversations run as sessions: each turn sent after the answer to the last (plus the think
time), with the whole history and the model's own answers, as a chat client sends them. Before,
`sharegpt` sent only each conversation's first turn and nothing had a second turn at all.
"""

from __future__ import annotations

import json
import math
import signal
from collections import defaultdict

import pytest

from tests.conftest import perfbench, rows, start_perfbench, wait_for

INSTANT = ("--preset", "instant")
DETAILS = "--enable-prompt-tokens-details"
PREFILL = ("--ttft-ms", "5", "--prefill-us-per-token", "200", "--itl-ms", "1",
           "--itl-ms-per-seq", "0")  # fmt: skip

# two recorded conversations: the replies are long, the sim's answers are not, so a history
# carrying the recorded reply instead of the model's own answer would count differently
QUESTIONS = [
    ["What is a prefix cache, in one paragraph?", "And how does it evict?", "Thanks. Why LRU?"],
    ["Name a river.", "How long is it?", "Which sea does it reach?"],
]


def _sharegpt(path, extra=()):
    convs = []
    for k, questions in enumerate(QUESTIONS):
        turns = []
        for q in questions:
            turns += [{"from": "human", "value": q}, {"from": "gpt", "value": "recorded " * 40}]
        convs.append({"id": f"c{k}", "conversations": turns})
    convs.extend(extra)
    path.write_text(json.dumps(convs))
    return path


def _perf(url, db, *args):
    done = perfbench("perf", "--url", url, "--db", str(db), "--json", *args)
    assert done.returncode == 0, done.stderr
    (summary,) = json.loads(done.stdout)["runs"]
    return summary


def _by_session(db, columns):
    out = defaultdict(list)
    for row in rows(db, f"SELECT session, turn, {columns} FROM requests ORDER BY idx"):
        out[row[0]].append(row[1:])
    return out


def test_each_turn_carries_the_history_with_the_models_own_answers(sim, tmp_path):
    """The server's prompt count for turn t is the sim's count (4 characters a token) of every
    earlier question, every earlier answer the model gave (from the database) and the new
    question: the history is what a chat client would send."""
    path = _sharegpt(tmp_path / "conv.json")
    db = tmp_path / "s.db"
    s = _perf(sim(*INSTANT, "--seed", "71", DETAILS), db, "--dataset", "sharegpt",
              "--dataset-path", str(path), "--multi-turn", "--parallel", "1",
              "--number", "2")  # fmt: skip
    sessions = _by_session(db, "prompt_id, prompt_tokens, output_text, status, cached_tokens")
    assert sorted(sessions) == [0, 1]
    for number, turns in sessions.items():
        questions = QUESTIONS[number]
        assert [t[0] for t in turns] == [1, 2, 3] and {t[1] for t in turns} == {f"c{number}"}
        history = before = ""  # as the sim's prefix cache reads a chat: <role>content, ...
        for t, (_, _, prompt_tokens, answer, status, cached) in enumerate(turns):
            assert status == "ok"
            chars = sum(len(q) for q in questions[: t + 1])
            chars += sum(len(turns[k][3]) for k in range(t))  # the model's own answers
            assert prompt_tokens == math.ceil(chars / 4), (number, t)
            # the turn before's prompt starts this one, so its whole 64-character blocks are
            # cache hits: only the history in its order, answers included, gives this count
            assert cached == min(len(before) // 64 * 16, prompt_tokens - 1), (number, t)
            before = history + f"<user>{questions[t]}"
            history = before + f"<assistant>{answer}"
    assert all(turns[2][5] > 0 for turns in sessions.values())  # the check above had hits
    assert s["sessions"]["started"] == s["sessions"]["completed"] == 2
    assert [row["turn"] for row in s["turns"]] == ["1", "2", "3"]
    assert s["turns"][2]["mean_prompt_tokens"] > s["turns"][0]["mean_prompt_tokens"]
    assert not s["resent"]  # three rows of one conversation are one session, not repeats


def test_think_time_and_sessions_in_parallel(sim, tmp_path):
    """Each later turn is planned exactly --think-time after the answer before it ended; a
    closed loop of 2 has at most 2 requests (2 sessions) in flight; session latency is from
    the first send to the last end."""
    db = tmp_path / "t.db"
    s = _perf(sim(*INSTANT, "--seed", "72"), db, "--dataset", "random", "--turns", "3",
              "--input-len", "32", "--output-len", "4", "--think-time", "0.2",
              "--parallel", "2", "--number", "4")  # fmt: skip
    sessions = _by_session(db, "intended_ns, sent_ns, end_ns, status")
    assert len(sessions) == 4 and all(len(t) == 3 for t in sessions.values())
    latencies = []
    for turns in sessions.values():
        for before, after in zip(turns, turns[1:]):
            assert after[1] - before[3] == 200_000_000  # the plan: the answer's end + 0.2 s
            assert after[2] - before[3] >= 199_000_000  # and it waited for it
        latencies.append((turns[-1][3] - turns[0][2]) / 1e6)
    events = [(sent, 1) for sent, _ in rows(db, "SELECT sent_ns, end_ns FROM requests")]
    events += [(end, -1) for (end,) in rows(db, "SELECT end_ns FROM requests")]
    in_flight = peak = 0
    for _, step in sorted(events):  # an end before a send at the same stamp
        in_flight += step
        peak = max(peak, in_flight)
    assert peak == 2
    got = s["sessions"]["latency_ms"]
    assert got["n"] == 4
    assert got["p50"] == pytest.approx(sum(sorted(latencies)[1:3]) / 2, abs=1e-6)
    assert all(x >= 400 for x in latencies)  # two think times at least
    assert s["sessions"]["think_time_s"] == 0.2
    report = perfbench("report", "--db", str(db)).stdout
    assert "closed loop, 2 sessions in parallel" in report and "By turn" in report


def test_the_open_loop_rate_counts_session_starts(sim, tmp_path):
    db = tmp_path / "o.db"
    s = _perf(sim(*INSTANT, "--seed", "73"), db, "--dataset", "random", "--turns", "2",
              "--input-len", "32", "--output-len", "4", "--rate", "20", "--arrival",
              "constant", "--number", "6")  # fmt: skip
    sessions = _by_session(db, "intended_ns, end_ns")
    starts = [sessions[k][0][1] for k in sorted(sessions)]
    assert [b - a for a, b in zip(starts, starts[1:])] == [50_000_000] * 5  # 20 sessions/s
    for turns in sessions.values():
        assert turns[1][1] == turns[0][2]  # the second turn: planned at the first one's end
    assert s["scheduled"] == 12 and s["sessions"]["started"] == 6


def test_a_failed_turn_ends_its_session(sim, tmp_path):
    """HTTP 500 on 30% of requests: a session's rows stop at its first failed turn (the later
    turns, which need its answer, are never sent) and the summary counts those sessions."""
    db = tmp_path / "f.db"
    s = _perf(sim(*INSTANT, "--seed", "74", "--error-rate", "0.3"), db, "--dataset", "random",
              "--turns", "4", "--input-len", "16", "--output-len", "2", "--parallel", "4",
              "--number", "30", "--max-error-rate", "1")  # fmt: skip
    sessions = _by_session(db, "status")
    failed = ended_early = 0
    for turns in sessions.values():
        statuses = [t[1] for t in turns]
        assert [t[0] for t in turns] == list(range(1, len(turns) + 1))
        assert all(x == "ok" for x in statuses[:-1])
        if statuses[-1] != "ok":
            failed += 1
            ended_early += len(turns) < 4
        else:
            assert len(turns) == 4
    assert failed > 0 and ended_early > 0  # seeded: 30% of ~100 requests
    assert s["sessions"]["with_failed_turn"] == failed
    assert s["sessions"]["completed"] == 30 - failed
    (health,) = rows(db, "SELECT health FROM runs")
    assert json.loads(health[0])["sessions"] == {
        "started": 30,
        "ended_by_a_failed_turn": ended_early,
    }


def test_later_turns_find_their_history_in_the_prefix_cache(sim, tmp_path):
    """200 µs of prefill per uncached token: with the sim's prefix cache a third turn
    prefills only its new tokens, so it starts far sooner than with the cache off."""
    args = ("--dataset", "random", "--turns", "3", "--input-len", "400", "--output-len", "8",
            "--parallel", "1", "--number", "8")  # fmt: skip
    on = _perf(sim(*PREFILL, "--seed", "75", DETAILS), tmp_path / "on.db", *args)
    off = _perf(sim(*PREFILL, "--seed", "76", DETAILS, "--no-prefix-caching"),
                tmp_path / "off.db", *args)  # fmt: skip
    first, _, third = on["turns"]
    assert first["cached_pct"] == 0.0 and third["cached_pct"] > 60
    assert off["turns"][2]["cached_pct"] in (None, 0.0)  # None: the server told no hits
    # the third turn holds about 816 tokens; the cache spares the earlier 408 (about 80 ms)
    assert off["turns"][2]["ttft_ms"]["p50"] - third["ttft_ms"]["p50"] > 50


def test_recorded_conversations_keep_their_turns_up_to_a_break(tmp_path):
    from perfbench.config import WorkloadSpec
    from perfbench.workload import load_prompts

    extra = [
        {"id": "open", "conversations": [{"from": "human", "value": "Hi"},
                                         {"from": "gpt", "value": "Hello there"},
                                         {"from": "human", "value": "unanswered"}]},
        {"id": "broken", "conversations": [{"from": "human", "value": "a"},
                                           {"from": "gpt", "value": "b"},
                                           {"from": "gpt", "value": "c"},
                                           {"from": "human", "value": "d"}]},
    ]  # fmt: skip
    path = _sharegpt(tmp_path / "c.json", extra)
    spec = WorkloadSpec(dataset="sharegpt", dataset_path=str(path), multi_turn=True)
    got = {p.id: p for p in load_prompts(spec)}
    assert [1 + len(got[k].followups) for k in ("c0", "c1", "open", "broken")] == [3, 3, 1, 1]
    assert got["c0"].followups[0].content == "And how does it evict?"
    assert got["c0"].followups[0].max_tokens == math.ceil(len("recorded " * 40) / 4)
    capped = load_prompts(WorkloadSpec(dataset="sharegpt", dataset_path=str(path), turns=2))
    assert max(1 + len(p.followups) for p in capped) == 2
    single = load_prompts(WorkloadSpec(dataset="sharegpt", dataset_path=str(path)))
    assert all(not p.followups for p in single)  # without --multi-turn: first turns, as before


def _stopped(args, db, after_rows):
    """Run perfbench perf in the background and SIGINT it once ``after_rows`` rows exist."""
    proc = start_perfbench("perf", "--db", str(db), "--quiet", *args)
    try:
        wait_for(db, "SELECT count(*) FROM requests WHERE status != 'in_flight'", after_rows)
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, err
    (scheduled, recorded, status) = rows(db, "SELECT scheduled, recorded, status FROM runs")[0]
    assert scheduled == recorded and status == "interrupted"
    report = perfbench("report", "--db", str(db), "--json")
    (summary,) = json.loads(report.stdout)["runs"]
    return summary


def test_sessions_the_stop_cuts_short_are_not_completed(sim, tmp_path):
    """Ctrl-C while sessions think between turns: every request started has its row; the
    sessions it cut are counted apart, not as completed, and not in the session latency."""
    db = tmp_path / "c.db"
    url = sim(*INSTANT, "--seed", "77")
    s = _stopped(("--url", url, "--dataset", "random", "--turns", "4", "--input-len", "16",
                  "--output-len", "2", "--think-time", "0.5", "--parallel", "2",
                  "--number", "40"), db, 4)  # fmt: skip
    sessions = _by_session(db, "status")
    whole = sum(len(t) == 4 and all(x[1] == "ok" for x in t) for t in sessions.values())
    assert whole < len(sessions)  # the stop came mid-session
    got = s["sessions"]
    assert got["completed"] == whole == got["latency_ms"]["n"]
    assert got["cut_short"] == len(sessions) - whole and got["with_failed_turn"] == 0


def test_a_full_cap_holds_session_starts_back(sim, tmp_path):
    """--rate 50 with --max-concurrency 1 against 0.2 s answers: the planner waits for the
    cap before it starts a session, so a stop finds one request waiting or in flight, not a
    pile of sessions that had started and queued (the first version started every session on
    time and parked it on the cap: about 90 rows cancelled at a stop after 2 s)."""
    db = tmp_path / "cap.db"
    url = sim("--ttft-ms", "5", "--itl-ms", "20", "--itl-ms-per-seq", "0", "--seed", "78")
    s = _stopped(("--url", url, "--dataset", "random", "--turns", "2", "--input-len", "16",
                  "--output-len", "10", "--rate", "50", "--max-concurrency", "1",
                  "--number", "500"), db, 6)  # fmt: skip
    statuses = [x for (x,) in rows(db, "SELECT status FROM requests")]
    assert statuses.count("cancelled") <= 2 and statuses.count("ok") >= 6
    lag = rows(db, "SELECT max(schedule_lag_ms) FROM requests WHERE turn = 1")[0][0]
    assert lag > 100  # the starts waited, and their lag says so
    assert s["sessions"]["started"] == len(_by_session(db, "status"))


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["--dataset", "random", "--turns", "0"], "--turns 0: a conversation has at least 1"),
        (["--dataset", "openqa", "--multi-turn"], "--dataset openqa has no conversations"),
        (["--dataset", "random", "--multi-turn"], "give --turns"),
        (["--dataset", "random", "--turns", "2", "--workers", "2"], "drop --workers"),
        (["--dataset", "random", "--turns", "2", "--think-time", "-1"], "--think-time -1.0"),
        (["--dataset", "random", "--think-time", "2"], "add --multi-turn"),
        (["--dataset", "random", "--trace-block-size", "64"], "give --trace FILE"),
    ],
)
def test_bad_conversation_flags_are_one_line(tmp_path, args, says):
    done = perfbench("perf", *args, "--db", str(tmp_path / "x.db"))
    assert done.returncode == 2 and done.stderr.count("\n") == 1, done.stderr
    assert says in done.stderr
    assert not (tmp_path / "x.db").exists()


def test_a_conversation_file_without_replies_is_one_line(tmp_path):
    path = tmp_path / "q.json"
    path.write_text(json.dumps([{"conversations": [{"from": "human", "value": "hello?"}]}]))
    done = perfbench("perf", "--dataset", "sharegpt", "--dataset-path", str(path),
                     "--multi-turn", "--db", str(tmp_path / "x.db"))  # fmt: skip
    assert done.returncode == 2 and done.stderr.count("\n") == 1, done.stderr
    assert "no conversation has a human turn followed by a reply" in done.stderr
    assert not (tmp_path / "x.db").exists()


def test_compare_refuses_a_conversation_against_single_requests(sim, tmp_path):
    db = tmp_path / "c.db"
    url = sim(*INSTANT, "--seed", "79")
    common = ("--dataset", "random", "--input-len", "16", "--output-len", "2", "--parallel", "2",
              "--number", "10")  # fmt: skip
    _perf(url, db, *common)
    _perf(url, db, *common, "--turns", "2")
    done = perfbench("compare", "1", "2", "--db", str(db))
    assert done.returncode == 2 and done.stderr.count("\n") == 1, done.stderr
    assert "--turns" in done.stderr and "--multi-turn" not in done.stderr
