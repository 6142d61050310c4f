"""The command line: parse flags into specs, call the library, print, exit. No logic of its own.

Exit codes: 0 ok; 1 the run could not do its work (no request succeeded); 2 bad usage or input
(one line on stderr, no traceback); 130/143 stopped by SIGINT/SIGTERM after everything measured
was saved and reported.
"""

from __future__ import annotations

import argparse
import os
import shlex
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal, NoReturn

PROG = "perfbench"
#: perf --determinism's levels when --parallel gives none
DETERMINISM_LEVELS = (1, 8, 32)


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


def _output_options(p: argparse.ArgumentParser, rows: str) -> Any:
    """``--json`` and ``--csv``, the same for every read command (``report.output`` prints them);
    ``rows`` says what one CSV row is. Returns the group, for a command's own formats."""
    g = p.add_mutually_exclusive_group()
    g.add_argument("--json", action="store_true", help="print as JSON (with schema_version)")
    g.add_argument("--csv", action="store_true", help=f"print as CSV, one row per {rows}")
    return g


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
    formats = _output_options(cmp, "figure")
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
    plan.add_argument(
        "--samples", "--n", dest="n", type=_positive_int, default=1, help="samples per prompt"
    )
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
    _output_options(plan, "concurrency")
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
    report.add_argument(
        "--determinism",
        action="store_true",
        help="hold the runs' outputs against the first concurrency-1 run's (runs of perf "
        "--determinism, or any greedy runs of the same prompts): docs/determinism.md",
    )
    report.add_argument(
        "--tokenizer",
        metavar="NAME",
        help="with --determinism: counts the first-difference positions (default: the "
        "reference run's --tokenizer, else 4 characters a token)",
    )
    report.add_argument("--quiet", action="store_true", help="no warnings block")
    _output_options(report, "run")
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
    _output_options(grade, "score")
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
    _output_options(cmp, "question and sample")
    _db_options(cmp)
    cmp.set_defaults(func=cmd_compare_answers)

    datasets = sub.add_parser("datasets", help="list the datasets --dataset can name")
    _output_options(datasets, "dataset")
    datasets.set_defaults(func=cmd_datasets)

    imp = sub.add_parser(
        "import",
        help="import result files of vllm bench serve, evalscope perf, GuideLLM or AIPerf",
        description="Read other tools' result files into the database as runs of their own "
        "(marked with their source), for `report` and `compare` beside perfbench's runs. "
        "Every file is checked before anything is written; a file imported before is left alone.",
    )
    imp.add_argument(
        "files",
        nargs="+",
        metavar="FILE",
        help="vLLM's --save-result JSON (or JSON Lines), EvalScope's output folder or its "
        "benchmark_summary.json, GuideLLM's benchmarks.json, AIPerf's profile_export_aiperf.json",
    )
    imp.add_argument(
        "--tool",
        choices=("vllm", "evalscope", "guidellm", "aiperf"),
        help="which tool wrote the files (default: told by their keys)",
    )
    imp.add_argument("--name", help="the runs' name (default: TOOL:FILE)")
    _output_options(imp, "run")
    _db_options(imp)
    imp.set_defaults(func=cmd_import)

    runs = sub.add_parser("runs", help="list the runs in the database")
    _output_options(runs, "run")
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
        choices=("openai-chat", "openai-completions", "openai"),
        default=None,
        help="endpoint kind (default, and openai: from --url, else openai-chat)",
    )
    g.add_argument("--api-key", help="bearer token (default: $OPENAI_API_KEY); never stored")
    g.add_argument(
        "--header",
        action="extend",
        nargs="+",
        default=[],
        metavar="K:V",
        help="extra HTTP headers, K:V or K=V (repeatable)",
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
        "--trace-block-size",
        type=int,
        default=512,
        metavar="TOKENS",
        help="tokens per hash id in a Mooncake trace (its hash_ids; 512 in Mooncake's own)",
    )
    g.add_argument(
        "--warmup", type=int, default=0, help="requests sent first and left out of the figures"
    )
    g.add_argument("--seed", type=int, default=0, help="seed of arrivals and of the simulator")
    if grading:  # perf only: a sweep's levels are its repetitions
        g.add_argument(
            "--repeat",
            type=_positive_int,
            default=1,
            metavar="R",
            help="run each load R times, each a run of its own (replicates): `compare` then "
            "measures the variation from run to run (docs/compare.md)",
        )

    g = perf.add_argument_group("faults")
    if grading:  # perf only
        g.add_argument(
            "--resume",
            type=_positive_int,
            metavar="RUN",
            help="finish an interrupted, killed or failed run: send, into it, the planned "
            "requests it has no ok row for, with the run's own flags (--url, --api-key, "
            "--header, --workers, the database and output flags may be given again)",
        )
    g.add_argument(
        "--max-error-rate",
        type=_fraction,
        default=0.25,
        metavar="P",
        help="exit 1 when more than this share of a run's measured requests failed "
        "(default: %(default)s; 1 never)",
    )
    g.add_argument(
        "--wait-for-server",
        type=float,
        default=0.0,
        metavar="S",
        help="when the server goes away mid-run, wait up to S seconds for it to come back and "
        "go on (default: stop the run at once)",
    )

    g = perf.add_argument_group("scale-out (docs/scale-out.md)")
    g.add_argument(
        "--workers",
        type=_workers,
        metavar="N",
        help="load-generating processes sharing the plan (default 1: this one; auto: one per "
        "128 streams in flight, up to the spare cores)",
    )
    g.add_argument(
        "--ray",
        nargs="?",
        const="",
        metavar="ADDRESS",
        help="run the workers as Ray actors spread over a cluster (default address: "
        "$RAY_ADDRESS, else a local one); needs perfbench[ray]",
    )
    g.add_argument(
        "--on-worker-loss",
        choices=("stop", "continue"),
        default="stop",
        help="when a worker dies mid-run: stop the run, or go on with the others "
        "(default: %(default)s)",
    )

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
        "--start-date",
        metavar="YYYY-MM-DD",
        help="live_code_bench: problems whose contest date is on or after this day",
    )
    g.add_argument(
        "--end-date", metavar="YYYY-MM-DD", help="live_code_bench: ... and on or before this day"
    )
    g.add_argument(
        "--samples",
        "--n",
        dest="n",
        type=_positive_int,
        default=1,
        metavar="K",
        help="samples per prompt, sent as repeated requests (-n is --number, as in evalscope)",
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
    g.add_argument(
        "--prefix-groups",
        type=int,
        default=1,
        metavar="G",
        help="random dataset: G different shared prefixes, the prompts in turn (default: 1)",
    )
    g.add_argument(
        "--reuse-prompts",
        action="store_true",
        help="random dataset: send its 1,000 prompts again and again, not one per request "
        "(a server's prefix cache then serves the repeats)",
    )
    g = perf.add_argument_group("conversations (sessions of several turns)")
    g.add_argument(
        "--multi-turn",
        action="store_true",
        help="send each conversation as a session: every turn after the answer to the last, "
        "with the whole history (sharegpt: all its turns); --parallel counts sessions, --rate "
        "session starts, --number sessions",
    )
    g.add_argument(
        "--turns",
        type=int,
        metavar="N",
        help="sessions of N turns (random: synthetic, each turn --input-len new tokens asking "
        "for --output-len; sharegpt: at most N); implies --multi-turn",
    )
    g.add_argument(
        "--think-time",
        type=float,
        default=0.0,
        metavar="SECONDS",
        help="the user's pause between an answer's end and the next turn (default: 0)",
    )

    if grading:
        g = perf.add_argument_group("grading (eval datasets)")
        g.add_argument("--grade", action="store_true", help="grade the answers when each run ends")
        _grade_arguments(g)

        g = perf.add_argument_group("determinism under load (docs/determinism.md)")
        g.add_argument(
            "--determinism",
            action="store_true",
            help="send the same prompts at temperature 0 at each --parallel level (default: 1 8 "
            "32; 1 is always run first, as the reference) and report, per level, the share of "
            "outputs that differ from concurrency 1's and where they first differ",
        )
        g.add_argument(
            "--rerun",
            type=int,
            metavar="N",
            help="with --determinism: how many prompts a second concurrency-1 pass after the "
            "levels sends again, to show the engine's run-to-run variance alone (default: all; "
            "0: no second pass)",
        )

    if grading:
        from perfbench.interop import flags as other_tools

        other_tools.add_arguments(perf)

    g = perf.add_argument_group("output")
    g.add_argument("--name", help="label the runs, to find them again by name")
    g.add_argument("--quiet", action="store_true", help="no progress bar, no warnings block")
    _output_options(perf, "run" if grading else "level")
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
        "--grade-workers",
        type=_positive_int,
        help="grading processes (default: CPUs, at most 8)",
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


def _sim_arguments(p: argparse.ArgumentParser) -> None:
    from perfbench import sim
    from perfbench.sim.process import add_process_arguments

    add_process_arguments(p)
    sim.add_arguments(p)


def _version() -> str:
    from perfbench.version import __version__

    return __version__


# -- flags into specs ------------------------------------------------------------------------


def _loads(
    ns: argparse.Namespace,
    parallel: list[int] | None,
    rate: list[float] | None,
    number: list[int] | None,
) -> tuple[Any, ...]:
    from perfbench.config import paired_loads

    return paired_loads(
        parallel=parallel,
        number=number,
        rate=rate,
        max_concurrency=ns.max_concurrency,
        burstiness=ns.burstiness,
        duration=ns.duration,
        warmup=ns.warmup,
        seed=ns.seed,
        arrival=ns.arrival,
        ramp_from=ns.ramp_from,
        ramp_to=ns.ramp_to,
        trace=ns.trace,
        trace_speed=ns.trace_speed,
        trace_block_size=ns.trace_block_size,
    )


def _client(ns: argparse.Namespace) -> Any:
    from perfbench.config import ClientSpec, parse_extra_body, parse_headers

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
        extra_body=parse_extra_body(ns.extra_body),
        headers=parse_headers(ns.header),
        api_key=ns.api_key or os.environ.get("OPENAI_API_KEY") or None,
        connect_timeout=ns.connect_timeout,
        read_timeout=ns.read_timeout,
        thinking=ns.thinking,
    )


