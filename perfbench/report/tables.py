"""The report as rich tables: a summary and a percentile table per run, warnings last.

The layout follows what ``evalscope perf`` users know (a key/value summary, then percentiles as
rows and metrics as columns); times are in milliseconds throughout.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from rich import box
from rich.console import Console, Group, RenderableType
from rich.markup import escape
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from perfbench.metrics.percentiles import PERCENTILES, min_samples
from perfbench.metrics.summary import DISTRIBUTIONS, OPEN_LOOP_DISTRIBUTIONS, Summary
from perfbench.store.runs import Failure


def fmt(value: float | None, digits: int = 2) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "—"
    if abs(value) >= 1000:
        return f"{value:,.0f}" if digits <= 2 else f"{value:,.1f}"
    return f"{value:.{digits}f}"


def _load_label(s: Summary) -> str:
    if s.mode == "closed":
        return f"closed loop, {s.parallel}{' sessions' if s.sessions else ''} in parallel"
    cap = f", at most {s.max_concurrency} in flight" if s.max_concurrency else ""
    if s.shape in ("trace", "ramp"):
        return f"open loop, {s.shape}{cap}"
    unit = "sessions/s" if s.sessions else "req/s"
    rate = "inf" if s.rate is not None and math.isinf(s.rate) else f"{s.rate:g} {unit}"
    kind = "" if s.shape == "poisson" else f" {s.shape}"
    return f"open loop, {rate}{kind}{cap}"


def summary_table(s: Summary) -> Table:
    title = escape(f"Run {s.run_id}" + (f" · {s.name}" if s.name else "") + f" · {s.status}")
    t = Table(title=title, box=box.SIMPLE_HEAVY, show_header=True, title_justify="left")
    t.add_column("Key", style="bold")
    t.add_column("Value", justify="right")
    rows: list[tuple[str, str]] = [
        ("Model", s.model or "—"),
        ("Load", _load_label(s)),
        ("Time taken (s)", fmt(s.duration_s, 3)),
        ("Achieved concurrency", fmt(s.achieved_concurrency)),
        (
            "Requests ok / failed",
            f"{s.ok} / {s.failed}" + (f" (+{s.warmup} warm-up)" if s.warmup else ""),
        ),
        ("Request throughput (req/s)", fmt(s.req_per_s, 3)),
        ("Output throughput (tok/s)", fmt(s.output_tok_per_s)),
        ("Total throughput (tok/s)", fmt(s.total_tok_per_s)),
        ("Mean TTFT (ms)", fmt(s.mean_ttft_ms)),
        ("Mean TPOT (ms)", fmt(s.mean_tpot_ms, 3)),
        ("Mean ITL (ms)", fmt(s.mean_itl_ms, 3)),
        ("Mean E2E latency (ms)", fmt(s.mean_e2e_ms)),
        ("Mean input tokens", fmt(s.mean_input_tokens, 1)),
        ("Mean output tokens", fmt(s.mean_output_tokens, 1)),
        ("Chunks/s · tokens per chunk", f"{fmt(s.chunks_per_s)} · {fmt(s.tokens_per_chunk, 3)}"),
    ]
    after_requests = 5  # the rows that follow "Requests ok / failed"
    if s.mode == "open":
        unit = "sessions/s" if s.sessions else "req/s"
        rows.insert(
            4,
            (
                f"Planned / achieved send rate ({unit})",
                f"{fmt(s.planned_rate, 3)} / {fmt(s.achieved_send_rate, 3)}",
            ),
        )
        after_requests += 1
    rows[after_requests:after_requests] = _session_rows(s.sessions)
    if s.exact_output:
        rows.append(
            (
                "Exact output lengths honoured",
                f"{s.exact_output['honoured']} / {s.exact_output['asked']}",
            )
        )
    if s.token_check.get("n"):
        rows.append(
            (
                "Usage vs local tokenizer",
                f"{s.token_check['mean_diff_pct']:+.1f}% ({s.token_check['n']} requests)",
            )
        )
    reuse = s.trace_reuse
    if reuse:
        rows.append(
            (
                "Trace's shared blocks",
                f"{reuse['reusable_tokens']} of {reuse['prompt_tokens']} prompt tokens "
                f"({fmt(reuse['share_pct'], 1)}%) repeat an earlier row's "
                f"{reuse['block_size']}-token blocks",
            )
        )
    shared = s.shared_prefix
    if shared:
        rows.append(
            (
                "Shared prefix",
                f"{shared['tokens']} of {shared['of']} tokens ({shared['share_pct']:.0f}%)"
                + (f" · {shared['groups']} groups" if shared["groups"] > 1 else ""),
            )
        )
    cache = s.prefix_cache
    if cache:
        rows.append(
            (
                "Prefix cache hits (server's usage)",
                f"{fmt(cache['hit_pct'], 1)}% of prompt tokens · {cache['requests_with_hits']} of "
                f"{cache['requests']} requests",
            )
        )
    hit = s.server.get("prefix_cache_hit_pct") if s.server.get("available") else None
    if hit is not None:
        rows.append(("Prefix cache hits (server's /metrics)", f"{fmt(hit, 1)}% of queried tokens"))
    if s.errors:
        rows.append(("Errors", ", ".join(f"{k} {v}" for k, v in sorted(s.errors.items()))))
    for key, value in rows:
        t.add_row(key, Text(value))  # Text: a model's or dataset's name is never rich markup
    return t


def percentile_table(s: Summary) -> Table:
    t = Table(title=f"Percentiles · run {s.run_id}", box=box.SIMPLE_HEAVY, title_justify="left")
    t.add_column("Pct", style="bold", no_wrap=True)
    columns = list(DISTRIBUTIONS) + (list(OPEN_LOOP_DISTRIBUTIONS) if s.mode == "open" else [])
    for _key, label, unit in columns:
        unit_label = f" ({unit})" if unit and unit != "per request" else ""
        t.add_column(label + unit_label, justify="right")
    for p in PERCENTILES:
        label = f"p{p:g}"
        cells = []
        for key, _, _ in columns:
            d = s.distributions.get(key)
            value = d.values.get(label) if d else None
            digits = 0 if "tok" in key and "tps" not in key else 2
            thin = d is not None and 0 < d.n < min_samples(p)
            cells.append(fmt(value, digits) + ("*" if thin else ""))
        t.add_row(f"{p:g}%", *cells)
    counts = [str(s.distributions[k].n) if k in s.distributions else "—" for k, _, _ in columns]
    t.add_row(Text("n", style="dim"), *[Text(c, style="dim") for c in counts])
    return t


def _session_rows(sessions: dict[str, Any]) -> list[tuple[str, str]]:
    if not sessions:
        return []
    latency = sessions["latency_ms"]
    cut = f" · {sessions['cut_short']} cut short by the stop" if sessions["cut_short"] else ""
    think = sessions["think_time_s"]
    return [
        (
            "Sessions completed / with a failed turn",
            f"{sessions['completed']} / {sessions['with_failed_turn']}{cut} "
            f"· {fmt(sessions['mean_turns'], 1)} turns each",
        ),
        (
            "Session latency p50 / p90 (ms)",
            f"{fmt(latency['p50'])} / {fmt(latency['p90'])}"
            + (f" (think time {think:g} s a turn)" if think else ""),
        ),
    ]


def turn_table(s: Summary) -> Table:
    """A conversation run's figures per turn: where the history (and the prefix cache) shows."""
    t = Table(title=f"By turn · run {s.run_id}", box=box.SIMPLE_HEAVY, title_justify="left")
    for col in ("Turn", "OK / sent", "Mean in tok", "TTFT p50", "TTFT p90", "E2E p50", "Cached"):
        t.add_column(col, justify="left" if col == "Turn" else "right")
    for row in s.turns:
        cached = row["cached_pct"]
        t.add_row(
            row["turn"],
            f"{row['ok']} / {row['requests']}",
            fmt(row["mean_prompt_tokens"], 1),
            fmt(row["ttft_ms"]["p50"]),
            fmt(row["ttft_ms"]["p90"]),
            fmt(row["e2e_ms"]["p50"]),
            "—" if not math.isfinite(cached) else f"{cached:.1f}%",
        )
    return t


