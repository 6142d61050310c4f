"""Generate ``datasets/synthetic_math.jsonl``: math problems whose answers are certainly right.

    python scripts/make_synthetic_math.py              # rewrites datasets/synthetic_math.jsonl
    python scripts/make_synthetic_math.py --out FILE   # elsewhere (the tests compare the bytes)

Five levels of 100 problems, several types per level in equal numbers, from a fixed seed (each
type draws from its own ``random.Random``, so changing one type does not reshuffle the others).
Every answer is computed with ``fractions.Fraction`` and integer arithmetic, never floats, and
written as LaTeX the way a math grader expects: ``-12``, ``\\frac{7}{12}``, ``-\\frac{1}{3}``,
``(3, -2)``. Each row carries ``check``, the operands or the displayed equation, from which
``tests/test_synthetic_math.py`` re-derives the answer with its own code. Standard library only.
"""

from __future__ import annotations

import argparse
import json
import math
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

SEED = 1729
PER_LEVEL = 100
OUT = Path(__file__).resolve().parents[1] / "datasets" / "synthetic_math.jsonl"

Value = Fraction | tuple[Fraction, Fraction]
Made = tuple[str, Value, dict[str, Any]]  # problem text, exact answer, check
Maker = Callable[[random.Random], Made]


# --- LaTeX for numbers ---------------------------------------------------------------------------


def latex(q: Fraction) -> str:
    """``7``, ``-7``, ``\\frac{7}{12}`` or ``-\\frac{7}{12}`` (a Fraction is always reduced)."""
    if q.denominator == 1:
        return str(q.numerator)
    sign = "-" if q < 0 else ""
    return f"{sign}\\frac{{{abs(q.numerator)}}}{{{q.denominator}}}"


def answer_latex(value: Value) -> str:
    if isinstance(value, tuple):
        return "(" + ", ".join(latex(v) for v in value) + ")"
    return latex(value)


def plain(q: Fraction) -> int | str:
    """A check value for JSON: an int, or ``"-3/4"``."""
    return q.numerator if q.denominator == 1 else str(q)


def power(base: str, exponent: int) -> str:
    return f"{base}^{exponent}" if exponent < 10 else f"{base}^{{{exponent}}}"


def polynomial(terms: Sequence[tuple[Fraction | int, str]]) -> str:
    """``[(3, "x"), (-1, "y"), (5, "")]`` → ``3x - y + 5``; zero terms are left out."""
    out = ""
    for coef, var in terms:
        q = Fraction(coef)
        if q == 0:
            continue
        body = var if var and abs(q) == 1 else latex(abs(q)) + var
        if not out:
            out = ("-" if q < 0 else "") + body
        else:
            out += (" - " if q < 0 else " + ") + body
    return out or "0"


# --- arithmetic expressions ----------------------------------------------------------------------


@dataclass(frozen=True)
class Num:
    value: Fraction


@dataclass(frozen=True)
class Neg:
    """A leading minus sign, as in ``-3^2`` (which is -9)."""

    arg: Expr


@dataclass(frozen=True)
class Bin:
    op: str  # + - * / ^
    left: Expr
    right: Expr


Expr = Num | Neg | Bin
PRECEDENCE = {"+": 1, "-": 1, "*": 2, "/": 2, "^": 3}
SYMBOL = {"+": " + ", "-": " - ", "*": " \\times ", "/": " \\div "}


def n(value: int | Fraction) -> Num:
    return Num(Fraction(value))


def evaluate(e: Expr) -> Fraction:
    if isinstance(e, Num):
        return e.value
    if isinstance(e, Neg):
        return -evaluate(e.arg)
    a, b = evaluate(e.left), evaluate(e.right)
    if e.op == "+":
        return a + b
    if e.op == "-":
        return a - b
    if e.op == "*":
        return a * b
    if e.op == "/":
        return a / b
    assert b.denominator == 1 and b >= 0
    return a ** int(b)