def _fraction(text: str) -> float:
    try:
        value = float(text.rstrip("%")) / (100 if text.endswith("%") else 1)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: give a fraction, e.g. 0.05 or 5%") from None
    if not 0 <= value <= 1:
        raise argparse.ArgumentTypeError(f"{text!r}: a fraction between 0 and 1, e.g. 0.05")
    return value


def _workers(text: str) -> int | str:
    if text == "auto":
        return "auto"
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: give a whole number or auto") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value}: at least 1 (1 is this process alone)")
    return value


def _perf_spec(ns: argparse.Namespace, argv: Sequence[str], loads: tuple[Any, ...]) -> Any:
    from perfbench.config import (
        DeterminismSpec,
        PerfSpec,
        ServerMetricsSpec,
        WorkloadSpec,
        parse_sim_args,
    )
    from perfbench.errors import UsageError
    from perfbench.redact import redact_argv

    if getattr(ns, "rerun", None) is not None and not ns.determinism:
        raise UsageError("--rerun goes with --determinism: add it, or drop --rerun")

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
            prefix_groups=ns.prefix_groups,
            reuse_prompts=ns.reuse_prompts,
            prompt_template=ns.prompt_template,
            shuffle=ns.shuffle,
            mix=WorkloadSpec.parse_mix(ns.mix or []),
            n=ns.n,
            start_date=ns.start_date,
            end_date=ns.end_date,
            multi_turn=ns.multi_turn,
            turns=ns.turns,
            think_time=ns.think_time,
        ),
        db_path=_db_path(ns),
        name=ns.name,
        sim_args=parse_sim_args(ns.sim_args),
        command=shlex.join([PROG, *redact_argv(list(argv))]),
        grade=_grade_spec(ns) if grading else None,
        server_metrics=ServerMetricsSpec(
            enabled=ns.server_metrics,
            interval=ns.server_metrics_interval,
            url=ns.server_metrics_url,
        ),
        workers=ns.workers,
        ray=ns.ray,
        on_worker_loss=ns.on_worker_loss,
        wait_for_server=ns.wait_for_server,
        max_error_rate=ns.max_error_rate,
        repeat=getattr(ns, "repeat", 1),
        resume=getattr(ns, "resume", None),
        pause_s=getattr(ns, "x_sleep", None) or 0.0,
        determinism=DeterminismSpec(rerun=ns.rerun) if getattr(ns, "determinism", False) else None,
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
        workers=ns.grade_workers,
        timeout=ns.grade_timeout,
    )


