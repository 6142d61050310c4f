"""The flags of ``evalscope perf`` and ``vllm bench serve``, under their own names, folded into
perfbench's own after parsing, so that a pasted command runs as written (docs/drop-in.md).

Each flag keeps its tool's meaning: ``-n`` is EvalScope's ``--number``; ``--num-prompts`` and
``--request-rate`` are vLLM's; ``--headers K=V`` and ``--header K=V`` are both tools' header
forms; ``--backend openai`` is vLLM's completions API. A flag and its alias given with different
values is a usage error (one line); a flag that has no meaning here is a one-line note, and the
run goes on. The folding is one function, :func:`fold`, over the parsed namespace.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from collections.abc import Sequence
from typing import Any

from perfbench.errors import UsageError

#: flags accepted for a pasted command that change nothing here, and why
NO_MEANING = {
    # evalscope perf
    "--wandb-api-key": "results go to perfbench's database, not to Weights & Biases",
    "--swanlab-api-key": "results go to perfbench's database, not to SwanLab",
    "--swanlab-host": "results go to perfbench's database, not to SwanLab",
    "--visualizer": "results go to perfbench's database; `perfbench report --html` draws them",
    "--debug": "every request's status and error message are in the database already",
    "--no-test-connection": "perfbench always checks the server before a run (under a second)",
    "--total-timeout": "a stalled stream fails on --read-timeout; a long one is not cut short",
    "--open-loop": "--rate makes an open loop already",
    "--enable-progress-tracker": "the progress bar shows on a terminal (--quiet hides it)",
    "--db-commit-interval": "rows are written every half second",
    "--queue-size-multiplier": "perfbench holds no request queue of its own",
    "--in-flight-task-multiplier": "perfbench holds no request queue of its own",
    # vllm bench serve
    "--tokenizer-mode": "--tokenizer loads a tokenizer as transformers does (mode auto)",
    "--trust-remote-code": "only the tokenizer is loaded, from its files",
    "--disable-tqdm": "the progress bar shows only on a terminal (--quiet hides it)",
    "--profile": "perfbench does not drive the server's profiler",
    "--request-id-prefix": "requests are told apart by their index in the database",
    "--ready-check-timeout-sec": "the pre-run check fails in under a second; --wait-for-server "
    "waits for a server that goes away mid-run",
    "--disable-shuffle": "perfbench sends a dataset's rows in order unless --shuffle",
    "--no-oversample": "perfbench never pads a dataset with repeated rows to reach --number",
    "--plot-timeline": "`perfbench report --html` draws the timeline",
    "--plot-dataset-stats": "`perfbench report --html` draws the distributions",
    "--timeline-itl-thresholds": "`perfbench report --html` draws the timeline",
    "--skip-tokenizer-init": "perfbench loads a tokenizer only when --tokenizer is given",
    "--enable-multimodal-chat": "perfbench sends text prompts only",
    "--self-timed": "perfbench times every request from its own send",
    "--no-self-timed": "perfbench times every request from its own send",
    "--probe-request-rate": "perfbench does not send probe requests",
    "--attn-implementation": "it sets up EvalScope's local model (--api local), which perfbench "
    "does not run",
    "--alias": "runs are named by --name",
    "--enable-pd-metrics": "perfbench measures the client side; the server's /metrics are "
    "scraped by default",
    "--data-source": "hub datasets come from the Hugging Face hub (HF_ENDPOINT for a mirror)",
}

#: flags whose meaning perfbench cannot honour: ignoring them would measure another workload,
#: so each is one line and exit 2, saying why and what to use instead
UNSUPPORTED = {
    # evalscope perf
    "--min-turns": "perfbench's synthetic conversations have one length: give --turns N",
    "--max-turns": "perfbench's synthetic conversations have one length: give --turns N "
    "(with --dataset sharegpt, the most turns of a recorded one)",
    "--multi-turn-args": "give --turns N and --think-time SECONDS",
    "--image-width": "perfbench sends text prompts only",
    "--image-height": "perfbench sends text prompts only",
    "--image-format": "perfbench sends text prompts only",
    "--image-num": "perfbench sends text prompts only",
    "--image-patch-size": "perfbench sends text prompts only",
    "--query-template": "give the request fields with --extra-body and the prompt's form with "
    "--prompt-template",
    "--apply-chat-template": "perfbench sends chat messages to /chat/completions and raw text to "
    "/completions; choose by --url",
    "--tokenize-prompt": "perfbench sends text, not token ids",
    "--dataset-offset": "perfbench starts at a dataset's first row (--shuffle draws at random)",
    "--dataset-args": "perfbench's datasets take no extra arguments; `perfbench datasets` lists them",
    "--scenario": "choose the load with --parallel/--rate and the prompts with --dataset",
    "--sla-auto-tune": "`perfbench sweep --slo` and `perfbench plan` find the load that meets an SLO",
    "--sla-variable": "`perfbench sweep --slo` finds the load that meets an SLO",
    "--sla-params": "`perfbench sweep --slo` finds the load that meets an SLO",
    "--sla-num-runs": "`perfbench sweep --slo` finds the load that meets an SLO",
    "--sla-upper-bound": "`perfbench sweep --slo` finds the load that meets an SLO",
    "--sla-lower-bound": "`perfbench sweep --slo` finds the load that meets an SLO",
    "--sla-fixed-parallel": "`perfbench sweep --slo` finds the load that meets an SLO",
    "--sla-number-multiplier": "`perfbench sweep --slo` finds the load that meets an SLO",
    # vllm bench serve
    "--insecure": "perfbench verifies TLS certificates; use a certificate the system trusts",
    "--lora-modules": "perfbench sends every request to the one --model",
    "--lora-assignment": "perfbench sends every request to the one --model",
    "--ramp-up-strategy": "vLLM ramps by request count; perfbench ramps over time: "
    "--ramp-from R0 --ramp-to R1 --duration S",
    "--ramp-up-start-rps": "use --ramp-from R0 --ramp-to R1 --duration S",
    "--ramp-up-end-rps": "use --ramp-from R0 --ramp-to R1 --duration S",
    "--skip-chat-template": "perfbench sends chat messages to /chat/completions and raw text to "
    "/completions; choose by --endpoint",
    "--random-batch-size": "perfbench sends one prompt per request",
    "--custom-output-len": "use --dataset jsonl --dataset-path FILE and --max-tokens",
    "--custom-ensure-client-side-data": "use --dataset jsonl --dataset-path FILE",
    **{
        f"--{name}": f"it belongs to vLLM's {dataset} dataset, which perfbench does not have "
        "(`perfbench datasets` lists perfbench's)"
        for dataset, names in (
            ("sharegpt", ("sharegpt-output-len",)),
            ("spec_bench", ("spec-bench-category", "spec-bench-output-len")),
            ("speed_bench", ("speed-bench-category", "speed-bench-dataset-subset",
                             "speed-bench-output-len")),
            ("timed trace", ("timed-trace-chunk-hash-size", "timed-trace-label-hash-ids",
                             "timed-trace-label-input-length", "timed-trace-label-output-length",
                             "timed-trace-label-timestamp", "timed-trace-sec-multiplier")),
            ("blazedit", ("blazedit-max-distance", "blazedit-min-distance")),
            ("ASR", ("asr-max-audio-len-sec", "asr-min-audio-len-sec")),
            ("reranker", ("no-reranker",)),
            ("random-mm", ("random-mm-base-items-per-request", "random-mm-bucket-config",
                           "random-mm-limit-mm-per-prompt", "random-mm-num-mm-items-range-ratio")),
            ("hf", ("hf-name", "hf-output-len", "hf-split", "hf-subset")),
            ("BFCL", ("bfcl-categories",)),
            ("prefix_repetition", ("prefix-repetition-num-prefixes",
                                   "prefix-repetition-output-len", "prefix-repetition-prefix-len",
                                   "prefix-repetition-suffix-len")),
        )
        for name in names
    },
}  # fmt: skip

#: vLLM's backends → perfbench's --api (None: from the URL)
BACKENDS = {
    "openai": "openai-completions",
    "vllm": "openai-completions",
    "openai-chat": "openai-chat",
}


def add_arguments(perf: argparse.ArgumentParser) -> None:
    """The other tools' flags, in a group of their own (their dests start with ``x_``)."""
    g = perf.add_argument_group(
        "from evalscope perf and vllm bench serve (their meaning; docs/drop-in.md)"
    )
    g.add_argument(
        "-n", dest="x_number", metavar="N", type=_count, nargs="+", help="evalscope: --number"
    )
    g.add_argument(
        "--num-prompts", dest="x_num_prompts", metavar="N", type=_count, help="vllm: --number"
    )
    g.add_argument(
        "--request-rate", dest="x_request_rate", metavar="R", type=float, help="vllm: --rate"
    )
    g.add_argument(
        "--headers", dest="x_headers", nargs="+", metavar="K=V", help="evalscope: --header K:V"
    )
    g.add_argument("--backend", dest="x_backend", choices=sorted(BACKENDS), help="vllm: --api")
    g.add_argument(
        "--base-url", dest="x_base_url", metavar="URL", help="vllm: the server root (--url)"
    )
    g.add_argument(
        "--host", dest="x_host", metavar="HOST", help="vllm: with --port and --endpoint, the --url"
    )
    g.add_argument("--port", dest="x_port", metavar="PORT", type=int, help="vllm: see --host")
    g.add_argument(
        "--endpoint", dest="x_endpoint", metavar="PATH", help="vllm: see --host (/v1/completions)"
    )
    g.add_argument(
        "--served-model-name", dest="x_served_model", metavar="NAME", help="vllm: --model"
    )
    g.add_argument("--dataset-name", dest="x_dataset_name", metavar="NAME", help="vllm: --dataset")
    g.add_argument("--random-input-len", dest="x_random_input_len", metavar="TOKENS", type=int)
    g.add_argument("--random-output-len", dest="x_random_output_len", metavar="TOKENS", type=int)
    g.add_argument("--random-range-ratio", dest="x_random_range_ratio", metavar="RATIO", type=float)
    g.add_argument("--random-prefix-len", dest="x_random_prefix_len", metavar="TOKENS", type=int)
    g.add_argument("--ignore-eos", dest="x_ignore_eos", action="store_true", help="vllm")
    g.add_argument(
        "--num-warmups", dest="x_num_warmups", metavar="N", type=int, help="vllm: --warmup"
    )
    g.add_argument(
        "--warmup-num",
        dest="x_warmup_num",
        type=float,
        metavar="X",
        help="evalscope: a count, or a share",
    )
    g.add_argument(
        "--extra-args", dest="x_extra_args", metavar="JSON", help="evalscope: --extra-body"
    )
    g.add_argument(
        "--prefix-length", dest="x_prefix_length", metavar="TOKENS", type=int, help="evalscope"
    )
    g.add_argument(
        "--prefix-count", dest="x_prefix_count", metavar="G", type=int, help="evalscope: groups"
    )
    g.add_argument(
        "--min-prompt-length", dest="x_min_prompt", metavar="TOKENS", type=int, help="evalscope"
    )
    g.add_argument(
        "--max-prompt-length", dest="x_max_prompt", metavar="TOKENS", type=int, help="evalscope"
    )
    g.add_argument(
        "--sleep-interval",
        dest="x_sleep",
        type=float,
        metavar="S",
        help="evalscope: seconds between levels",
    )
    g.add_argument(
        "--num-workers", dest="x_num_workers", type=int, metavar="N", help="evalscope: --workers"
    )
    g.add_argument(
        "--chat-template-kwargs", dest="x_chat_kwargs", metavar="JSON", help="vllm: request body"
    )
    g.add_argument("--use-beam-search", dest="x_beam", action="store_true", help="vllm: body")
    g.add_argument(
        "--log-every-n-query",
        dest="x_log_every",
        type=int,
        metavar="N",
        help="evalscope: a progress line",
    )
    for flag in ("--frequency-penalty", "--presence-penalty", "--repetition-penalty", "--min-p"):
        g.add_argument(flag, dest="x_body_" + flag[2:].replace("-", "_"), type=float, metavar="X")
    g.add_argument(
        "--logprobs", dest="x_body_logprobs", metavar="N", nargs="?", const=True, type=int
    )
    g.add_argument("--n-choices", dest="x_body_n", metavar="N", type=int, help="evalscope: n")
    g.add_argument("--stop", dest="x_body_stop", metavar="TEXT", nargs="*")
    g.add_argument(
        "--stop-token-ids", dest="x_body_stop_token_ids", metavar="ID", nargs="*", type=int
    )
    for flag in NO_MEANING:
        g.add_argument(
            flag, dest="x_none_" + flag[2:].replace("-", "_"), nargs="?", const=True, metavar="…"
        )
    for flag in UNSUPPORTED:
        g.add_argument(flag, dest="x_not_" + flag[2:].replace("-", "_"), nargs="*", metavar="…")
    e = perf.add_argument_group("evalscope perf's output folder (docs/drop-in.md)")
    e.add_argument(
        "--evalscope-outputs",
        dest="x_evalscope",
        action="store_true",
        help="also write EvalScope's output folder under --outputs-dir: "
        "<time>/<name>/parallel_<P>_number_<N>/benchmark_summary.json, benchmark_percentile.json",
    )
    e.add_argument(
        "--no-timestamp",
        dest="x_no_timestamp",
        action="store_true",
        help="evalscope: no <time> folder level",
    )
    r = perf.add_argument_group("vllm bench serve's result file (docs/drop-in.md)")
    r.add_argument("--save-result", dest="x_save", action="store_true", help="write it")
    r.add_argument("--save-detailed", dest="x_detailed", action="store_true")
    r.add_argument("--append-result", dest="x_append", action="store_true", help="JSON Lines")
    r.add_argument(
        "--result-dir", dest="x_result_dir", metavar="DIR", help="(default: the current folder)"
    )
    r.add_argument("--result-filename", dest="x_result_filename", metavar="FILE")
    r.add_argument(
        "--label", dest="x_label", metavar="LABEL", help="the file name's prefix (default: backend)"
    )
    r.add_argument("--metadata", dest="x_metadata", nargs="*", default=[], metavar="K=V")
    r.add_argument(
        "--percentile-metrics", dest="x_metrics", metavar="LIST", default="ttft,tpot,itl"
    )
    r.add_argument("--metric-percentiles", dest="x_percentiles", metavar="LIST", default="99")
    r.add_argument("--goodput", dest="x_goodput", nargs="+", default=[], metavar="KEY:MS")