def render(e: Expr, first: bool = True) -> str:
    """LaTeX with only the parentheses needed; a negative number is bracketed unless it leads."""
    if isinstance(e, Num):
        text = latex(e.value)
        return text if e.value >= 0 or first else f"({text})"
    if isinstance(e, Neg):
        text = "-" + render(e.arg, False)
        return text if first else f"({text})"
    if e.op == "^":
        assert isinstance(e.right, Num)
        base = e.left  # a whole number, bracketed when negative, or a bracketed expression
        assert not isinstance(base, Neg) and not (
            isinstance(base, Num) and base.value.denominator > 1
        )
        text = render(base, False) if isinstance(base, Num) else f"({render(base)})"
        return power(text, int(e.right.value))
    left = f"({render(e.left)})" if needs_parens(e.left, e.op, False) else render(e.left, first)
    right = f"({render(e.right)})" if needs_parens(e.right, e.op, True) else render(e.right, False)
    return left + SYMBOL[e.op] + right


def needs_parens(child: Expr, op: str, is_right: bool) -> bool:
    if not isinstance(child, Bin) or child.op == "^":
        return False
    if PRECEDENCE[child.op] < PRECEDENCE[op]:
        return True
    return is_right and PRECEDENCE[child.op] == PRECEDENCE[op] and op in "-/"


def leaves(e: Expr) -> list[Fraction]:
    if isinstance(e, Num):
        return [e.value]
    if isinstance(e, Neg):
        return leaves(e.arg)
    return leaves(e.left) + leaves(e.right)


def random_tree(rng: random.Random, count: int, ops: str, leaf: Callable[[], Expr]) -> Expr:
    """A random expression over ``count`` leaves; a division is only by an exact divisor."""
    if count == 1:
        return leaf()
    op = rng.choice(ops)
    if op == "/":
        left = random_tree(rng, count - 1, ops, leaf)
        v = evaluate(left)
        divisors = [d for d in range(2, 13) if v != 0 and v.denominator == 1 and v % d == 0]
        if divisors:
            return Bin("/", left, n(rng.choice(divisors)))
        return Bin("*", left, leaf())
    k = rng.randint(1, count - 1)
    return Bin(op, random_tree(rng, k, ops, leaf), random_tree(rng, count - k, ops, leaf))


COMPUTE = ("What is ${}$?", "Compute ${}$.", "Evaluate ${}$.", "Find the value of ${}$.")
SIMPLEST = " Express your answer in simplest form."


def expression_problem(rng: random.Random, e: Expr, suffix: str = "") -> Made:
    text = render(e)
    return rng.choice(COMPUTE).format(text) + suffix, evaluate(e), {"expression": text}


# --- level 1: two-number arithmetic --------------------------------------------------------------


def add(rng: random.Random) -> Made:
    return expression_problem(rng, Bin("+", n(rng.randint(10, 999)), n(rng.randint(10, 999))))


def subtract(rng: random.Random) -> Made:
    return expression_problem(rng, Bin("-", n(rng.randint(10, 999)), n(rng.randint(10, 999))))


def multiply(rng: random.Random) -> Made:
    return expression_problem(rng, Bin("*", n(rng.randint(3, 99)), n(rng.randint(3, 99))))


def divide(rng: random.Random) -> Made:
    divisor, quotient = rng.randint(2, 25), rng.randint(2, 60)
    return expression_problem(rng, Bin("/", n(divisor * quotient), n(divisor)))


# --- level 2: several steps, parentheses, negative numbers, powers -------------------------------


def multi_step(
    rng: random.Random,
    count: Sequence[int],
    ops: str,
    leaf: Callable[[], Expr],
    accept: Callable[[Expr, str], bool],
) -> Expr:
    """A random expression with a whole value of at most 5000 that ``accept`` takes."""
    while True:
        e = random_tree(rng, rng.choice(count), ops, leaf)
        v = evaluate(e)
        if v.denominator == 1 and abs(v) <= 5000 and accept(e, render(e)):
            return e


def parentheses(rng: random.Random) -> Made:
    e = multi_step(rng, (3, 4), "+-*/", lambda: n(rng.randint(1, 20)), lambda e, t: "(" in t)
    return expression_problem(rng, e)


