"""Figures of a run of conversations: per session, and per turn.

A **session** is one conversation sent as a chat client sends it (``perfbench/execute.py``,
``Sessions``). Its **latency** is from its first turn's send to its last turn's end: the user's
wait for the whole conversation, the think time between turns included (the run's
``think_time`` says how much of it that is: (turns − 1) × think time). It is reported over
**completed** sessions, whose every turn succeeded; a session with a failed turn ended there,
its later turns never sent; one the run's stop (Ctrl-C, a server gone) cut short is
counted apart, and neither is in the latency.

**Per turn**, the successful requests of each turn number: how many, their mean prompt tokens
(the history grows with each turn: earlier questions and the model's answers), TTFT and E2E
percentiles, and the share of their prompt tokens the server took from its prefix cache where
its usage says so. Turn 1 against later turns is where prefix caching shows: a later turn's
history is the previous request's prompt and answer, so an engine that caches it prefills only
the new question. Turns past 4 are grouped in powers of two (5–8, 9–16, ...) so that long
conversations stay readable.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from perfbench.metrics.percentiles import exact

#: the percentiles the per-turn and session figures report
TURN_PERCENTILES = (50.0, 90.0, 99.0)


def _groups(turns: np.ndarray) -> list[tuple[str, int, int]]:
    """(label, first, last) turn groups present: 1, 2, 3, 4, then 5–8, 9–16, ..."""
    top = int(np.nanmax(turns)) if turns.size else 0
    out = [(str(t), t, t) for t in range(1, min(top, 4) + 1)]
    low = 5
    while low <= top:
        high = 2 * low - 2
        out.append((f"{low}–{high}", low, high))
        low = high + 1
    return out


def _pcts(values: np.ndarray) -> dict[str, float]:
    got = exact(values[~np.isnan(values)], TURN_PERCENTILES)
    return {f"p{p:g}": v for p, v in zip(TURN_PERCENTILES, got, strict=True)}


def turn_figures(cols: dict[str, np.ndarray], ok: np.ndarray) -> list[dict[str, Any]]:
    """One row per turn group: requests, ok, mean prompt tokens, TTFT and E2E percentiles,
    and the prefix cache's share of prompt tokens (NaN where the server did not say)."""
    turns = cols["turn"]
    rows = []
    for label, first, last in _groups(turns[~np.isnan(turns)]):
        mine = (turns >= first) & (turns <= last)
        good = mine & ok
        if not mine.any():
            continue
        prompt = cols["prompt_tokens"][good]
        cached = cols["cached_tokens"][good]
        told = ~np.isnan(cached)
        rows.append(
            {
                "turn": label,
                "requests": int(mine.sum()),
                "ok": int(good.sum()),
                "mean_prompt_tokens": float(np.nanmean(prompt)) if good.any() else math.nan,
                "ttft_ms": _pcts(cols["ttft_ms"][good]),
                "e2e_ms": _pcts(cols["e2e_ms"][good]),
                "cached_pct": 100 * float(cached[told].sum() / prompt[told].sum())
                if told.any() and prompt[told].sum() > 0
                else math.nan,
            }
        )
    return rows


def session_figures(
    cols: dict[str, np.ndarray], ok: np.ndarray, think_time: float
) -> dict[str, Any]:
    """Measured sessions: completed (every turn of the conversation sent and ok), with a
    failed turn, or cut short by the run's stop (a cancelled turn, or fewer turns sent than the
    conversation has, all ok); turns per session; latency of the completed ones (ms)."""
    session = cols["session"]
    has = ~np.isnan(session)
    if not has.any():
        return {}
    ids = session[has].astype(np.int64)
    order = np.argsort(ids, kind="stable")
    ids = ids[order]
    sent, end, good = cols["sent_ns"][has][order], cols["end_ns"][has][order], ok[has][order]
    cancelled = (cols["status"][has][order] == "cancelled").astype(np.int8)
    starts = np.flatnonzero(np.r_[True, ids[1:] != ids[:-1]])
    count = np.diff(np.r_[starts, ids.size])
    whole = np.fmax.reduceat(cols["turns"][has][order], starts)  # the conversation's turns
    all_ok = np.minimum.reduceat(good.astype(np.int8), starts).astype(bool)
    stopped = np.maximum.reduceat(cancelled, starts).astype(bool)
    completed = all_ok & (count >= whole)
    cut = stopped | (all_ok & (count < whole))
    first = np.fmin.reduceat(sent, starts)
    last = np.fmax.reduceat(end, starts)
    latency = (last - first)[completed] / 1e6
    return {
        "started": int(starts.size),
        "completed": int(completed.sum()),
        "with_failed_turn": int((~all_ok & ~stopped).sum()),
        "cut_short": int(cut.sum()),
        "mean_turns": float(count.mean()),
        "think_time_s": think_time,
        "latency_ms": {
            "n": int(latency.size),
            "mean": float(latency.mean()) if latency.size else math.nan,
            **_pcts(latency),
        },  # fmt: skip
    }
