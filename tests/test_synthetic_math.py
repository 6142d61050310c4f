"""synthetic_math: every gold answer re-derived by a second implementation, and the loader.

The generator (scripts/make_synthetic_math.py) builds each problem and computes its answer. Here
nothing of it is imported: the equations and expressions shown to the model are parsed back from
their LaTeX, and each answer is derived another way (Cramer's rule, brute-force search, term by
term sums, repeated multiplication) and compared, in canonical form, with the shipped answer.
"""

from __future__ import annotations

import ast
import json
import os
import re
import subprocess
import sys
from collections import Counter
from collections.abc import Callable
from fractions import Fraction
from itertools import count
from pathlib import Path
from typing import Any

import pytest

from perfbench.config import WorkloadSpec
from perfbench.errors import DatasetError
from perfbench.workload import synthetic_math  # noqa: F401  (registers the dataset)
from perfbench.workload.base import DATASETS_DIR, load_prompts

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "make_synthetic_math.py"
SHIPPED = DATASETS_DIR / "synthetic_math.jsonl"
ROWS: list[dict[str, Any]] = [json.loads(line) for line in SHIPPED.read_text("utf-8").splitlines()]

Answer = Fraction | tuple[Fraction, ...]


# --- a small exact algebra: polynomials in x and y ------------------------------------------------


class Poly:
    """``{(power of x, power of y): coefficient}`` with Fraction coefficients."""

    def __init__(self, terms: dict[tuple[int, int], Fraction]) -> None:
        self.terms = {k: v for k, v in terms.items() if v != 0}

    @staticmethod
    def of(c: int | Fraction) -> Poly:
        return Poly({(0, 0): Fraction(c)})

    def __add__(self, other: Poly) -> Poly:
        keys = self.terms.keys() | other.terms.keys()
        return Poly({k: self.c(*k) + other.c(*k) for k in keys})

    def __neg__(self) -> Poly:
        return Poly({k: -v for k, v in self.terms.items()})

    def __sub__(self, other: Poly) -> Poly:
        return self + -other

    def __mul__(self, other: Poly) -> Poly:
        out: dict[tuple[int, int], Fraction] = {}
        for (a, b), u in self.terms.items():
            for (c, d), v in other.terms.items():
                out[a + c, b + d] = out.get((a + c, b + d), Fraction(0)) + u * v
        return Poly(out)

    def __truediv__(self, other: Poly) -> Poly:
        divisor = other.constant()
        assert divisor != 0
        return Poly({k: v / divisor for k, v in self.terms.items()})

    def __pow__(self, exponent: Poly) -> Poly:
        e = exponent.constant()
        assert e.denominator == 1 and e >= 0
        out = Poly.of(1)
        for _ in range(int(e)):
            out = out * self
        return out

    def c(self, px: int = 0, py: int = 0) -> Fraction:
        return self.terms.get((px, py), Fraction(0))

    def constant(self) -> Fraction:
        assert set(self.terms) <= {(0, 0)}, f"not a number: {self.terms}"
        return self.c()

    def at(self, x: Fraction, y: Fraction = Fraction(0)) -> Fraction:
        return sum((v * x**a * y**b for (a, b), v in self.terms.items()), Fraction(0))


def python_of(latex: str) -> str:
    s = latex.replace("\\left(", "(").replace("\\right)", ")")
    s = re.sub(r"\\frac\{([^{}]*)\}\{([^{}]*)\}", r"((\1)/(\2))", s)
    s = re.sub(r"\^\{?(\d+)\}?", r"**\1", s)
    s = s.replace("\\times", "*").replace("\\div", "/")
    s = re.sub(r"(?<=[\d)xy])(?=[(xy])", "*", s)  # 3x, 2(x + 1), (a)(b)
    assert not re.search(r"[\\{}]", s), f"cannot read {latex!r}"
    return s


def poly(latex: str) -> Poly:
    def ev(node: ast.AST) -> Poly:
        if isinstance(node, ast.Constant) and type(node.value) is int:
            return Poly.of(node.value)
        if isinstance(node, ast.Name) and node.id in ("x", "y"):
            return Poly({(1, 0) if node.id == "x" else (0, 1): Fraction(1)})
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
            return -ev(node.operand)
        if isinstance(node, ast.BinOp):
            ops: dict[type, Callable[[Poly, Poly], Poly]] = {
                ast.Add: Poly.__add__,
                ast.Sub: Poly.__sub__,
                ast.Mult: Poly.__mul__,
                ast.Div: Poly.__truediv__,
                ast.Pow: Poly.__pow__,
            }
            return ops[type(node.op)](ev(node.left), ev(node.right))
        raise AssertionError(f"unexpected {ast.dump(node)} in {latex!r}")

    return ev(ast.parse(python_of(latex), mode="eval").body)