# -- output ----------------------------------------------------------------------------------


def _form(ns: argparse.Namespace) -> Any:
    return "json" if ns.json else "csv" if getattr(ns, "csv", False) else "table"


def _emit(result: Any, ns: argparse.Namespace) -> None:
    from perfbench.report.output import emit

    emit(result, _form(ns), quiet=getattr(ns, "quiet", False))


def _live(ns: argparse.Namespace) -> Any:
    """The live progress bar, for a person at a terminal who asked for the table."""
    if ns.quiet or _form(ns) != "table" or not sys.stdout.isatty():
        return None
    from perfbench.report.progress import ProgressObserver

    return ProgressObserver()


# -- commands: one library call each ---------------------------------------------------------


#: flags a resumed run may take anew (where the server is, its secrets, how to report);
#: everything that shapes the workload or the load comes from the run's own command
_RESUME_FLAGS = {
    "--resume", "--db", "--outputs-dir", "--url", "--api-key", "--header", "-H", "--quiet",
    "--json", "--csv", "--workers", "--ray", "--on-worker-loss", "--wait-for-server",
    "--max-error-rate", "--connect-timeout", "--read-timeout", "--server-metrics-url",
    "--judge-url", "--judge-api-key",
}  # fmt: skip


def _resumed(ns: argparse.Namespace, argv: Sequence[str]) -> tuple[argparse.Namespace, list[str]]:
    """The namespace and argv of the run ``--resume`` names: its stored command, parsed again,
    with the flags given now that may change (_RESUME_FLAGS) laid over it."""
    from perfbench.errors import UsageError
    from perfbench.store import Store

    given = {a.split("=", 1)[0] for a in argv if a.startswith("-")}
    refused = sorted(given - _RESUME_FLAGS)
    if refused:
        raise UsageError(
            f"--resume takes the run's own flags; drop {', '.join(refused)} (it may be given "
            "anew: the server's address and secrets, --workers, the database and output flags)"
        )
    db = _db_path(ns)
    if not db.exists():
        raise UsageError(f"no database at {db}: --resume needs the run's --db or --outputs-dir")
    store = Store(db)
    try:
        run = store.run(ns.resume)
    finally:
        store.close()
    words = shlex.split(run.command or "")
    if words[:2] != [PROG, "perf"]:
        made = f"`{words[0]} {words[1]}`" if len(words) > 1 else "the Python API"
        raise UsageError(
            f"run {ns.resume} was made by {made}, not `perfbench perf`: resume it from Python "
            "with PerfSpec(resume=ID) and its own spec"
        )
    old_argv = words[1:]
    try:
        old = build_parser().parse_args(old_argv)
    except SystemExit:
        raise UsageError(
            f"the command of run {ns.resume} cannot be read back ({run.command}): resume it "
            "from Python with PerfSpec(resume=ID)"
        ) from None
    for flag in _RESUME_FLAGS - {"--resume", "-H"}:
        name = flag[2:].replace("-", "_")
        if flag in given or (name == "header" and "-H" in given) or name in ("db", "outputs_dir"):
            setattr(old, name, getattr(ns, name))
    secret = f"run {ns.resume} was sent with a secret, which perfbench never stores"
    for name, env in (("api_key", "OPENAI_API_KEY"), ("judge_api_key", "PERFBENCH_JUDGE_API_KEY")):
        if getattr(old, name, None) == "<redacted>":
            setattr(old, name, None)
            if not os.environ.get(env):
                flag = "--" + name.replace("_", "-")
                raise UsageError(f"{secret}: pass {flag} again (or set {env})")
    for name in ("url", "server_metrics_url", "judge_url"):
        if "<redacted>" in (getattr(old, name, None) or ""):
            raise UsageError(f"{secret} (a password in it): pass --{name.replace('_', '-')} again")
    if any("<redacted>" in h for h in old.header or []):
        raise UsageError(f"{secret} (a header): pass its --header again")
    from perfbench.interop import flags as other_tools

    other_tools.fold(old, old_argv)  # the notes were printed when the run was made
    old.resume, old.repeat = ns.resume, 1
    return old, old_argv