def _count(text: str) -> int:
    """A whole number of requests, 1 or more (cli.py's own check; this module cannot import
    cli.py, which imports it)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text} must be at least 1")
    return value


def fold(ns: argparse.Namespace, argv: Sequence[str]) -> list[str]:
    """Fold the other tools' flags into perfbench's own, in place; the notes to print (one line
    each) for flags that change nothing here. UsageError when a flag and its alias disagree."""
    given = {a.split("=", 1)[0] for a in argv if a.startswith("-")}
    for flag in (a.split("=", 1)[0] for a in argv):  # the first in the command's own order
        if flag in UNSUPPORTED:
            raise UsageError(f"{flag} is not supported here: {UNSUPPORTED[flag]}")
    notes = [
        f"note: {flag} has no meaning here ({why}); ignored"
        for flag, why in NO_MEANING.items()
        if flag in given
    ]

    def take(ours: str, flag: str, theirs: Any, their_flag: str) -> None:
        current = getattr(ns, ours)
        if theirs is None:
            return
        if flag in given and current != theirs:
            raise UsageError(
                f"{flag} {_show(current)} and {their_flag} {_show(theirs)} disagree: give one"
            )
        setattr(ns, ours, theirs)

    take("number", "--number", ns.x_number, "-n")
    if ns.x_num_prompts is not None:
        take(
            "number", "--number" if "-n" not in given else "-n", [ns.x_num_prompts], "--num-prompts"
        )
    if ns.x_request_rate is not None:
        take("rate", "--rate", [ns.x_request_rate], "--request-rate")
    if ns.rate and all(r < 0 for r in ns.rate):  # evalscope: -1 is no pacing (a closed loop)
        ns.rate = None
    shaped = ns.trace is not None or ns.ramp_from is not None  # times of their own
    if ns.max_concurrency is not None and not ns.rate and not ns.parallel and not shaped:
        ns.rate = [math.inf]  # vLLM: --max-concurrency alone sends at once, C at a time
    if ns.x_headers:
        ns.header = [*ns.header, *ns.x_headers]
    if ns.x_backend is not None:
        take("api", "--api", BACKENDS[ns.x_backend], "--backend")
    if ns.api == "openai":  # evalscope: the OpenAI protocol, whichever endpoint --url names
        ns.api = None
    _url(ns, given, take)
    if ns.x_served_model is not None:
        take("model", "--model", ns.x_served_model, "--served-model-name")
    if ns.x_dataset_name is not None:
        take("dataset", "--dataset", ns.x_dataset_name, "--dataset-name")
    for ours, theirs in (
        ("input_len", "random_input_len"),
        ("output_len", "random_output_len"),
        ("range_ratio", "random_range_ratio"),
        ("prefix_len", "random_prefix_len"),
    ):
        value = getattr(ns, "x_" + theirs)
        if value is not None:
            take(ours, "--" + ours.replace("_", "-"), value, "--" + theirs.replace("_", "-"))
    if ns.x_prefix_length is not None:
        take("prefix_len", "--prefix-len", ns.x_prefix_length, "--prefix-length")
    if ns.x_prefix_count is not None:  # distinct prefixes, round-robin: perfbench's groups
        take("prefix_groups", "--prefix-groups", ns.x_prefix_count, "--prefix-count")
    if ns.x_min_prompt is not None or ns.x_max_prompt is not None:
        _prompt_lengths(ns, take)
    if ns.x_num_warmups is not None:
        take("warmup", "--warmup", ns.x_num_warmups, "--num-warmups")
    if ns.x_num_workers:  # evalscope's 0 is its default: this one process
        take("workers", "--workers", ns.x_num_workers, "--num-workers")
    if ns.x_sleep is not None and ns.x_sleep < 0:
        raise UsageError(f"--sleep-interval {ns.x_sleep:g}: give 0 or more seconds")
    if ns.x_warmup_num is not None:
        share = ns.x_warmup_num
        if 0 < share < 1:  # a share of the first --number
            share = max(1, int(share * (ns.number or [0])[0]))
        take("warmup", "--warmup", int(share), "--warmup-num")
    body = _body(ns)
    if body:
        extra = json.loads(ns.extra_body) if ns.extra_body else {}
        ns.extra_body = json.dumps({**body, **extra})
    ns.x_result = _result_options(ns)
    return notes


def _result_options(ns: argparse.Namespace) -> dict[str, Any] | None:
    """vLLM's result-file flags, checked before the run (None: no file asked for)."""
    from perfbench.interop import vllm

    options = {
        "metrics": vllm.parse_metrics(ns.x_metrics),
        "percentiles": vllm.parse_percentiles(ns.x_percentiles),
        "goodput": vllm.parse_goodput(ns.x_goodput),
        "detailed": ns.x_detailed,
        "label": ns.x_label,
        "metadata": {},
    }
    for item in ns.x_metadata:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise UsageError(f"--metadata {item!r} is not KEY=VALUE")
        options["metadata"][key.strip()] = value.strip()
    if not (ns.x_save or ns.x_append):
        return None
    options.update(directory=ns.x_result_dir, filename=ns.x_result_filename, append=ns.x_append)
    return options