def number(latex: str) -> Fraction:
    return poly(latex).constant()


def sides(equation: str) -> tuple[Poly, Poly]:
    left, right = equation.split(" = ")
    return poly(left), poly(right)


def canonical(value: Answer) -> str:
    if isinstance(value, tuple):
        return "(" + ", ".join(canonical(v) for v in value) + ")"
    if value.denominator == 1:
        return str(value.numerator)
    sign = "-" if value < 0 else ""
    return sign + "\\frac{" + str(abs(value.numerator)) + "}{" + str(value.denominator) + "}"


def parse_answer(answer: str) -> Answer:
    if answer.startswith("("):
        return tuple(number(part) for part in answer[1:-1].split(", "))
    return number(answer)


# --- the second implementation, one function per problem type --------------------------------------


def expression(row: dict[str, Any]) -> Answer:
    text = row["check"]["expression"]
    assert f"${text}$" in row["problem"]
    operator = {"add": " + ", "subtract": " - ", "multiply": " \\times ", "divide": " \\div "}
    if row["type"] in operator:
        assert text.count(" ") == 2 and operator[row["type"]] in text
    return number(text)


def percent_of(row: dict[str, Any]) -> Answer:
    p, of = row["check"]["percent"], row["check"]["of"]
    assert f"${p}\\%$ of ${of}$" in row["problem"]
    return Fraction(of * p, 100)


def percent_change(row: dict[str, Any]) -> Answer:
    c = row["check"]
    shown = re.findall(r"(raised|increased|lowered|decreased) by \$(\d+)\\%\$", row["problem"])
    signs = {"raised": 1, "increased": 1, "lowered": -1, "decreased": -1}
    assert [signs[word] * int(p) for word, p in shown] == c["changes_percent"]
    assert f"$\\${c['start']}$" in row["problem"]
    price = Fraction(c["start"])
    for change in c["changes_percent"]:
        price += price * Fraction(change, 100)
    return price


def percent_ratio(row: dict[str, Any]) -> Answer:
    part, whole = row["check"]["part"], row["check"]["whole"]
    assert re.search(
        rf"percent of \${whole}\$ is \${part}\$|\${part}\$ is what percent of \${whole}\$",
        row["problem"],
    )
    return Fraction(100 * part, whole)


def linear(row: dict[str, Any]) -> Answer:
    c = row["check"]
    assert f"${c['equation']}$" in row["problem"]
    left, right = sides(c["equation"])
    for side, stated in ((left, c["lhs"]), (right, c["rhs"])):
        assert set(side.terms) <= {(0, 0), (1, 0)}
        assert [side.c(1), side.c()] == [Fraction(v) for v in stated]
    slope, offset = left.c(1) - right.c(1), right.c() - left.c()
    x = offset / slope
    assert left.at(x) == right.at(x)
    return x