def cmd_perf(ns: argparse.Namespace, argv: Sequence[str]) -> int:
    from perfbench.interop import flags as other_tools
    from perfbench.runner import run

    if ns.resume is not None:
        ns, argv = _resumed(ns, argv)
    else:
        other_tools.print_notes(other_tools.fold(ns, argv), PROG)
    parallel = ns.parallel
    if ns.determinism and not parallel and not ns.rate:
        parallel = list(DETERMINISM_LEVELS)
    spec = _perf_spec(ns, argv, _loads(ns, parallel, ns.rate, ns.number))
    observer = _live(ns)
    if ns.x_log_every:
        from perfbench.report.progress import LineObserver

        observer = LineObserver(ns.x_log_every, PROG)
    result = run(spec, observer=observer)
    _emit(result, ns)
    if ns.x_result is not None and result.runs:
        from perfbench.interop import vllm

        for path in vllm.save(spec.db_path, [r.run_id for r in result.runs], ns.x_result):
            print(f"{PROG}: wrote {path} (vllm bench serve's result file)", file=sys.stderr)
    if ns.x_evalscope and result.runs:
        from perfbench.interop import evalscope

        folder = evalscope.save(
            spec.db_path,
            [r.run_id for r in result.runs],
            ns.outputs_dir,
            name=ns.name,
            timestamp=not ns.x_no_timestamp,
        )
        print(f"{PROG}: wrote {folder} (evalscope perf's output folder)", file=sys.stderr)
    for line in [*result.lost, *result.too_many_errors()]:
        print(f"{PROG}: {line}", file=sys.stderr)
    if result.failure is not None:
        print(f"{PROG}: {result.failure}", file=sys.stderr)
    for line in result.notes:
        print(f"{PROG}: {line}", file=sys.stderr)
    if result.determinism_error is not None:
        print(f"{PROG}: error: determinism: {result.determinism_error}", file=sys.stderr)
    if result.grade_error is not None:
        print(f"{PROG}: error: grading failed: {result.grade_error}", file=sys.stderr)
        return max(result.exit_code, result.grade_error.exit_code)
    if result.stopped_by is not None:
        print(
            f"{PROG}: stopped by signal {result.stopped_by}; everything measured is in {spec.db_path}",
            file=sys.stderr,
        )
    return result.exit_code


