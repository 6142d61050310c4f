"""The command line: parse flags into specs, call the library, print, exit. No logic of its own.

Exit codes: 0 ok; 1 the run could not do its work (no request succeeded); 2 bad usage or input
(one line on stderr, no traceback); 130/143 stopped by SIGINT/SIGTERM after everything measured
was saved and reported.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal, NoReturn

PROG = "perfbench"


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line (and exit 2), not a usage dump, and flags are
    never abbreviated (so that secret flags are always recognised, and redacted, by name)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("allow_abbrev", False)
        super().__init__(*args, **kwargs)

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text} must be at least 1")
    return value


def _rate(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a number (use inf for all at once)"
        ) from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"{text} must be positive")
    return value


def _db_options(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("database")
    g.add_argument(
        "--outputs-dir", default="outputs", help="folder of the database (default: %(default)s)"
    )
    g.add_argument("--db", help="the database file itself (default: OUTPUTS_DIR/perfbench.db)")


def _output_options(p: argparse.ArgumentParser) -> None:
    g = p.add_mutually_exclusive_group()
    g.add_argument(
        "--json", action="store_true", help="print the report as JSON (schema_version 1)"
    )
    g.add_argument("--csv", action="store_true", help="print the report as CSV, one row per run")


def _db_path(ns: argparse.Namespace) -> Path:
    return Path(ns.db) if ns.db else Path(ns.outputs_dir) / "perfbench.db"


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog=PROG, description="Load-and-eval benchmark for OpenAI-compatible LLM servers."
    )
    parser.add_argument("--version", action="version", version=f"{PROG} {_version()}")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    perf = sub.add_parser(
        "perf",
        help="benchmark a server (the built-in simulator when no --url)",
        description="Stream requests at a server, time every one, record them in SQLite and report.",
    )
    _perf_arguments(perf)
    perf.set_defaults(func=cmd_perf)

    sim = sub.add_parser(
        "sim",
        help="run the simulated inference engine",
        description="An OpenAI-compatible simulated engine with continuous batching.",
    )
    _sim_arguments(sim)
    sim.set_defaults(func=cmd_sim)

    cmp = sub.add_parser(
        "compare",
        help="compare two runs figure by figure: change, confidence interval, verdict, gate",
        description="Compare NEW with BASE: each figure's change with a bootstrap confidence "
        "interval, marked better / worse / no significant change; exit 1 when a gated figure "
        "(--threshold) is significantly worse by more than its threshold.",
    )
    cmp.add_argument("base", metavar="BASE", help="run id or name")
    cmp.add_argument("new", metavar="NEW", help="run id or name")
    cmp.add_argument(
        "--metric",
        nargs="+",
        default=[],
        metavar="FIGURE",
        help="figures or groups (throughput, ttft, tpot, itl, e2e, latency, error_rate, "
        "accuracy, ttft_p99, ...); default all",
    )
    cmp.add_argument(
        "--threshold",
        action="append",
        default=[],
        metavar="[FIGURE=]PCT",
        help="gate: exit 1 when FIGURE is significantly worse by more than PCT "
        "(e.g. 10%% or tpot_p99=5%%); repeatable",
    )
    cmp.add_argument(
        "--confidence",
        type=float,
        default=0.95,
        help="for all figures together (default: %(default)s)",
    )
    cmp.add_argument(
        "--min-change",
        default="5%",
        help="smaller significant changes read as noise (default: %(default)s)",
    )
    cmp.add_argument("--resamples", type=int, default=2000, help="bootstrap resamples")
    cmp.add_argument("--seed", type=int, default=0, help="bootstrap seed")
    cmp.add_argument(
        "--correction",
        choices=("bonferroni", "none"),
        default="bonferroni",
        help="for testing many figures at once (default: %(default)s)",
    )
    cmp.add_argument("--force", action="store_true", help="compare runs of different workloads")
    formats = cmp.add_mutually_exclusive_group()
    formats.add_argument("--json", action="store_true", help="print the comparison as JSON")
    formats.add_argument(
        "--markdown", action="store_true", help="a table for a pull-request comment"
    )
    cmp.add_argument("--quiet", action="store_true", help="no warnings block")
    _db_options(cmp)
    cmp.set_defaults(func=cmd_compare)

    sweep = sub.add_parser(
        "sweep",
        help="find the load a server takes: levels of concurrency or rate, SLOs, the knee",
        description="Run one level after another (--parallel 1 8 32, --rate 1 5 10, or a search "
        "that doubles until saturation and then bisects), each level a run in the database, and "
        "say the highest load that meets every --slo and where throughput saturates.",
    )
    _perf_arguments(sweep, grading=False)
    g = sweep.add_argument_group("sweep")
    g.add_argument(
        "--auto",
        nargs="?",
        const="concurrency",
        choices=("concurrency", "rate"),
        help="search the levels (the default without --parallel/--rate levels)",
    )
    g.add_argument("--start", type=float, default=1, help="first level of a search (default: 1)")
    g.add_argument(
        "--max-level", type=float, default=1024, help="last level a search tries (default: 1024)"
    )
    g.add_argument(
        "--precision",
        type=float,
        default=0.1,
        help="bisect until the levels are this close, as a fraction (default: %(default)s)",
    )
    g.add_argument(
        "--per-level",
        type=float,
        default=10.0,
        help="requests per worker (concurrency) or seconds of arrivals (rate) per level "
        "(default: %(default)s)",
    )
    g.add_argument(
        "--min-number", type=_positive_int, default=20, help="requests per level, at least"
    )
    _slo_argument(g)
    g.add_argument(
        "--stop-ratio",
        type=float,
        default=2.0,
        help="stop once a level is this many times past an SLO bound (default: %(default)s)",
    )
    g.add_argument(
        "--stop-goodput",
        type=float,
        default=0.5,
        help="stop once goodput is below this share of the request rate (default: %(default)s)",
    )
    g.add_argument(
        "--knee-gain",
        type=float,
        default=0.10,
        help="saturated: throughput within this share of the best (default: %(default)s)",
    )
    g.add_argument(
        "--knee-latency",
        type=float,
        default=0.25,
        help="... while latency grows more than this share (default: %(default)s)",
    )
    sweep.set_defaults(func=cmd_sweep)

    plan = sub.add_parser(
        "plan",
        help="predict an eval's wall time at each concurrency from a sweep",
        description="From a sweep's measured curve and the eval's size and output lengths, predict "
        "how long the eval takes at each concurrency and recommend the one that finishes soonest "
        "within the SLOs.",
    )
    plan.add_argument(
        "--from-sweep",
        nargs="+",
        metavar="RUN",
        help="the sweep: its name, or run ids (default: the latest run's name)",
    )
    plan.add_argument("--dataset", help="the eval's dataset (its row count and measured lengths)")
    plan.add_argument("--dataset-path", help="the file the dataset reads")
    plan.add_argument("--n", type=_positive_int, default=1, help="samples per prompt")
    plan.add_argument(
        "--prompts", type=_positive_int, help="prompts in the eval (default: the dataset's rows)"
    )
    plan.add_argument("--max-tokens", type=_positive_int, help="the eval's output cap per request")
    plan.add_argument(
        "--output-len",
        type=_positive_int,
        help="output tokens per request (default: measured in an earlier run of the dataset)",
    )
    _slo_argument(plan)
    plan.add_argument("--json", action="store_true", help="print the plan as JSON")
    _db_options(plan)
    plan.set_defaults(func=cmd_plan)

    report = sub.add_parser(
        "report",
        help="report runs from the database",
        description="Report runs by id or name (default: the latest batch).",
    )
    report.add_argument("runs", nargs="*", metavar="RUN", help="run id or name")
    report.add_argument("--name", help="all runs with this name")
    report.add_argument("--errors", action="store_true", help="list failed requests' messages")
    report.add_argument(
        "--html",
        metavar="FILE",
        help="also write one self-contained HTML page with charts of the runs to FILE",
    )
    report.add_argument("--quiet", action="store_true", help="no warnings block")
    _output_options(report)
    _db_options(report)
    report.set_defaults(func=cmd_report)

    grade = sub.add_parser(
        "grade",
        help="grade the captured answers of runs (eval datasets)",
        description="Grade runs' answers against their gold answers: accuracy, pass@k, maj@k, "
        "and with --think the thinking-efficiency figures. Re-grading replaces earlier grades.",
    )
    grade.add_argument(
        "runs", nargs="*", metavar="RUN", help="run id or name (default: the latest batch)"
    )
    _grade_arguments(grade)
    grade.add_argument(
        "--samples", metavar="FILE", help="write one JSON line per graded answer to FILE"
    )
    grade.add_argument(
        "--tokenizer",
        metavar="NAME",
        help="counts thinking tokens: a local folder or hub id, or tiktoken:NAME "
        "(default: the server's reasoning-token usage, split by characters)",
    )
    grade.add_argument("--json", action="store_true", help="print the scores as JSON")
    grade.add_argument("--quiet", action="store_true", help="no notes block")
    _db_options(grade)
    grade.set_defaults(func=cmd_grade)

    cmp = sub.add_parser(
        "compare-answers",
        help="compare two runs' answers question by question (McNemar's test)",
        description="Pair two graded runs' answers by question and sample, count where they "
        "agree and differ, and test whether the accuracy difference is significant. A run not "
        "yet graded is graded first, with each dataset's own grader.",
    )
    cmp.add_argument("run_a", metavar="RUN_A", help="run id or name")
    cmp.add_argument("run_b", metavar="RUN_B", help="run id or name")
    cmp.add_argument(
        "--alpha", type=float, default=0.05, help="significance level (default: %(default)s)"
    )
    cmp.add_argument(
        "--show",
        choices=("differ", "all", "none"),
        default="differ",
        help="questions to list: those the runs disagree on, all, or none (default: %(default)s)",
    )
    cmp.add_argument("--jsonl", metavar="FILE", help="write one JSON line per question to FILE")
    cmp.add_argument("--json", action="store_true", help="print counts and the test as JSON")
    _db_options(cmp)
    cmp.set_defaults(func=cmd_compare_answers)

    datasets = sub.add_parser("datasets", help="list the datasets --dataset can name")
    datasets.add_argument("--json", action="store_true")
    datasets.set_defaults(func=cmd_datasets)

    runs = sub.add_parser("runs", help="list the runs in the database")
    runs.add_argument("--json", action="store_true")
    _db_options(runs)
    runs.set_defaults(func=cmd_runs)
    return parser


def _perf_arguments(perf: argparse.ArgumentParser, *, grading: bool = True) -> None:
    """The flags of `perf`, shared by `sweep` (which has no grading)."""
    g = perf.add_argument_group("server")
    g.add_argument(
        "--url",
        help="server root, API base (/v1) or full endpoint; omit to run the built-in simulator",
    )
    g.add_argument("--model", help="model name (default: the first one the server lists)")
    g.add_argument(
        "--api",
        choices=("openai-chat", "openai-completions"),
        default=None,
        help="endpoint kind (default: from --url, else openai-chat)",
    )
    g.add_argument("--api-key", help="bearer token (default: $OPENAI_API_KEY); never stored")
    g.add_argument(
        "--header",
        action="append",
        default=[],
        metavar="K:V",
        help="extra HTTP header (repeatable)",
    )
    g.add_argument(
        "--connect-timeout", type=float, default=10.0, help="seconds (default: %(default)s)"
    )
    g.add_argument(
        "--read-timeout",
        type=float,
        default=600.0,
        help="seconds without data before a request fails (default: %(default)s)",
    )
    g.add_argument(
        "--sim-args", default="", help="flags for the built-in simulator, e.g. '--preset instant'"
    )
    g.add_argument(
        "--server-metrics",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="sample the server's Prometheus /metrics during the run (default: when it answers; "
        "--server-metrics: required)",
    )
    g.add_argument(
        "--server-metrics-interval",
        type=float,
        default=1.0,
        metavar="S",
        help="seconds between samples (default: %(default)s)",
    )
    g.add_argument(
        "--server-metrics-url",
        metavar="URL",
        help="where the metrics are (default: the server root + /metrics)",
    )

    g = perf.add_argument_group("load")
    g.add_argument(
        "--parallel",
        type=_positive_int,
        nargs="+",
        help="closed loop: requests in flight (several values: one run each)",
    )
    g.add_argument(
        "--number",
        type=_positive_int,
        nargs="+",
        help="requests per run, paired with --parallel/--rate (default: once per row for an eval "
        "dataset, else 10 × parallel and at least 100; 100 for an open loop)",
    )
    g.add_argument(
        "--rate",
        type=_rate,
        nargs="+",
        help="open loop: requests/s, Poisson arrivals (inf: all at once)",
    )
    g.add_argument(
        "--burstiness",
        type=float,
        default=1.0,
        help="gamma shape of the arrival gaps: 1 Poisson, <1 burstier (default: %(default)s)",
    )
    g.add_argument(
        "--max-concurrency", type=_positive_int, help="open loop: cap on requests in flight"
    )
    g.add_argument("--duration", type=float, help="seconds of scheduling; ends the run early")
    g.add_argument(
        "--arrival",
        choices=("poisson", "constant"),
        default="poisson",
        help="open loop: Poisson (gamma with --burstiness) gaps, or evenly spaced",
    )
    g.add_argument(
        "--ramp-from", type=float, metavar="R0", help="open loop: a linear ramp from R0 req/s"
    )
    g.add_argument("--ramp-to", type=float, metavar="R1", help="... to R1 req/s over --duration")
    g.add_argument(
        "--trace",
        metavar="FILE",
        help="replay the arrival times and lengths of a trace (Mooncake JSONL or Azure CSV)",
    )
    g.add_argument(
        "--trace-speed", type=float, default=1.0, help="2 replays the trace twice as fast"
    )
    g.add_argument(
        "--warmup", type=int, default=0, help="requests sent first and left out of the figures"
    )
    g.add_argument("--seed", type=int, default=0, help="seed of arrivals and of the simulator")

    g = perf.add_argument_group("request")
    g.add_argument("--max-tokens", type=int, default=256, help="(default: %(default)s)")
    g.add_argument("--min-tokens", type=int)
    g.add_argument("--temperature", type=float)
    g.add_argument("--top-p", type=float)
    g.add_argument("--top-k", type=int)
    g.add_argument(
        "--stream",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="stream the response (default: on)",
    )
    g.add_argument("--extra-body", help="JSON object merged into every request body")
    g.add_argument(
        "--enable-thinking",
        dest="thinking",
        action="store_true",
        default=None,
        help="send chat_template_kwargs.enable_thinking = true",
    )
    g.add_argument(
        "--disable-thinking",
        dest="thinking",
        action="store_false",
        help="send chat_template_kwargs.enable_thinking = false",
    )

    g = perf.add_argument_group("workload")
    g.add_argument(
        "--dataset",
        default="openqa",
        help="dataset name; `perfbench datasets` lists them (default: %(default)s)",
    )
    g.add_argument(
        "--dataset-path", help="the file the dataset reads (eval datasets: else the hub)"
    )
    g.add_argument("--prompt", help="send this one prompt")
    g.add_argument(
        "--prompt-template", help="format string replacing an eval dataset's own, e.g. '{problem}'"
    )
    g.add_argument("--shuffle", action="store_true", help="a seeded shuffle of the dataset's rows")
    g.add_argument(
        "--n", type=_positive_int, default=1, help="samples per prompt, sent as repeated requests"
    )
    g.add_argument(
        "--mix",
        nargs="+",
        metavar="NAME[=PATH][:WEIGHT]",
        help="one workload from several datasets drawn by weight, e.g. openqa:3 jsonl=q.jsonl:1",
    )
    g.add_argument(
        "--tokenizer-path",
        "--tokenizer",
        dest="tokenizer",
        metavar="NAME",
        help="a local folder or hub id, or tiktoken:NAME (default: about 4 characters per token)",
    )
    g.add_argument("--input-len", type=int, help="random dataset: prompt length in tokens")
    g.add_argument("--output-len", type=int, help="random dataset: output length in tokens")
    g.add_argument(
        "--range-ratio", type=float, default=0.0, help="random dataset: lengths uniform in ±ratio"
    )
    g.add_argument("--prefix-len", type=int, default=0, help="random dataset: shared prefix tokens")

    if grading:
        g = perf.add_argument_group("grading (eval datasets)")
        g.add_argument("--grade", action="store_true", help="grade the answers when each run ends")
        _grade_arguments(g)

    g = perf.add_argument_group("output")
    g.add_argument("--name", help="label the runs, to find them again by name")
    g.add_argument("--quiet", action="store_true", help="no progress bar, no warnings block")
    _output_options(perf)
    _db_options(perf)


def _slo_argument(g: Any) -> None:
    g.add_argument(
        "--slo",
        action="append",
        default=[],
        metavar="METRIC<=BOUND",
        help="a latency promise, e.g. ttft_p99<=2s, tpot_p50<=50ms, error_rate<=1%% "
        "(repeatable, or comma-separated)",
    )


def _grade_arguments(g: Any) -> None:
    from perfbench.config import GRADERS, STEP_STRATEGIES

    g.add_argument(
        "--grader", choices=GRADERS, help="grade every answer this way (default: the dataset's)"
    )
    g.add_argument(
        "--remove-until",
        metavar="MARKER",
        help="grade only the text after the last MARKER, e.g. '</think>'",
    )
    g.add_argument(
        "--regex", metavar="PATTERN", help="the regex grader's pattern (group 1 = answer)"
    )
    g.add_argument(
        "--k", type=_positive_int, nargs="+", help="pass@k values (default: 2, 4, ... up to --n)"
    )
    g.add_argument(
        "--workers", type=_positive_int, help="grading processes (default: CPUs, at most 8)"
    )
    g.add_argument(
        "--grade-timeout",
        type=float,
        default=30.0,
        help="seconds one answer may take before its worker is killed (default: %(default)s)",
    )
    g.add_argument("--think", action="store_true", help="thinking-efficiency figures too")
    g.add_argument(
        "--markers",
        help="comma-separated thought markers (default: alternatively, but wait, "
        "let me reconsider, another way, another approach, another method, another angle)",
    )
    g.add_argument(
        "--steps",
        choices=STEP_STRATEGIES,
        default="separator",
        help="how thinking is split into steps (default: %(default)s)",
    )
    g.add_argument("--judge-url", help="OpenAI-compatible LLM that finds the first correct step")
    g.add_argument("--judge-model", help="the judge's model (default: the first it lists)")
    g.add_argument(
        "--judge-api-key", help="the judge's bearer token (default: $PERFBENCH_JUDGE_API_KEY)"
    )
    g.add_argument(
        "--max-think-tokens",
        type=_positive_int,
        help="thinking figures over samples thinking at most this many tokens",
    )
    g.add_argument(
        "--count", type=_positive_int, help="thinking figures over the first N samples only"
    )


def _grade_spec(ns: argparse.Namespace) -> Any:
    from perfbench.config import THOUGHT_MARKERS, GradeSpec, ThinkSpec

    think = None
    if ns.think:
        markers = THOUGHT_MARKERS
        if ns.markers:
            markers = tuple(m.strip() for m in ns.markers.split(",") if m.strip())
        think = ThinkSpec(
            markers=markers,
            steps=ns.steps,
            judge_url=ns.judge_url,
            judge_model=ns.judge_model,
            judge_api_key=ns.judge_api_key or os.environ.get("PERFBENCH_JUDGE_API_KEY"),
            max_think_tokens=ns.max_think_tokens,
            count=ns.count,
            tokenizer=getattr(ns, "tokenizer", None),
        )
    return GradeSpec(
        grader=ns.grader,
        remove_until=ns.remove_until,
        regex=ns.regex,
        ks=tuple(ns.k) if ns.k else None,
        think=think,
        workers=ns.workers,
        timeout=ns.grade_timeout,
    )


def _print_grades(reports: list[Any], ns: argparse.Namespace) -> None:
    from perfbench.grade import table

    if ns.json:
        print(table.to_json(reports))
        return
    from rich.console import Console

    console = Console()
    console.print(table.score_table(reports))
    for report in reports:
        if report.thinking:
            console.print(table.thinking_table(report))
    notes = [n for r in reports for n in table.notes(r)]
    if notes and not ns.quiet:
        from perfbench.report.tables import warnings_panel

        console.print(warnings_panel(notes))


def cmd_grade(ns: argparse.Namespace, argv: Sequence[str]) -> int:
    from perfbench.grade.run import grade_runs

    spec = _grade_spec(ns)
    if ns.quiet or ns.json or not sys.stderr.isatty():
        reports = grade_runs(_db_path(ns), ns.runs, spec)
    else:
        from rich.progress import Progress

        with Progress(transient=True) as bar:
            task = bar.add_task("grading", total=None)
            reports = grade_runs(
                _db_path(ns),
                ns.runs,
                spec,
                progress=lambda done, total: bar.update(task, completed=done, total=total),
            )
    if ns.samples:
        _write_samples(Path(ns.samples), reports)
    _print_grades(reports, ns)
    return 0


def cmd_compare_answers(ns: argparse.Namespace, argv: Sequence[str]) -> int:
    from perfbench.errors import UsageError
    from perfbench.grade import table
    from perfbench.grade.run import compare_answer_runs

    if not 0 < ns.alpha < 1:
        raise UsageError(f"--alpha {ns.alpha} must be between 0 and 1, e.g. 0.05")
    run_a, run_b, comparison, graded_now = compare_answer_runs(_db_path(ns), ns.run_a, ns.run_b)
    for run_id in graded_now:
        print(f"{PROG}: run {run_id} was not graded; graded it first", file=sys.stderr)
    if ns.jsonl:
        _write_jsonl(Path(ns.jsonl), comparison.to_jsonl_rows(), "--jsonl")
    if ns.json:
        print(table.comparison_json(comparison, run_a, run_b, ns.alpha))
    else:
        table.print_comparison(comparison, run_a, run_b, ns.alpha, show=ns.show)
    return 0


def _write_jsonl(path: Path, rows: Any, flag: str) -> None:
    from perfbench.errors import UsageError

    try:
        with path.open("w", encoding="utf-8") as f:
            for row in rows:
                f.write(json.dumps(row, ensure_ascii=False) + "\n")
    except OSError as exc:
        raise UsageError(f"cannot write {flag} {path}: {exc.strerror}") from None


def _write_samples(path: Path, reports: list[Any]) -> None:
    from perfbench.grade import table

    _write_jsonl(path, (row for r in reports for row in table.sample_rows(r)), "--samples")


def _sim_arguments(p: argparse.ArgumentParser) -> None:
    from perfbench import sim

    p.add_argument("--host", default="127.0.0.1")
    p.add_argument(
        "--port", type=int, default=8000, help="0 picks a free port (default: %(default)s)"
    )
    sim.add_arguments(p)


def _version() -> str:
    from perfbench import __version__

    return __version__


def _loads(ns: argparse.Namespace) -> tuple[Any, ...]:
    from perfbench.config import LoadSpec
    from perfbench.errors import ConfigError

    if ns.rate and ns.parallel and len(ns.parallel) > 1:
        raise ConfigError(
            "with --rate, give one --parallel (it caps requests in flight) or use --max-concurrency"
        )
    open_shape = ns.ramp_from is not None or ns.ramp_to is not None or ns.trace is not None
    if open_shape and ns.rate:
        raise ConfigError("--rate, --ramp-from/--ramp-to and --trace are alternatives: give one")
    axis = ns.rate if ns.rate else ([None] if open_shape else (ns.parallel or [1]))
    numbers = ns.number
    if numbers is None:
        numbers = [None] * len(axis)
    elif len(numbers) == 1:
        numbers = numbers * len(axis)
    elif len(numbers) != len(axis):
        what = "--rate" if ns.rate else "--parallel"
        raise ConfigError(
            f"--number has {len(numbers)} values and {what} {len(axis)}: "
            f"give one, or one per {what} value"
        )
    common = {"duration": ns.duration, "warmup": ns.warmup, "seed": ns.seed}
    loads = []
    for value, number in zip(axis, numbers):
        if ns.rate or open_shape:
            cap = ns.max_concurrency or (ns.parallel[0] if ns.parallel else None)
            load = LoadSpec(
                parallel=None,
                number=number,
                rate=value,
                burstiness=ns.burstiness,
                max_concurrency=cap,
                arrival=ns.arrival,
                ramp_from=ns.ramp_from,
                ramp_to=ns.ramp_to,
                trace=ns.trace,
                trace_speed=ns.trace_speed,
                **common,
            )
        else:
            load = LoadSpec(parallel=value, number=number, **common)
        loads.append(load)
    return tuple(loads)


def _mix(items: list[str]) -> tuple[tuple[str, str | None, float], ...]:
    from perfbench.errors import ConfigError

    out = []
    for item in items:
        head, colon, weight_text = item.rpartition(":")
        if not colon or "=" in weight_text:
            head, weight_text = item, "1"
        name, eq, path = head.partition("=")
        try:
            weight = float(weight_text)
        except ValueError:
            raise ConfigError(f"--mix {item!r}: the weight after ':' must be a number") from None
        out.append((name, path if eq else None, weight))
    return tuple(out)


def _client(ns: argparse.Namespace) -> Any:
    from perfbench.config import ClientSpec
    from perfbench.errors import ConfigError

    extra: dict[str, Any] = {}
    if ns.extra_body:
        try:
            extra = json.loads(ns.extra_body)
        except json.JSONDecodeError as exc:
            raise ConfigError(
                f"--extra-body is not valid JSON ({exc.msg} at column {exc.colno}); "
                "e.g. --extra-body '{\"ignore_eos\": true}'"
            ) from None
        if not isinstance(extra, dict):
            raise ConfigError("--extra-body must be a JSON object, e.g. '{\"ignore_eos\": true}'")
    if ns.thinking is not None:
        kwargs = dict(extra.get("chat_template_kwargs") or {})
        kwargs["enable_thinking"] = ns.thinking
        extra = {**extra, "chat_template_kwargs": kwargs}
    headers = []
    for h in ns.header:
        key, sep, value = h.partition(":")
        if not sep or not key.strip():
            raise ConfigError(f"--header {h!r} is not K:V, e.g. --header 'X-Team: search'")
        headers.append((key.strip(), value.strip()))
    return ClientSpec(
        url=ns.url,
        api=ns.api,
        model=ns.model,
        stream=ns.stream,
        max_tokens=ns.max_tokens,
        min_tokens=ns.min_tokens,
        temperature=ns.temperature,
        top_p=ns.top_p,
        top_k=ns.top_k,
        extra_body=extra,
        headers=tuple(headers),
        api_key=ns.api_key or os.environ.get("OPENAI_API_KEY") or None,
        connect_timeout=ns.connect_timeout,
        read_timeout=ns.read_timeout,
    )


def _perf_spec(ns: argparse.Namespace, argv: Sequence[str], loads: tuple[Any, ...]) -> Any:
    import shlex

    from perfbench.config import PerfSpec, ServerMetricsSpec, WorkloadSpec
    from perfbench.metadata import redact_argv

    sim_args = tuple(shlex.split(ns.sim_args))
    if ns.url is None:
        sim_args = ("--seed", str(ns.seed), *sim_args)
    grading = getattr(ns, "grade", False) or getattr(ns, "think", False)
    return PerfSpec(
        client=_client(ns),
        loads=loads,
        workload=WorkloadSpec(
            dataset=ns.dataset,
            dataset_path=ns.dataset_path,
            prompt=ns.prompt,
            seed=ns.seed,
            tokenizer=ns.tokenizer,
            input_len=ns.input_len,
            output_len=ns.output_len,
            range_ratio=ns.range_ratio,
            prefix_len=ns.prefix_len,
            prompt_template=ns.prompt_template,
            shuffle=ns.shuffle,
            mix=_mix(ns.mix or []),
            n=ns.n,
        ),
        db_path=_db_path(ns),
        name=ns.name,
        sim_args=sim_args,
        command=" ".join([PROG, *redact_argv(list(argv))]),
        grade=_grade_spec(ns) if grading else None,
        server_metrics=ServerMetricsSpec(
            enabled=ns.server_metrics,
            interval=ns.server_metrics_interval,
            url=ns.server_metrics_url,
        ),
    )


def cmd_perf(ns: argparse.Namespace, argv: Sequence[str]) -> int:
    from perfbench.runner import run

    spec = _perf_spec(ns, argv, _loads(ns))
    observer = None
    if not ns.quiet and sys.stdout.isatty() and not (ns.json or ns.csv):
        from perfbench.report.progress import ProgressObserver

        observer = ProgressObserver()
    result = run(spec, observer=observer)
    summaries = [r.summary for r in result.runs]
    if result.grades and ns.json:
        from perfbench.grade import table
        from perfbench.report import to_json

        both = {
            "perf": json.loads(to_json(summaries)),
            "grades": json.loads(table.to_json(result.grades)),
        }
        print(json.dumps(both, indent=2))
    else:
        _print(summaries, ns)
        if result.grades:
            _print_grades(result.grades, ns)
    if result.grade_error is not None:
        print(f"{PROG}: error: grading failed: {result.grade_error}", file=sys.stderr)
        return max(result.exit_code, result.grade_error.exit_code)
    if result.stopped_by is not None:
        print(
            f"{PROG}: stopped by signal {result.stopped_by}; everything measured is in {spec.db_path}",
            file=sys.stderr,
        )
    return result.exit_code


def cmd_compare(ns: argparse.Namespace, argv: Sequence[str]) -> int:
    from perfbench.compare import (
        CompareSpec,
        compare_runs,
        gate_exit_code,
        parse_threshold,
        parse_thresholds,
        print_comparison,
    )

    spec = CompareSpec(
        metrics=tuple(ns.metric),
        thresholds=parse_thresholds(ns.threshold),
        confidence=ns.confidence,
        min_change=parse_threshold(ns.min_change)[1],
        resamples=ns.resamples,
        seed=ns.seed,
        correction=ns.correction,
        force=ns.force,
    )
    result = compare_runs(_db_path(ns), ns.base, ns.new, spec)
    if ns.json:
        print(result.to_json())
    elif ns.markdown:
        sys.stdout.write(result.to_markdown())
    else:
        print_comparison(result, quiet=ns.quiet)
    return gate_exit_code(result)


def cmd_sweep(ns: argparse.Namespace, argv: Sequence[str]) -> int:
    from perfbench.errors import UsageError
    from perfbench.slo import parse_slos
    from perfbench.sweep import SweepSpec, sweep

    if ns.rate and ns.parallel:
        raise UsageError("sweep levels are --parallel or --rate values, not both")
    if ns.auto and (ns.rate or ns.parallel):
        raise UsageError("--auto searches for the levels: drop --parallel/--rate, or drop --auto")
    if ns.number and len(ns.number) > 1:
        raise UsageError("a sweep takes one --number: the requests of every level")
    mode: Literal["concurrency", "rate"] = "rate" if ns.rate or ns.auto == "rate" else "concurrency"
    levels = tuple(ns.rate or ns.parallel or ()) if not ns.auto else ()
    template = argparse.Namespace(**{**vars(ns), "parallel": None, "number": None})
    if mode == "rate":
        template.rate = [1.0]
    spec = SweepSpec(
        mode=mode,
        levels=tuple(float(x) for x in levels),
        start=ns.start,
        max_level=ns.max_level,
        precision=ns.precision,
        number=ns.number[0] if ns.number else None,
        duration=ns.duration,
        per_unit=ns.per_level,
        min_number=ns.min_number,
        slos=parse_slos(ns.slo),
        stop_ratio=ns.stop_ratio,
        stop_goodput=ns.stop_goodput,
        knee_gain=ns.knee_gain,
        knee_latency=ns.knee_latency,
    )
    base = _perf_spec(ns, argv, _loads(template))
    observer = None
    if not ns.quiet and sys.stdout.isatty() and not ns.json:
        from perfbench.report.progress import ProgressObserver

        observer = ProgressObserver()
    result = sweep(base, spec, observer=observer)
    if ns.json:
        print(result.to_json())
    else:
        console = _wide_console()
        console.print(result.table())
        console.print(result.answer, markup=False, highlight=False)
    if result.stopped_by is not None:
        print(
            f"{PROG}: sweep stopped by signal {result.stopped_by} after {len(result.levels)} "
            f"levels; the answer covers those; everything measured is in {base.db_path}",
            file=sys.stderr,
        )
    return int(result.exit_code)


def _wide_console() -> Any:
    """A rich console; 120 columns when the output is a file or a CI log, not a terminal."""
    from rich.console import Console

    console = Console()
    if console.is_terminal or "COLUMNS" in os.environ:
        return console
    return Console(width=120)


def cmd_plan(ns: argparse.Namespace, argv: Sequence[str]) -> int:
    from perfbench.plan import PlanSpec, plan
    from perfbench.slo import parse_slos

    result = plan(
        PlanSpec(
            curve=tuple(ns.from_sweep or ()),
            dataset=ns.dataset,
            dataset_path=ns.dataset_path,
            n=ns.n,
            prompts=ns.prompts,
            max_tokens=ns.max_tokens,
            output_len=ns.output_len,
            slos=parse_slos(ns.slo),
            db_path=_db_path(ns),
        )
    )
    if ns.json:
        print(result.to_json())
        return 1 if ns.slo and result.recommended is None else 0
    console = _wide_console()
    console.print(result.table())
    console.print(result.answer, markup=False, highlight=False)
    for warning in result.warnings:
        console.print(f"warning: {warning}", markup=False, highlight=False)
    return 1 if ns.slo and result.recommended is None else 0


def _print(summaries: list[Any], ns: argparse.Namespace) -> None:
    from perfbench.report import print_report, to_csv, to_json

    if ns.json:
        print(to_json(summaries))
    elif ns.csv:
        sys.stdout.write(to_csv(summaries))
    else:
        print_report(summaries, quiet=ns.quiet)


def cmd_report(ns: argparse.Namespace, argv: Sequence[str]) -> int:
    from perfbench.metrics import summarize
    from perfbench.store import Store

    store = Store(_db_path(ns))
    try:
        runs = store.find(ns.runs, ns.name)
        _print([summarize(store, r) for r in runs], ns)
        if ns.html:
            from perfbench.errors import UsageError
            from perfbench.report.html import write_html

            try:
                write_html(store, runs, ns.html)
            except OSError as exc:
                raise UsageError(f"cannot write --html {ns.html}: {exc.strerror}") from None
        if ns.errors:
            _print_errors(store, [r.id for r in runs])
    finally:
        store.close()
    return 0


def _print_errors(store: Any, run_ids: list[int]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title="Failed requests", title_justify="left")
    for col in ("Run", "Status", "HTTP", "Count", "Message"):
        table.add_column(col)
    marks = ",".join("?" * len(run_ids))
    rows = store.db.conn.execute(
        f"SELECT run_id, status, http_status, count(*), error FROM requests WHERE run_id IN ({marks}) "
        "AND status != 'ok' GROUP BY run_id, status, http_status, error ORDER BY run_id, count(*) DESC",
        run_ids,
    ).fetchall()
    for run_id, status, http, count, error in rows:
        table.add_row(str(run_id), status, str(http or "—"), str(count), error or "")
    Console().print(table)


def cmd_runs(ns: argparse.Namespace, argv: Sequence[str]) -> int:
    from rich.console import Console
    from rich.table import Table

    from perfbench.store import Store

    store = Store(_db_path(ns))
    try:
        runs = store.runs()
        counts = {r.id: store.count_by_status(r.id) for r in runs}
    finally:
        store.close()
    if ns.json:
        print(
            json.dumps(
                {
                    "schema_version": 1,
                    "runs": [
                        {
                            "id": r.id,
                            "name": r.name,
                            "batch": r.batch,
                            "status": r.status,
                            "started_at": r.started_at,
                            "ended_at": r.ended_at,
                            "model": r.model,
                            "endpoint": r.endpoint,
                            "load": r.load,
                            "scheduled": r.scheduled,
                            "recorded": r.recorded,
                            "requests": counts[r.id],
                        }
                        for r in runs
                    ],
                },
                indent=2,
            )
        )
        return 0
    table = Table(title=str(_db_path(ns)), title_justify="left")
    for col in ("Id", "Name", "Status", "Started", "Model", "Load", "OK", "Failed"):
        table.add_column(col)
    for r in runs:
        load = r.load
        shape = (
            f"rate {load.get('rate')}"
            if load.get("rate") is not None
            else f"parallel {load.get('parallel')}"
        )
        ok = counts[r.id].get("ok", 0)
        failed = sum(counts[r.id].values()) - ok
        table.add_row(
            str(r.id),
            r.name or "",
            r.status,
            r.started_at[:16].replace("T", " "),
            r.model or "",
            shape,
            str(ok),
            str(failed),
        )
    Console().print(table)
    return 0


def cmd_datasets(ns: argparse.Namespace, argv: Sequence[str]) -> int:
    from perfbench.workload import REGISTRY

    entries = [REGISTRY[name] for name in sorted(REGISTRY)]
    if ns.json:
        print(
            json.dumps(
                [
                    {"name": d.name, "description": d.description, "needs_path": d.needs_path}
                    for d in entries
                ],
                indent=2,
            )
        )
        return 0
    width = max(len(d.name) for d in entries)
    for d in entries:
        need = "  (needs --dataset-path)" if d.needs_path else ""
        print(f"{d.name:<{width}}  {d.description}{need}")
    return 0


def cmd_sim(ns: argparse.Namespace, argv: Sequence[str]) -> int:
    from perfbench import sim

    try:
        config = sim.config_from_args(ns)
    except ValueError as exc:
        from perfbench.errors import ConfigError

        raise ConfigError(str(exc)) from None
    sim.serve(config, host=ns.host, port=ns.port)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    from perfbench.errors import PerfbenchError

    args = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    ns = parser.parse_args(args)
    try:
        return int(ns.func(ns, args))
    except PerfbenchError as exc:
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 0