def _url(ns: argparse.Namespace, given: set[str], take: Any) -> None:
    """vLLM's --base-url / --host / --port / --endpoint → one --url."""
    if ns.x_base_url is None and ns.x_host is None and ns.x_port is None and ns.x_endpoint is None:
        return
    endpoint = ns.x_endpoint or "/v1/completions"
    if not endpoint.startswith("/"):
        endpoint = "/" + endpoint
    if ns.x_base_url is not None:
        root = ns.x_base_url.rstrip("/")
    else:
        host = ns.x_host or "127.0.0.1"
        host = f"[{host}]" if ":" in host and not host.startswith("[") else host
        root = f"http://{host}:{ns.x_port or 8000}"
    take("url", "--url", root + endpoint, "--base-url/--host/--port/--endpoint")


def _prompt_lengths(ns: argparse.Namespace, take: Any) -> None:
    """evalscope's --min/--max-prompt-length: for the random dataset, lengths uniform between
    them (perfbench's --input-len at the midpoint, ±--range-ratio); a filter elsewhere, which
    perfbench has not got."""
    if ns.dataset != "random":
        raise UsageError(
            "--min-prompt-length/--max-prompt-length filter a dataset's prompts by length, which "
            "perfbench does not do; with --dataset random they set the prompt lengths"
        )
    lo = ns.x_min_prompt if ns.x_min_prompt is not None else ns.x_max_prompt
    hi = ns.x_max_prompt if ns.x_max_prompt is not None else ns.x_min_prompt
    if not 0 < lo <= hi:
        raise UsageError(
            f"--min-prompt-length {lo} and --max-prompt-length {hi}: give 0 < min ≤ max"
        )
    take("input_len", "--input-len", round((lo + hi) / 2), "--min/--max-prompt-length")
    take("range_ratio", "--range-ratio", (hi - lo) / (hi + lo), "--min/--max-prompt-length")


def _body(ns: argparse.Namespace) -> dict[str, Any]:
    """Sampling fields both tools send in the request body."""
    out: dict[str, Any] = {}
    for key, value in vars(ns).items():
        if key.startswith("x_body_") and value is not None and value != []:
            out[key[len("x_body_") :]] = value
    if ns.x_ignore_eos:
        out["ignore_eos"] = True
    if ns.x_beam:
        out["use_beam_search"] = True
    if ns.x_chat_kwargs:
        out["chat_template_kwargs"] = _object(ns.x_chat_kwargs, "--chat-template-kwargs")
    if ns.x_extra_args:
        out.update(_object(ns.x_extra_args, "--extra-args"))
    return out


def _object(text: str, flag: str) -> dict[str, Any]:
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise UsageError(f"{flag} is not JSON ({exc.msg}): give an object") from None
    if not isinstance(value, dict):
        raise UsageError(f"{flag} must be a JSON object, e.g. '{{\"enable_thinking\": false}}'")
    return value


def _show(value: Any) -> str:
    if isinstance(value, list):
        return " ".join(map(str, value))
    return str(value)


def print_notes(notes: Sequence[str], prog: str) -> None:
    for line in notes:
        print(f"{prog}: {line}", file=sys.stderr)