def cmd_sweep(ns: argparse.Namespace, argv: Sequence[str]) -> int:
    from perfbench.capacity.slo import parse_slos
    from perfbench.capacity.sweep import SweepSpec, sweep
    from perfbench.errors import UsageError

    if ns.rate and ns.parallel:
        raise UsageError("sweep levels are --parallel or --rate values, not both")
    if ns.auto and (ns.rate or ns.parallel):
        raise UsageError("--auto searches for the levels: drop --parallel/--rate, or drop --auto")
    if ns.number and len(ns.number) > 1:
        raise UsageError("a sweep takes one --number: the requests of every level")
    mode: Literal["concurrency", "rate"] = "rate" if ns.rate or ns.auto == "rate" else "concurrency"
    levels = tuple(ns.rate or ns.parallel or ()) if not ns.auto else ()
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
    # every level is this template with its own parallel/rate and number (SweepSpec.load)
    template = _loads(ns, None, [1.0], None) if mode == "rate" else _loads(ns, [1], None, None)
    base = _perf_spec(ns, argv, template)
    result = sweep(base, spec, observer=_live(ns))
    _emit(result, ns)
    if result.stopped_by is not None:
        print(
            f"{PROG}: sweep stopped by signal {result.stopped_by} after {len(result.levels)} "
            f"levels; the answer covers those; everything measured is in {base.db_path}",
            file=sys.stderr,
        )
    return int(result.exit_code)


