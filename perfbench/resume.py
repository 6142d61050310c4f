"""``perf --resume RUN``: finish a run that was interrupted, killed or stopped, in place.

A resumed run sends, into the same run, only the planned measured requests that have no
``ok`` row (never sent, in flight at a kill, cancelled, failed), each with its own index and so
its own prompt and sample, as the first attempt would have. Each request's earlier row is kept
in ``resent`` and replaced in ``requests`` by the new attempt, so that every figure and every
grade sees one row per planned request. The warm-up is sent again, after the run's last index.
docs/faults.md tells users the rules.

Times: on the same boot of the same machine the monotonic clock is shared, so the resumed
segment keeps the run's ``t0_ns`` and its times are true; elsewhere the segment is placed 1 s
after the run's last stamp (``clock: "shifted"``). Either way the figures add up each segment's
own window, so the time between the stop and the resume counts for no throughput.
"""

from __future__ import annotations

import socket
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from perfbench.config import LoadSpec
from perfbench.errors import ConfigError, StoreError
from perfbench.store.runs import Run, Store, boot_id, now_iso

#: statuses a run can be resumed from; ``killed`` is a ``running`` row whose process is gone
RESUMABLE = ("interrupted", "killed", "failed")


@dataclass(frozen=True)
class Resume:
    """What a resumed run sends, and where its times go."""

    run: Run
    todo: np.ndarray  # the measured indices to send again, in order
    warm_start: int  # the first index of the warm-up sent again
    number: int  # this resume's number, from 1
    same_clock: bool  # this process's monotonic clock is the run's

    def t0(self, store: Store, now_ns: int) -> int:
        """The run's ``t0_ns`` on this process's clock."""
        if self.same_clock and self.run.t0_ns is not None:
            return self.run.t0_ns
        return now_ns - (store.last_end_ns(self.run.id) + 1_000_000_000)

    def entry(self, at_ns: int, set_aside: dict[str, int]) -> dict[str, Any]:
        """This resume, as kept in ``runs.health.resumes``."""
        return {
            "resume": self.number,
            "started_at": now_iso(),
            "at_ns": at_ns,
            "resent": int(self.todo.size),
            "set_aside": set_aside,
            "clock": "same" if self.same_clock else "shifted",
        }


def claim(store: Store, run: Run) -> Any:
    """Take ``run`` (checked by :func:`check`) for this process: marked running, this process
    its owner, in one conditional write, so that two resumes of one run cannot both go ahead.
    The token :meth:`Store.release` needs to give it back; one line (StoreError) if another
    process took it first."""
    token = store.claim(run.id)
    if token is None:
        raise StoreError(f"run {run.id} was just taken by another process: it is being resumed")
    return token


def check(store: Store, run_id: int) -> Run:
    """The run to resume, or one line (StoreError, exit 2) saying why it cannot be."""
    run = store.run(run_id)
    if run.status == "running":
        who = run.owner
        raise StoreError(
            f"run {run_id} is still running (pid {who.get('pid', '?')} on "
            f"{who.get('host', '?')}): stop it first (Ctrl-C), then resume it"
        )
    if run.status == "completed":
        raise StoreError(
            f"run {run_id} completed: nothing to resume (`perfbench report {run_id}` shows it)"
        )
    if run.status not in RESUMABLE:
        raise StoreError(f"run {run_id} is {run.status}: only {', '.join(RESUMABLE)} runs resume")
    return run


def differences(run: Run, load: LoadSpec) -> list[str]:
    """The load fields in which ``load`` (its number resolved) is not the run's."""
    mine = {k: v for k, v in asdict(load).items() if v is not None}
    theirs = {k: v for k, v in asdict(run.load).items() if v is not None and k != "planned"}
    return sorted(k for k in mine.keys() | theirs.keys() if mine.get(k) != theirs.get(k))


def refuse_load(run: Run, differ: list[str]) -> ConfigError:
    return ConfigError(
        f"run {run.id} was not made with this load ({', '.join(differ)} differ): resume it "
        "with its own flags (`perfbench perf --resume ID` reads them from the run)"
    )


def plan(
    store: Store, run: Run, load: LoadSpec, planned: int | None, prompt_ids: set[str]
) -> Resume:
    """The requests ``run`` still lacks, for ``load`` (the run's own, with its number resolved)
    over prompts with ``prompt_ids``; ConfigError when this load or these prompts are not the
    run's."""
    stored = run.load
    differ = differences(run, load)
    if differ:
        raise refuse_load(run, differ)
    if stored.trace or stored.ramp_from is not None:
        what = "replays a trace" if stored.trace else "ramps its rate"
        raise ConfigError(
            f"run {run.id} {what}, and its arrival times are the measurement: it cannot be "
            "resumed; run it again"
        )
    if planned is None or stored.planned is None:
        raise ConfigError(
            f"run {run.id} was bounded by --duration, not a number of requests: it has no "
            "list of requests left to send; start a new run"
        )
    if planned != stored.planned:
        raise ConfigError(
            f"run {run.id} planned {stored.planned} requests and this plan has {planned}: "
            "resume it with its own flags"
        )
    if prompt_ids != store.prompt_ids(run.id):
        raise ConfigError(
            f"the prompts of run {run.id} cannot be rebuilt as they were (has its dataset "
            "file changed?): it cannot be resumed"
        )
    todo = store.unfinished(run.id, load.warmup, planned)
    if not todo.size:
        raise StoreError(
            f"run {run.id} has an ok row for each of its {planned} planned requests: nothing "
            "to resume"
        )
    who = run.owner
    same = who.get("host") == socket.gethostname() and who.get("boot") is not None
    same = same and who.get("boot") == boot_id()
    return Resume(
        run,
        todo,
        # after every index the run has or plans: the warm-up's rows must not be replaced
        warm_start=max(store.last_index(run.id) + 1, load.warmup + planned),
        number=len(run.health.get("resumes", [])) + 1,
        same_clock=same,
    )


def merged_health(
    old: dict[str, Any], new: dict[str, Any], entry: dict[str, Any]
) -> dict[str, Any]:
    """A resumed run's health: the latest segment's figures, the earlier gaps and stops kept,
    and every resume listed."""
    out: dict[str, Any] = {**old, **new}
    gaps = [*(old.get("server_gaps") or []), *(new.get("server_gaps") or [])]
    if gaps:
        out["server_gaps"] = gaps
    skipped = int(old.get("skipped") or 0) + int(new.get("skipped") or 0)
    if skipped:
        out["skipped"] = skipped
    if "stopped" not in new:
        out.pop("stopped", None)  # what stopped the run before is what this resume mends
    if old.get("stopped"):
        entry = {**entry, "after": old["stopped"]}
    out["resumes"] = [*(old.get("resumes") or []), entry]
    return out
