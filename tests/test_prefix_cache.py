"""Prefix caching told truthfully. The simulator caches prompt blocks as vLLM does and says so
in its usage and its /metrics; the random dataset sends every request a prompt of its own (it
used to cycle a pool of 1,000, so that a run of 5,000 requests hit the cache four times in
five); shared prefixes are exactly what was asked for; a workload that re-sends prompts says so.
"""

from __future__ import annotations

import json

import pytest

from tests.conftest import perfbench, rows

DETAILS = "--enable-prompt-tokens-details"  # usage says how many prompt tokens were cached
PREFILL = ("--ttft-ms", "5", "--prefill-us-per-token", "200", "--itl-ms", "1",
           "--itl-ms-per-seq", "0", "--seed", "54")  # fmt: skip


def _run(url: str, db, *args: str) -> dict:
    done = perfbench("perf", "--url", url, "--db", str(db), "--json", *args)
    assert done.returncode == 0, done.stderr
    (summary,) = json.loads(done.stdout)["runs"]
    return summary


def test_random_prompts_are_unique_per_request_even_past_the_pool(sim, tmp_path):
    """1,100 requests, more than the 1,000 prompt bodies, hit the cache nowhere; the old pool
    (--reuse-prompts) sends 100 prompts again, and those 100 are full cache hits."""
    url = sim("--preset", "instant", "--seed", "41", DETAILS)  # a simulator (and cache) of its own
    args = ("--dataset", "random", "--input-len", "64", "--output-len", "4",
            "--number", "1100", "--parallel", "16")  # fmt: skip
    fresh = _run(url, tmp_path / "u.db", *args)
    assert fresh["prefix_cache"]["requests_with_hits"] == 0
    assert fresh["prefix_cache"]["hit_pct"] == 0.0 and not fresh["resent"]
    assert not any("already sent" in w for w in fresh["warnings"])
    again = _run(url, tmp_path / "u.db", *args)  # a second run: new heads, still no hits
    assert again["prefix_cache"]["requests_with_hits"] == 0
    old = _run(url, tmp_path / "r.db", *args, "--reuse-prompts")
    assert old["resent"] == {"requests": 1100, "prompts": 1000, "resent": 100}
    assert any("100 of 1100 requests sent a prompt" in w for w in old["warnings"])
    # the runs above left their prompts cached, but their heads make them no one else's:
    # only this run's own repeats hit
    hits = rows(tmp_path / "r.db", "SELECT idx, cached_tokens, prompt_tokens FROM requests "
                "WHERE cached_tokens > 0 ORDER BY idx")  # fmt: skip
    assert [i for i, _, _ in hits] == list(range(1000, 1100))


def test_shared_prefixes_are_exactly_what_was_asked(sim, tmp_path):
    """--prefix-len P shared by all, then each request its own: the cached share is the
    prefix's (to the sim's 16-token blocks); with 4 groups, each group's first request misses."""
    url = sim("--preset", "instant", "--seed", "51", DETAILS)
    one = _run(url, tmp_path / "p.db", "--dataset", "random", "--input-len", "256",
               "--prefix-len", "256", "--output-len", "4", "--number", "200", "--parallel", "1")  # fmt: skip
    assert one["shared_prefix"] == {"tokens": 256, "of": 512, "share_pct": 50.0, "groups": 1}
    cache = one["prefix_cache"]
    assert cache["requests_with_hits"] == 199  # all but the first
    cached = rows(
        tmp_path / "p.db", "SELECT cached_tokens, prompt_tokens FROM requests WHERE idx > 0"
    )
    # the sim counts a token per 4 characters: the prefix's text, cut to whole 16-token blocks
    assert len({c for c, _ in cached}) == 1
    share = cached[0][0] / (sum(p for _, p in cached) / len(cached))
    assert 0.40 <= share <= 0.52
    fresh = sim(
        "--preset", "instant", "--seed", "52", DETAILS
    )  # the first run's prefix is cached there
    groups = _run(fresh, tmp_path / "g.db", "--dataset", "random", "--input-len", "256",
                  "--prefix-len", "256", "--prefix-groups", "4", "--output-len", "4",
                  "--number", "200", "--parallel", "1")  # fmt: skip
    assert groups["prefix_cache"]["requests_with_hits"] == 196
    assert groups["shared_prefix"]["groups"] == 4


def test_the_cache_shows_in_ttft_and_in_the_servers_metrics(sim, tmp_path):
    """200 µs of prefill per uncached token: a re-sent 1,024-token prompt starts about 200 ms
    sooner; the server's /metrics counters give the same hit rate as the usage."""
    url = sim(*PREFILL, DETAILS)
    path = tmp_path / "one.jsonl"
    path.write_text(json.dumps({"prompt": "word " * 800}) + "\n")
    s = _run(url, tmp_path / "t.db", "--dataset", "jsonl", "--dataset-path", str(path),
             "--number", "5", "--parallel", "1", "--max-tokens", "4")  # fmt: skip
    ttft = [t for (t,) in rows(tmp_path / "t.db", "SELECT ttft_ms FROM requests ORDER BY idx")]
    assert ttft[0] >= 200 and all(t < ttft[0] - 150 for t in ttft[1:]), ttft
    assert s["resent"]["resent"] == 4
    server = s["server"]
    assert server["available"] and server["prefix_cache_hit_pct"] == pytest.approx(
        s["prefix_cache"]["hit_pct"], abs=0.01
    )
    off = sim(*PREFILL[:-2], "--seed", "53", "--no-prefix-caching", DETAILS)
    t = _run(off, tmp_path / "o.db", "--dataset", "jsonl", "--dataset-path", str(path),
             "--number", "3", "--parallel", "1", "--max-tokens", "4")  # fmt: skip
    assert not t["prefix_cache"] and "prefix_cache_hit_pct" not in t["server"]


def test_bad_prefix_flags_are_one_line(tmp_path):
    for args, says in [(["--prefix-groups", "0"], "--prefix-groups must be"),
                       (["--prefix-groups", "3"], "needs --prefix-len")]:  # fmt: skip
        done = perfbench("perf", "--dataset", "random", *args, "--db", str(tmp_path / "x.db"))
        assert done.returncode == 2 and done.stderr.count("\n") == 1 and says in done.stderr
        assert not (tmp_path / "x.db").exists()