def cmd_plan(ns: argparse.Namespace, argv: Sequence[str]) -> int:
    from perfbench.capacity.plan import PlanSpec, plan
    from perfbench.capacity.slo import parse_slos

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
    _emit(result, ns)
    return 1 if ns.slo and result.recommended is None else 0


def cmd_compare(ns: argparse.Namespace, argv: Sequence[str]) -> int:
    from perfbench.compare.runs import (
        CompareSpec,
        compare,
        gate_exit_code,
        parse_threshold,
        parse_thresholds,
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
    result = compare(_db_path(ns), ns.base, ns.new, spec)
    if ns.markdown:
        sys.stdout.write(result.to_markdown())
    else:
        _emit(result, ns)
    return gate_exit_code(result)


def cmd_report(ns: argparse.Namespace, argv: Sequence[str]) -> int:
    from perfbench.errors import UsageError
    from perfbench.report.report import report

    if ns.determinism:
        from perfbench.compare.determinism import determinism

        if ns.errors or ns.html:
            raise UsageError("--determinism prints its own figures: drop --errors and --html")
        _emit(determinism(_db_path(ns), ns.runs, name=ns.name, tokenizer=ns.tokenizer), ns)
        return 0
    if ns.tokenizer is not None:
        raise UsageError("--tokenizer goes with --determinism: add it, or drop --tokenizer")
    _emit(report(_db_path(ns), ns.runs, name=ns.name, errors=ns.errors, html=ns.html), ns)
    return 0


def cmd_import(ns: argparse.Namespace, argv: Sequence[str]) -> int:
    from perfbench.interop.imports import import_results

    _emit(import_results(_db_path(ns), ns.files, tool=ns.tool, name=ns.name), ns)
    return 0


def cmd_runs(ns: argparse.Namespace, argv: Sequence[str]) -> int:
    from perfbench.report.runs import runs

    _emit(runs(_db_path(ns)), ns)
    return 0


def cmd_grade(ns: argparse.Namespace, argv: Sequence[str]) -> int:
    from perfbench.grade.run import grade_runs
    from perfbench.report.output import write_jsonl

    spec = _grade_spec(ns)
    if ns.quiet or _form(ns) != "table" or not sys.stderr.isatty():
        grades = grade_runs(_db_path(ns), ns.runs, spec)
    else:
        from rich.progress import Progress

        with Progress(transient=True) as bar:
            task = bar.add_task("grading", total=None)
            grades = grade_runs(
                _db_path(ns),
                ns.runs,
                spec,
                progress=lambda done, total: bar.update(task, completed=done, total=total),
            )
    if ns.samples:
        write_jsonl(ns.samples, grades.sample_rows(), "--samples")
    _emit(grades, ns)
    return 0


def cmd_compare_answers(ns: argparse.Namespace, argv: Sequence[str]) -> int:
    from perfbench.compare.answers import compare_answers
    from perfbench.report.output import write_jsonl

    result = compare_answers(_db_path(ns), ns.run_a, ns.run_b, alpha=ns.alpha, show=ns.show)
    for run_id in result.graded_now:
        print(f"{PROG}: run {run_id} was not graded; graded it first", file=sys.stderr)
    if ns.jsonl:
        write_jsonl(ns.jsonl, result.comparison.to_jsonl_rows(), "--jsonl")
    _emit(result, ns)
    return 0


def cmd_datasets(ns: argparse.Namespace, argv: Sequence[str]) -> int:
    from perfbench.workload import datasets

    _emit(datasets(), ns)
    return 0


def cmd_sim(ns: argparse.Namespace, argv: Sequence[str]) -> int:
    from perfbench import sim

    try:
        config = sim.config_from_args(ns)
    except ValueError as exc:
        from perfbench.errors import ConfigError

        raise ConfigError(str(exc)) from None
    sim.serve(config, host=ns.host, port=ns.port, parent_pid=ns.parent_pid)
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