def word_consecutive(row: dict[str, Any]) -> Answer:
    c = row["check"]
    words = {3: "three", 4: "four", 5: "five"}
    parity = "" if c["parity"] == "any" else c["parity"] + " "
    assert f"{words[c['count']]} consecutive {parity}integers is ${c['total']}$" in row["problem"]
    assert f"the {c['ask']}" in row["problem"]
    step = 1 if c["parity"] == "any" else 2
    found = [
        [start + step * i for i in range(c["count"])]
        for start in range(-3000, 3000)
        if sum(start + step * i for i in range(c["count"])) == c["total"]
        and (c["parity"] == "any" or start % 2 == (c["parity"] == "odd"))
    ]
    assert len(found) == 1
    run = found[0]
    return Fraction(
        {"smallest": run[0], "largest": run[-1], "middle": run[len(run) // 2]}[c["ask"]]
    )


def word_coins(row: dict[str, Any]) -> Answer:
    c = row["check"]
    (name1, cents1), (name2, cents2) = c["coins"]
    dollars = f"$\\${c['cents'] // 100}.{c['cents'] % 100:02d}$"
    for shown in (f"${c['count']}$ coins", f"{name1} and {name2}", dollars, f"How many {c['ask']}"):
        assert shown in row["problem"]
    splits = [
        (k, c["count"] - k)
        for k in range(c["count"] + 1)
        if k * cents1 + (c["count"] - k) * cents2 == c["cents"]
    ]
    assert len(splits) == 1
    return Fraction(splits[0][0] if c["ask"] == name1 else splits[0][1])


def linear_system(row: dict[str, Any]) -> Answer:
    c = row["check"]
    rows = []
    for equation, stated in zip(c["equations"], c["coefficients"]):
        assert f"${equation}$" in row["problem"]
        left, right = sides(equation)
        p = left - right  # a x + b y - k = 0
        assert set(p.terms) <= {(1, 0), (0, 1), (0, 0)}
        rows.append((p.c(1, 0), p.c(0, 1), -p.c()))
        assert list(rows[-1]) == stated
    (a1, b1, k1), (a2, b2, k2) = rows
    det = a1 * b2 - a2 * b1
    assert det != 0
    return (k1 * b2 - k2 * b1) / det, (a1 * k2 - a2 * k1) / det


def quadratic_roots(row: dict[str, Any]) -> Answer:
    c = row["check"]
    assert f"${c['equation']}$" in row["problem"] and f"the {c['ask']} value" in row["problem"]
    left, right = sides(c["equation"])
    p = left - right
    assert set(p.terms) <= {(2, 0), (1, 0), (0, 0)}
    a, b, k = p.c(2), p.c(1), p.c()
    assert [a, b, k] == c["coefficients"]
    assert b * b - 4 * a * k > 0
    roots = [Fraction(t) for t in range(-500, 501) if p.at(Fraction(t)) == 0]
    assert len(roots) == 2  # both roots are whole: a quadratic has no more
    return max(roots) if c["ask"] == "largest" else min(roots)


def series_sum(row: dict[str, Any]) -> Answer:
    c = row["check"]
    terms, term = [], Fraction(c["first"])
    for _ in range(c["terms"]):
        terms.append(term)
        term = term + c["difference"] if c["kind"] == "arithmetic" else term * Fraction(c["ratio"])
    shown = re.search(r"the (\w+) series \$(.*)\$\?", row["problem"])
    assert shown and shown[1] == c["kind"]
    parts = shown[2].split(" + ")
    assert len(parts) == 5 and parts[3] == "\\cdots" and len(terms) >= 5
    assert [number(t) for t in parts[:3] + parts[4:]] == terms[:3] + terms[-1:]
    total = Fraction(0)
    for t in terms:
        total += t
    return total


def gcd_lcm(row: dict[str, Any]) -> Answer:
    c, numbers = row["check"], row["check"]["numbers"]
    assert all(f"${v}$" in row["problem"] for v in numbers)
    if c["operation"] == "gcd":
        assert "greatest common divisor" in row["problem"]
        return Fraction(
            max(d for d in range(1, min(numbers) + 1) if all(v % d == 0 for v in numbers))
        )
    assert "least common multiple" in row["problem"]
    return Fraction(
        next(m for m in count(max(numbers), max(numbers)) if all(m % v == 0 for v in numbers))
    )


def modular(row: dict[str, Any]) -> Answer:
    c = row["check"]
    m = c["modulus"]
    if c["kind"] == "congruence":
        assert f"${c['a']}x \\equiv {c['b']} \\pmod{{{m}}}$" in row["problem"]
        return Fraction(next(x for x in range(1, m + 1) if (c["a"] * x - c["b"]) % m == 0))
    e = c["exponent"]
    shown = f"{c['base']}^{e}" if e < 10 else f"{c['base']}^{{{e}}}"
    if c["kind"] == "units_digit":
        assert m == 10 and f"units digit of ${shown}$" in row["problem"]
    else:
        assert f"${shown}$ is divided by ${m}$" in row["problem"]
    r = 1
    for _ in range(e):
        r = r * c["base"] % m
    return Fraction(r)


SOLVERS: dict[str, Callable[[dict[str, Any]], Answer]] = {
    **dict.fromkeys(("add", "subtract", "multiply", "divide"), expression),
    **dict.fromkeys(("parentheses", "negative_numbers", "order_of_operations"), expression),
    **dict.fromkeys(("powers", "fraction_sum", "fraction_product"), expression),
    "percent_of": percent_of,
    "percent_change": percent_change,
    "percent_ratio": percent_ratio,
    **dict.fromkeys(("linear_equation", "linear_both_sides", "linear_fractions"), linear),
    "word_consecutive": word_consecutive,
    "word_coins": word_coins,
    "linear_system": linear_system,
    "quadratic_roots": quadratic_roots,
    "series_sum": series_sum,
    "gcd_lcm": gcd_lcm,
    "modular": modular,
}


# --- the file -------------------------------------------------------------------------------------


def test_every_answer_is_rederived_from_its_check() -> None:
    wrong = []
    for row in ROWS:
        derived = canonical(SOLVERS[row["type"]](row))
        if derived != row["answer"]:
            wrong.append(f"{row['id']}: shipped {row['answer']}, derived {derived}")
    assert not wrong, "\n".join(wrong)


CANONICAL_NUMBER = r"-?(?:0|[1-9]\d*|\\frac\{[1-9]\d*\}\{[1-9]\d*\})"


def test_answers_are_canonical_latex() -> None:
    for row in ROWS:
        answer = row["answer"]
        assert re.fullmatch(
            rf"{CANONICAL_NUMBER}|\(({CANONICAL_NUMBER}), ({CANONICAL_NUMBER})\)", answer
        )
        assert answer != "-0"
        for part in re.findall(r"\\frac\{(\d+)\}\{(\d+)\}", answer):
            numerator, denominator = map(int, part)
            assert denominator > 1 and Fraction(numerator, denominator).denominator == denominator
        assert canonical(parse_answer(answer)) == answer
        if row["type"] == "linear_system":
            assert answer.startswith("(")


def test_levels_types_and_ids() -> None:
    assert len(ROWS) == 500
    assert Counter(row["level"] for row in ROWS) == {level: 100 for level in range(1, 6)}
    for level in range(1, 6):
        per_type = Counter(row["type"] for row in ROWS if row["level"] == level)
        assert len(per_type) >= 4 and len(set(per_type.values())) == 1, per_type
    assert set(SOLVERS) == {row["type"] for row in ROWS}
    ids = [row["id"] for row in ROWS]
    assert len(set(ids)) == len(ids)
    assert all(re.fullmatch(rf"synth-L{row['level']}-\d{{4}}", row["id"]) for row in ROWS)
    problems = [row["problem"] for row in ROWS]
    assert len(set(problems)) == len(problems)
    assert all(list(row) == ["id", "problem", "answer", "level", "type", "check"] for row in ROWS)


def test_script_regenerates_the_shipped_file_byte_for_byte(tmp_path: Path) -> None:
    out = tmp_path / "again.jsonl"
    env = {**os.environ, "PYTHONHASHSEED": "random"}
    subprocess.run([sys.executable, str(SCRIPT), "--out", str(out)], check=True, env=env)
    assert out.read_bytes() == SHIPPED.read_bytes()


# --- the loader ------------------------------------------------------------------------------------


def test_loader_builds_math_prompts() -> None:
    prompts = load_prompts(WorkloadSpec(dataset="synthetic_math"))
    assert [p.id for p in prompts] == [row["id"] for row in ROWS]
    row, p = ROWS[-1], prompts[-1]
    assert p.text is None and p.messages == (
        {
            "role": "user",
            "content": row["problem"]
            + "\nPlease reason step by step, and put your final answer within \\boxed{}.",
        },
    )
    assert (p.answer, p.subset, p.grader, p.dataset) == (
        row["answer"],
        "level 5",
        "math",
        "synthetic_math",
    )
    assert p.metadata == {"level": 5, "type": row["type"], "problem": row["problem"]}
    assert Counter(p.subset for p in prompts) == {f"level {n}": 100 for n in range(1, 6)}


def test_loader_honours_a_prompt_template() -> None:
    spec = WorkloadSpec(
        dataset="synthetic_math", prompt_template="Q: {problem}\nA: {{}} \\boxed{} {question}"
    )
    p = load_prompts(spec)[0]
    assert p.messages is not None
    assert (
        p.messages[0]["content"]
        == f"Q: {ROWS[0]['problem']}\nA: {{}} \\boxed{{}} {ROWS[0]['problem']}"
    )


@pytest.mark.parametrize(
    ("template", "says"),
    [
        ("{answer}", "uses {answer}"),
        ("{problem} {0}", "uses {0}"),
        ("{problem!r}", "plainly"),
        ("{problem", "brace"),
    ],
)
def test_a_bad_template_is_one_line_that_names_the_fix(template: str, says: str) -> None:
    with pytest.raises(DatasetError) as info:
        load_prompts(WorkloadSpec(dataset="synthetic_math", prompt_template=template))
    assert says in str(info.value) and "\n" not in str(info.value)


def test_dataset_path_and_a_bad_row(tmp_path: Path) -> None:
    good = tmp_path / "two.jsonl"
    good.write_text("".join(json.dumps(row) + "\n\n" for row in ROWS[:2]), encoding="utf-8")
    assert [
        p.id for p in load_prompts(WorkloadSpec(dataset="synthetic_math", dataset_path=str(good)))
    ] == [
        "synth-L1-0001",
        "synth-L1-0002",
    ]
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps(ROWS[0]) + "\n" + json.dumps({"id": "x", "answer": "1"}) + "\n")
    with pytest.raises(DatasetError, match=r"bad\.jsonl:2: .*'problem'") as info:
        load_prompts(WorkloadSpec(dataset="synthetic_math", dataset_path=str(bad)))
    assert "\n" not in str(info.value)