def negative_numbers(rng: random.Random) -> Made:
    def leaf() -> Expr:
        return n(rng.choice([-1, 1]) * rng.randint(1, 20))

    e = multi_step(rng, (3, 4), "+-*", leaf, lambda e, t: sum(v < 0 for v in leaves(e)) >= 2)
    return expression_problem(rng, e)


def order_of_operations(rng: random.Random) -> Made:
    def accept(e: Expr, text: str) -> bool:
        has_additive = " + " in text or " - " in text
        has_multiplicative = "\\times" in text or "\\div" in text
        return "(" not in text and has_additive and has_multiplicative

    return expression_problem(
        rng, multi_step(rng, (4, 5), "+-*/", lambda: n(rng.randint(1, 15)), accept)
    )


def powers(rng: random.Random) -> Made:
    def leaf() -> Expr:
        pick = rng.random()
        if pick < 0.45:
            base = rng.choice([-1, 1]) * rng.randint(2, 6)
            exponent = rng.randint(2, 3) if abs(base) > 3 else rng.randint(2, 5)
            return Bin("^", n(base), n(exponent))
        if pick < 0.65:
            a, b = rng.sample(range(1, 13), 2)
            return Bin("^", Bin(rng.choice("+-"), n(a), n(b)), n(2))
        return n(rng.randint(1, 12))

    def accept(e: Expr, text: str) -> bool:
        return text.count("^") >= 2

    e = multi_step(rng, (2, 3), "+-*", leaf, accept)
    if rng.random() < 0.3:  # a leading -a^2, which is -(a^2)
        e = Bin(rng.choice("+-"), Neg(Bin("^", n(rng.randint(2, 5)), n(2))), e)
    return expression_problem(rng, e)


# --- level 3: fractions and percentages ----------------------------------------------------------


def fraction(rng: random.Random, max_den: int = 12) -> Fraction:
    while True:
        d = rng.randint(2, max_den)
        k = rng.randint(1, 2 * d - 1)
        if math.gcd(k, d) == 1:
            return Fraction(k, d)


def fraction_sum(rng: random.Random) -> Made:
    e: Expr = n(fraction(rng))
    for _ in range(rng.choice((1, 1, 2))):
        e = Bin(rng.choice("+-"), e, n(fraction(rng)))
    if evaluate(e) == 0:
        return fraction_sum(rng)
    return expression_problem(rng, e, SIMPLEST)


def fraction_product(rng: random.Random) -> Made:
    def operand() -> Fraction:
        q = Fraction(rng.randint(2, 12)) if rng.random() < 0.15 else fraction(rng)
        return -q if rng.random() < 0.2 else q

    a, b = operand(), operand()
    if a.denominator == 1 and b.denominator == 1:
        b = fraction(rng)
    return expression_problem(rng, Bin(rng.choice("*/"), n(a), n(b)), SIMPLEST)


PERCENTS = (5, 10, 12, 15, 20, 25, 30, 35, 40, 45, 50, 60, 64, 75, 80, 90, 120, 125, 150, 250)