def dataset_table(s: Summary) -> Table:
    t = Table(title=f"By dataset · run {s.run_id}", box=box.SIMPLE_HEAVY, title_justify="left")
    for col in (
        "Dataset",
        "OK / sent",
        "Mean TTFT",
        "p99 TTFT",
        "Mean TPOT",
        "Mean E2E",
        "Mean in tok",
        "Mean out tok",
    ):
        t.add_column(col, justify="left" if col == "Dataset" else "right")
    for name, d in s.by_dataset.items():
        t.add_row(
            Text(name),
            f"{d['ok']:.0f} / {d['measured']:.0f}",
            fmt(d["mean_ttft_ms"]),
            fmt(d["p99_ttft_ms"]),
            fmt(d["mean_tpot_ms"], 3),
            fmt(d["mean_e2e_ms"]),
            fmt(d["mean_input_tokens"], 1),
            fmt(d["mean_output_tokens"], 1),
        )
    return t


def server_table(s: Summary) -> Table:
    """The server's own figures (its /metrics), over the measured window."""
    sv = s.server
    t = Table(
        title=f"Server metrics · run {s.run_id} · {sv.get('samples', 0)} samples",
        box=box.SIMPLE_HEAVY,
        title_justify="left",
    )
    for col in ("Figure", "Mean", "Peak", "Total"):
        t.add_column(col, justify="left" if col == "Figure" else "right", no_wrap=True)
    for key, label, digits in (
        ("running", "Running requests", 1),
        ("waiting", "Waiting requests", 1),
        ("kv_usage_pct", "KV-cache usage (%)", 1),
    ):
        if key in sv:
            t.add_row(label, fmt(sv[key]["mean"], digits), fmt(sv[key]["peak"], digits), "")
    if "preemptions" in sv:
        t.add_row("Preemptions", "", "", fmt(sv["preemptions"], 0))
    for key, label in (
        ("prompt", "Prompt tok/s (server)"),
        ("generation", "Generation tok/s (server)"),
    ):
        rate = sv.get(f"{key}_tok_per_s")
        if rate:
            total = sv.get(f"{key}_tokens")
            t.add_row(label, fmt(rate["mean"], 1), fmt(rate["peak"], 1), fmt(total, 0))
    return t