def percent_of(rng: random.Random) -> Made:
    p = rng.choice(PERCENTS)
    step = 100 // math.gcd(p, 100)  # the smallest number whose p% is whole
    number = step * rng.randint(1, max(1, 600 // step))
    text = rng.choice(("What is ${p}\\%$ of ${x}$?", "Find ${p}\\%$ of ${x}$."))
    return text.format(p=p, x=number), Fraction(p * number, 100), {"percent": p, "of": number}


ITEMS = ("a jacket", "a bicycle", "a lamp", "a concert ticket", "a pair of boots", "a tent")


def percent_change(rng: random.Random) -> Made:
    while True:
        start = rng.randint(2, 60) * 10
        changes = [rng.choice((10, 20, 25, 30, 40, 50)) * rng.choice((1, -1)) for _ in range(2)]
        final = Fraction(start)
        for c in changes:
            final *= Fraction(100 + c, 100)
        if final.denominator == 1:
            break
    verb = {1: ("raised", "increased"), -1: ("lowered", "decreased")}
    first = verb[1 if changes[0] > 0 else -1][0]
    second = verb[1 if changes[1] > 0 else -1][1]
    text = (
        f"The price of {rng.choice(ITEMS)} is $\\${start}$. The price is {first} by "
        f"${abs(changes[0])}\\%$, and then the new price is {second} by ${abs(changes[1])}\\%$. "
        "What is the final price, in dollars?"
    )
    return text, final, {"start": start, "changes_percent": changes}


def percent_ratio(rng: random.Random) -> Made:
    p = rng.choice(PERCENTS + (2, 4, 8, 16, 32, 55, 70, 85, 95, 175, 200, 300))
    step = 100 // math.gcd(p, 100)
    whole = step * rng.randint(1, max(1, 500 // step))
    part = whole * p // 100
    text = rng.choice(("What percent of ${w}$ is ${p}$?", "${p}$ is what percent of ${w}$?"))
    return text.format(w=whole, p=part), Fraction(100 * part, whole), {"part": part, "whole": whole}


# --- level 4: linear equations and word problems -------------------------------------------------

SOLVE = ("Solve for $x$: ${}$.", "What value of $x$ satisfies ${}$?", "Find $x$ if ${}$.")


def nonzero(rng: random.Random, low: int, high: int) -> int:
    return rng.choice([-1, 1]) * rng.randint(low, high)


def equation_problem(
    rng: random.Random,
    equation: str,
    lhs: tuple[Fraction, Fraction],
    rhs: tuple[Fraction, Fraction],
) -> Made:
    """``lhs``/``rhs`` are each side as (coefficient of x, constant), as the equation shows them."""
    x = (rhs[1] - lhs[1]) / (lhs[0] - rhs[0])
    check = {
        "equation": equation,
        "lhs": [plain(lhs[0]), plain(lhs[1])],
        "rhs": [plain(rhs[0]), plain(rhs[1])],
    }
    return rng.choice(SOLVE).format(equation) + SIMPLEST, x, check


def solution(rng: random.Random, a: Fraction, b: Fraction) -> Fraction:
    """The right-hand side c of ``a x + b = c``: a whole x most of the time, else a fraction.

    A whole c is preferred; when ``a`` is 1/k no whole c gives a fractional x, so then c is not.
    """
    if rng.random() < 0.6:
        return a * rng.randint(-20, 20) + b
    for _ in range(50):
        c = Fraction(nonzero(rng, 1, 60))
        if ((c - b) / a).denominator != 1:
            return c
    return a * fraction(rng, 9) * rng.choice([-1, 1]) + b


def linear_equation(rng: random.Random) -> Made:
    a, b = Fraction(nonzero(rng, 2, 12)), Fraction(nonzero(rng, 1, 40))
    c = solution(rng, a, b)
    side = polynomial([(a, "x"), (b, "")])
    if rng.random() < 0.5:
        return equation_problem(rng, f"{side} = {latex(c)}", (a, b), (Fraction(0), c))
    return equation_problem(rng, f"{latex(c)} = {side}", (Fraction(0), c), (a, b))


def linear_both_sides(rng: random.Random) -> Made:
    while True:
        p, q, r = nonzero(rng, 2, 9), nonzero(rng, 1, 12), rng.randint(-20, 20)
        s = nonzero(rng, 1, 9)
        if s != p:
            break
    lhs = (Fraction(p), Fraction(p * q + r))
    # p(x + q) + r = s x + t  ⇔  (p - s) x + (pq + r) = t
    t = solution(rng, lhs[0] - s, lhs[1])
    left = f"{'-' if p < 0 else ''}{abs(p)}({polynomial([(1, 'x'), (q, '')])})"
    if r:
        left += f" {'-' if r < 0 else '+'} {abs(r)}"
    right = polynomial([(s, "x"), (t, "")])
    return equation_problem(rng, f"{left} = {right}", lhs, (Fraction(s), t))


def linear_fractions(rng: random.Random) -> Made:
    return rng.choice((over_constant, two_quotients, fraction_coefficients))(rng)


def over_constant(rng: random.Random) -> Made:
    """x/a + b = c"""
    a, b = rng.randint(2, 9), nonzero(rng, 1, 15)
    lhs = (Fraction(1, a), Fraction(b))
    c = solution(rng, *lhs)
    left = f"\\frac{{x}}{{{a}}} {'-' if b < 0 else '+'} {abs(b)}"
    return equation_problem(rng, f"{left} = {latex(c)}", lhs, (Fraction(0), c))


def two_quotients(rng: random.Random) -> Made:
    """(x + a)/b = (x + c)/d"""
    a, c = nonzero(rng, 1, 12), nonzero(rng, 1, 12)
    b, d = rng.sample(range(2, 10), 2)
    left = f"\\frac{{{polynomial([(1, 'x'), (a, '')])}}}{{{b}}}"
    right = f"\\frac{{{polynomial([(1, 'x'), (c, '')])}}}{{{d}}}"
    lhs, rhs = (Fraction(1, b), Fraction(a, b)), (Fraction(1, d), Fraction(c, d))
    return equation_problem(rng, f"{left} = {right}", lhs, rhs)


def fraction_coefficients(rng: random.Random) -> Made:
    """(p/q) x + r/s = t/u"""
    a, b, c = (fraction(rng, 9) * rng.choice([-1, 1]) for _ in range(3))
    side = polynomial([(a, "x"), (b, "")])
    return equation_problem(rng, f"{side} = {latex(c)}", (a, b), (Fraction(0), c))


WORDS = {3: "three", 4: "four", 5: "five"}


def word_consecutive(rng: random.Random) -> Made:
    count = rng.choice((3, 4, 5))
    kind = rng.choice(("", "even ", "odd "))
    step = 1 if not kind else 2
    first = rng.randint(-30, 150)
    if kind == "even " and first % 2:
        first += 1
    if kind == "odd " and first % 2 == 0:
        first += 1
    numbers = [first + step * i for i in range(count)]
    asks = ["smallest", "largest"] + (["middle"] if count % 2 else [])
    ask = rng.choice(asks)
    answer = {"smallest": numbers[0], "largest": numbers[-1], "middle": numbers[count // 2]}[ask]
    text = (
        f"The sum of {WORDS[count]} consecutive {kind}integers is ${sum(numbers)}$. "
        f"What is the {ask} of these integers?".replace("middle", "middle one")
    )
    check = {"count": count, "parity": kind.strip() or "any", "total": sum(numbers), "ask": ask}
    return text, Fraction(answer), check


COINS = (
    ("penny", "pennies", 1),
    ("nickel", "nickels", 5),
    ("dime", "dimes", 10),
    ("quarter", "quarters", 25),
)
NAMES = ("Ana", "Ben", "Chloe", "Dev", "Elena", "Farid", "Grace", "Hiro", "Ines", "Jonah")


def word_coins(rng: random.Random) -> Made:
    first, second = sorted(rng.sample(range(len(COINS)), 2))
    (_, many1, cents1), (_, many2, cents2) = COINS[first], COINS[second]
    total = rng.randint(8, 60)
    x = rng.randint(1, total - 1)
    value = x * cents1 + (total - x) * cents2
    asked = rng.choice((0, 1))
    name = rng.choice(NAMES)
    text = (
        f"{name} has ${total}$ coins, all of them {many1} and {many2}, worth "
        f"$\\${value // 100}.{value % 100:02d}$ in total. How many {(many1, many2)[asked]} "
        f"does {name} have?"
    )
    check = {
        "coins": [[many1, cents1], [many2, cents2]],
        "count": total,
        "cents": value,
        "ask": (many1, many2)[asked],
    }
    return text, Fraction((x, total - x)[asked]), check


# --- level 5: systems, quadratics, series, gcd/lcm, modular arithmetic ----------------------------


def linear_system(rng: random.Random) -> Made:
    x, y = rng.randint(-9, 9), rng.randint(-9, 9)
    equations: list[str] = []
    coefficients: list[list[int]] = []
    while len(equations) < 2:
        form = rng.randrange(3)
        if form == 0:  # ax + by = c
            a, b = nonzero(rng, 1, 9), nonzero(rng, 1, 9)
            eq = f"{polynomial([(a, 'x'), (b, 'y')])} = {a * x + b * y}"
        elif form == 1:  # y = mx + k  ⇔  -m x + y = k
            m = nonzero(rng, 1, 6)
            a, b = -m, 1
            eq = f"y = {polynomial([(m, 'x'), (y - m * x, '')])}"
        else:  # ax = by + k  ⇔  ax - by = k
            a, b = rng.randint(1, 9), nonzero(rng, 1, 9)
            eq = f"{polynomial([(a, 'x')])} = {polynomial([(b, 'y'), (a * x - b * y, '')])}"
            b = -b
        row = [a, b, a * x + b * y]
        if coefficients and coefficients[0][0] * b - coefficients[0][1] * a == 0:
            continue  # parallel or the same line: not one solution
        equations.append(eq)
        coefficients.append(row)
    text = rng.choice(
        (
            "Find the ordered pair $(x, y)$ that satisfies ${}$ and ${}$.",
            "Solve the system ${}$, ${}$. Enter your answer as an ordered pair $(x, y)$.",
        )
    ).format(*equations)
    check = {"equations": equations, "coefficients": coefficients}
    return text, (Fraction(x), Fraction(y)), check


def quadratic_roots(rng: random.Random) -> Made:
    r1, r2 = sorted(rng.sample(range(-12, 13), 2))
    a = rng.choice((1, 1, 1, 2, 3, -1))
    b, c = -a * (r1 + r2), a * r1 * r2
    if c and rng.random() < 0.4:
        equation = f"{polynomial([(a, 'x^2'), (b, 'x')])} = {-c}"
    else:
        equation = f"{polynomial([(a, 'x^2'), (b, 'x'), (c, '')])} = 0"
    ask = rng.choice(("largest", "smallest"))
    text = f"What is the {ask} value of $x$ that satisfies ${equation}$?"
    check = {"equation": equation, "coefficients": [a, b, c], "ask": ask}
    return text, Fraction(r2 if ask == "largest" else r1), check


RATIOS = (
    Fraction(2),
    Fraction(3),
    Fraction(4),
    Fraction(1, 2),
    Fraction(1, 3),
    Fraction(2, 3),
    Fraction(3, 2),
    Fraction(3, 4),
)


def series_sum(rng: random.Random) -> Made:
    if rng.random() < 0.5:
        count, d = rng.randint(6, 30), nonzero(rng, 1, 9)
        first = rng.randint(1, 40) if d > 0 else rng.randint(1 - d * (count - 1), 300)
        terms = [Fraction(first + d * i) for i in range(count)]
        check: dict[str, Any] = {"kind": "arithmetic", "first": first, "difference": d}
    else:
        while True:
            ratio, count = rng.choice(RATIOS), rng.randint(5, 8)
            first = rng.randint(1, 5) * ratio.denominator ** (count - 1)  # every term whole
            terms = [first * ratio**i for i in range(count)]
            if max(terms) <= 20000:
                break
        check = {"kind": "geometric", "first": first, "ratio": plain(ratio)}
    check["terms"] = count
    shown = " + ".join(latex(t) for t in terms[:3]) + " + \\cdots + " + latex(terms[-1])
    text = f"What is the sum of the {check['kind']} series ${shown}$?"
    return text, sum(terms, Fraction(0)), check


def gcd_lcm(rng: random.Random) -> Made:
    operation = rng.choice(("gcd", "lcm"))
    while True:
        g = rng.randint(2, 30)
        numbers = sorted(set(g * rng.randint(2, 24) for _ in range(rng.choice((2, 2, 3)))))
        lcm = math.lcm(*numbers)
        if len(numbers) >= 2 and lcm <= 50000:
            break
    listed = [f"${v}$" for v in numbers]
    joined = (
        " and ".join(listed) if len(listed) == 2 else f"{listed[0]}, {listed[1]}, and {listed[2]}"
    )
    name = {"gcd": "greatest common divisor", "lcm": "least common multiple"}[operation]
    text = rng.choice(("What is the {} of {}?", "Find the {} of {}.")).format(name, joined)
    answer = math.gcd(*numbers) if operation == "gcd" else lcm
    return text, Fraction(answer), {"operation": operation, "numbers": numbers}


def modular(rng: random.Random) -> Made:
    kind = rng.choice(("remainder", "units_digit", "congruence"))
    if kind == "congruence":
        while True:
            m, a = rng.randint(5, 30), rng.randint(2, 29)
            b = rng.randint(1, m - 1)
            if a % m > 1 and math.gcd(a, m) == 1:
                break
        x = b * pow(a, -1, m) % m
        text = (
            f"What is the smallest positive integer $x$ that satisfies "
            f"${a}x \\equiv {b} \\pmod{{{m}}}$?"
        )
        return text, Fraction(x), {"kind": kind, "a": a, "b": b, "modulus": m}
    while True:  # not a base whose powers all leave the same remainder (10^k, 6^k, 12^k mod 4)
        base, exponent = rng.randint(2, 19), rng.randint(11, 250)
        m = 10 if kind == "units_digit" else rng.randint(3, 19)
        if len({pow(base, k, m) for k in range(1, 5)}) > 1:
            break
    if kind == "units_digit":
        text = f"What is the units digit of ${power(str(base), exponent)}$?"
    else:
        text = f"What is the remainder when ${power(str(base), exponent)}$ is divided by ${m}$?"
    check = {"kind": kind, "base": base, "exponent": exponent, "modulus": m}
    return text, Fraction(pow(base, exponent, m)), check


LEVELS: dict[int, tuple[Maker, ...]] = {
    1: (add, subtract, multiply, divide),
    2: (parentheses, negative_numbers, order_of_operations, powers),
    3: (fraction_sum, fraction_product, percent_of, percent_change, percent_ratio),
    4: (linear_equation, linear_both_sides, linear_fractions, word_consecutive, word_coins),
    5: (linear_system, quadratic_roots, series_sum, gcd_lcm, modular),
}


def rows(seed: int = SEED) -> list[dict[str, Any]]:
    """All the rows, level by level, the types of a level interleaved; no problem twice."""
    out: list[dict[str, Any]] = []
    seen: set[str] = set()
    for level, makers in LEVELS.items():
        per_type = PER_LEVEL // len(makers)
        made: list[list[dict[str, Any]]] = []
        for maker in makers:
            rng = random.Random(f"{seed}:{maker.__name__}")
            mine: list[dict[str, Any]] = []
            tries = 0
            while len(mine) < per_type:
                tries += 1
                if tries > 100 * per_type:
                    raise RuntimeError(
                        f"{maker.__name__}: cannot find {per_type} distinct problems"
                    )
                problem, value, check = maker(rng)
                key = json.dumps(check, sort_keys=True)
                if problem in seen or f"{maker.__name__}:{key}" in seen:
                    continue
                seen.update((problem, f"{maker.__name__}:{key}"))
                row = {
                    "problem": problem,
                    "answer": answer_latex(value),
                    "level": level,
                    "type": maker.__name__,
                    "check": check,
                }
                mine.append(row)
            made.append(mine)
        for i, row in enumerate(r for group in zip(*made) for r in group):
            out.append({"id": f"synth-L{level}-{i + 1:04d}", **row})
    return out


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--out", type=Path, default=OUT, help=f"where to write (default {OUT})")
    parser.add_argument("--seed", type=int, default=SEED, help=f"default {SEED}")
    args = parser.parse_args(argv)
    text = "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows(args.seed))
    args.out.write_text(text, encoding="utf-8")


if __name__ == "__main__":
    main()