def server_line(s: Summary) -> Text | None:
    """One line when the server had no metrics to scrape; nothing when scraping was off."""
    sv = s.server
    if not sv or sv.get("available") or sv.get("reason") == "off":
        return None
    return Text(f"server metrics: not available ({sv.get('reason')})", style="dim")


def warnings_panel(warnings: Sequence[str]) -> Panel:
    body = Text()
    for i, w in enumerate(warnings):
        if i:
            body.append("\n")
        body.append("• ", style="bold yellow")
        body.append(w)
    return Panel(
        body,
        title="WARNING: read these figures with care",
        border_style="yellow",
        title_align="left",
    )


def _short_load(s: Summary) -> str:
    if s.mode == "closed":
        return f"parallel {s.parallel}"
    if s.shape in ("trace", "ramp"):
        return s.shape
    return "rate inf" if s.rate is not None and math.isinf(s.rate) else f"rate {s.rate:g}/s"


def overview_table(summaries: Sequence[Summary]) -> Table:
    t = Table(title="Overview (mean / p99, ms)", box=box.SIMPLE_HEAVY, title_justify="left")
    for col in ("Run", "Load", "Req/s", "Out tok/s", "TTFT", "TPOT", "E2E", "OK %"):
        t.add_column(col, justify="left" if col == "Load" else "right", no_wrap=True)
    for s in summaries:

        def pair(key: str, mean: float, digits: int = 1, s: Summary = s) -> str:
            return f"{fmt(mean, digits)} / {fmt(s.distributions[key].values.get('p99'), digits)}"

        ok_pct = 100 * s.ok / s.measured if s.measured else math.nan
        t.add_row(
            str(s.run_id),
            _short_load(s),
            fmt(s.req_per_s, 2),
            fmt(s.output_tok_per_s, 0),
            pair("ttft_ms", s.mean_ttft_ms),
            pair("tpot_ms", s.mean_tpot_ms, 2),
            pair("e2e_ms", s.mean_e2e_ms, 0),
            fmt(ok_pct, 1),
        )
    return t


def render(summaries: Sequence[Summary], *, quiet: bool = False) -> RenderableType:
    parts: list[RenderableType] = []
    for s in summaries:
        parts.append(summary_table(s))
        parts.append(percentile_table(s))
        if s.turns:
            parts.append(turn_table(s))
        if s.by_dataset:
            parts.append(dataset_table(s))
        if s.server.get("samples"):
            parts.append(server_table(s))
        line = server_line(s)
        if line is not None:
            parts.append(line)
        if s.ok and any(s.ok < min_samples(p) for p in PERCENTILES):
            parts.append(
                Text("* fewer samples than this percentile needs (see warnings)", style="dim")
            )
        if s.warnings and not quiet:
            parts.append(warnings_panel(s.warnings))
    if len(summaries) > 1:
        parts.append(overview_table(summaries))
    return Group(*parts)


def failures_table(failures: Sequence[Failure]) -> Table:
    """Failed requests grouped by run, status, HTTP status and message."""
    table = Table(title="Failed requests", title_justify="left")
    for col in ("Run", "Status", "HTTP", "Count", "Message"):
        table.add_column(col)
    for f in failures:
        table.add_row(
            str(f.run_id), f.status, str(f.http_status or "—"), str(f.count), Text(f.error or "")
        )
    return table


def print_report(
    summaries: Sequence[Summary], *, console: Console | None = None, quiet: bool = False
) -> None:
    from perfbench.report import output

    (console or output.console()).print(render(summaries, quiet=quiet))
