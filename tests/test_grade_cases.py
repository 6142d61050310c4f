r"""Grading cases written for this project: math equivalence, answer shapes, letters, numbers.

Each table row is one case with an id. Where math-verify's verdict is debatable the id says
``debatable`` and the row asserts what math-verify does today, so that a change shows up here.
"""

from __future__ import annotations

import time

import pytest

from perfbench.grade import extract, graders
from perfbench.grade.graders import Verdict, equivalent, grade

# --- equivalence of two answers (gold, candidate) ------------------------------------------------

EQUIVALENT = [
    # fractions and decimals
    pytest.param(r"\frac{1}{2}", "0.5", id="frac-decimal"),
    pytest.param(r"\dfrac{3}{4}", "0.75", id="dfrac-decimal"),
    pytest.param(r"\frac{1}{2}", "1/2", id="frac-slash"),
    pytest.param(r"\tfrac{2}{3}", r"\frac{2}{3}", id="tfrac-frac"),
    pytest.param(r"\frac12", "0.5", id="frac-no-braces"),
    pytest.param(r"\frac{2}{4}", r"\frac{1}{2}", id="frac-unreduced"),
    pytest.param(r"-\frac{1}{2}", "-0.5", id="negative-frac"),
    pytest.param(r"-\frac{3}{2}", "-1.5", id="negative-improper-frac"),
    pytest.param(r"\frac{-1}{2}", r"-\frac{1}{2}", id="sign-inside-frac"),
    pytest.param(r"\frac{1}{3}", "0.3333333", id="third-seven-places"),
    pytest.param("2", r"\frac{4}{2}", id="integer-as-frac"),
    pytest.param("100", "100.0", id="trailing-zero"),
    pytest.param("-3", "-3.0", id="negative-trailing-zero"),
    # roots
    pytest.param(r"2\sqrt{2}", r"\sqrt{8}", id="sqrt-simplified"),
    pytest.param(r"3\sqrt{3}", r"\sqrt{27}", id="sqrt-27"),
    pytest.param(r"\frac{\sqrt{2}}{2}", r"\frac{1}{\sqrt{2}}", id="sqrt-rationalised"),
    pytest.param(r"\sqrt{2}", "1.41421356", id="sqrt-eight-places"),
    pytest.param(r"\sqrt[3]{8}", "2", id="cube-root"),
    # pi
    pytest.param(r"\pi", "3.14159265", id="pi-eight-places"),
    pytest.param(r"2\pi", r"\pi \cdot 2", id="pi-product"),
    pytest.param(r"\frac{\pi}{2}", r"\pi/2", id="pi-over-2"),
    # intervals, unions, sets
    pytest.param("[1,2)", "[1, 2)", id="half-open-spaces"),
    pytest.param("(1,2)", "(1,2)", id="open-interval"),
    pytest.param(r"(-\infty, 3]", r"(-\infty,3]", id="infinite-left"),
    pytest.param(r"(0,\infty)", r"(0, \infty)", id="infinite-right"),
    pytest.param(
        r"(-\infty,-1)\cup(1,\infty)", r"(1,\infty)\cup(-\infty,-1)", id="union-reordered"
    ),
    pytest.param(r"\{1,2\}", r"\{2,1\}", id="set-order"),
    pytest.param("1,2", "2,1", id="list-order"),
    pytest.param("1, 2, 3", "3, 1, 2", id="list-of-three-order"),
    pytest.param(r"\{1,2\}", "1,2", id="set-vs-bare-list"),
    # tuples and points
    pytest.param("(3,4)", "(3, 4)", id="point-spaces"),
    pytest.param("(1,2,3)", "(1, 2, 3)", id="triple"),
    pytest.param(r"\left(3,\frac{\pi}{2}\right)", r"(3,\pi/2)", id="left-right-point"),
    # percentages
    pytest.param(r"50\%", "50", id="percent-vs-number"),
    pytest.param(r"50\%", "0.5", id="percent-vs-fraction"),
    pytest.param(r"25\%", "25", id="percent-25"),
    pytest.param(r"12.5\%", "12.5", id="decimal-percent-vs-number-fixed-here"),
    pytest.param(r"12.5\%", "0.125", id="decimal-percent-vs-fraction"),
    pytest.param("12.5", r"12.5\%", id="number-vs-decimal-percent-fixed-here"),
    # units and degrees
    pytest.param(r"5\text{ cm}", "5", id="unit-on-gold"),
    pytest.param("5", r"5\text{ cm}", id="unit-on-answer"),
    pytest.param(r"5\,\text{m}^2", "5", id="square-metres"),
    pytest.param(r"30^\circ", "30", id="degrees-on-gold"),
    pytest.param("30", r"30^\circ", id="degrees-on-answer"),
    pytest.param(r"30^{\circ}", "30", id="degrees-braced"),
    pytest.param(r"\$18", "18", id="dollar-sign"),
    # thousands separators
    pytest.param("10{,}000", "10000", id="latex-thousands-gold"),
    pytest.param("10000", "10{,}000", id="latex-thousands-answer"),
    pytest.param("1,000,000", "1000000", id="comma-thousands"),
    pytest.param("10000", "10,000", id="comma-thousands-answer"),
    # negatives and scientific notation
    pytest.param("-5", "-5", id="negative"),
    pytest.param(r"1.5\times10^{3}", "1500", id="times-ten-power"),
    pytest.param(r"3\times 10^{-2}", "0.03", id="negative-power"),
    pytest.param(r"6.02\times10^{23}", r"6.02 \times 10^{23}", id="avogadro"),
    pytest.param(r"2^{10}", "1024", id="power-of-two"),
    # matrices and vectors
    pytest.param(
        r"\begin{pmatrix}1\\2\end{pmatrix}", r"\begin{pmatrix} 1 \\ 2 \end{pmatrix}", id="vector"
    ),
    pytest.param(
        r"\begin{pmatrix}1&2\\3&4\end{pmatrix}",
        r"\begin{bmatrix}1&2\\3&4\end{bmatrix}",
        id="pmatrix-bmatrix",
    ),
    # equations
    pytest.param("5", "x=5", id="assignment-answer"),
    pytest.param("x=5", "5", id="assignment-gold"),
    pytest.param("y=2x+1", "y=1+2x", id="line-reordered"),
    pytest.param("y=2x+1", "2x+1", id="line-rhs-only"),
    # text answers
    pytest.param(r"\text{(C)}", "C", id="text-letter-bare"),
    pytest.param(r"\text{(C)}", r"\text{C}", id="text-letter-text"),
    pytest.param(r"\text{(C)}", "(C)", id="text-letter-parens"),
    pytest.param(r"\text{Monday}", r"\text{Monday}", id="text-word"),
    pytest.param(r"\text{Monday}", "Monday", id="text-word-bare"),
    # polynomials and expressions
    pytest.param("x^2-1", "(x-1)(x+1)", id="difference-of-squares"),
    pytest.param("(x+1)^2", "x^2+2x+1", id="square-expanded"),
    pytest.param("2x+2", "2(x+1)", id="factored-linear"),
    pytest.param(r"\frac{x+1}{2}", r"\frac{x}{2}+\frac{1}{2}", id="split-fraction"),
    pytest.param(r"\frac{a}{b}", "a/b", id="symbolic-fraction"),
    pytest.param("1+i", "i+1", id="complex-reordered"),
    pytest.param("e^2", "e^{2}", id="e-squared"),
    pytest.param(r"\infty", r"\infty", id="infinity"),
    pytest.param("5!", "120", id="factorial"),
    pytest.param(r"\binom{5}{2}", "10", id="binomial"),
]

NOT_EQUIVALENT = [
    pytest.param(r"\frac{1}{2}", "2", id="half-vs-two"),
    pytest.param("[1,2)", "[1,2]", id="half-open-vs-closed"),
    pytest.param(r"(-\infty, 3]", r"(-\infty,3)", id="closed-vs-open-end"),
    pytest.param(
        r"(-\infty,-1)\cup(1,\infty)", r"(-\infty,-1)\cup[1,\infty)", id="union-closed-end"
    ),
    pytest.param(r"[0,1]\cup[2,3]", "[0,3]", id="union-vs-hull"),
    pytest.param(r"\{1,2,3\}", r"\{1,2\}", id="set-missing-element"),
    pytest.param("(3,4)", "(4,3)", id="point-order-matters"),
    pytest.param("(1,-2)", "(1,2)", id="point-sign"),
    pytest.param("3.14", r"\pi", id="pi-approximation-as-answer"),
    pytest.param(r"\pi", "3.14", id="pi-vs-two-places"),
    pytest.param(r"\frac{1}{3}", "0.333", id="third-three-places"),
    pytest.param(r"\sqrt{2}", "1.414", id="sqrt-three-places"),
    pytest.param("-5", "5", id="sign-dropped"),
    pytest.param(r"-\infty", r"\infty", id="infinity-sign"),
    pytest.param("1", "0.999", id="nearly-one"),
    pytest.param("7", "7.0001", id="perturbed"),
    pytest.param("0", "O", id="zero-vs-letter-o"),
    pytest.param("x=5", "x=6", id="different-assignment"),
    pytest.param("x^2+2x+1", "x^2+2x-1", id="polynomial-sign"),
    pytest.param("1+i", "1-i", id="complex-conjugate"),
    pytest.param(
        r"\begin{pmatrix}1\\2\end{pmatrix}", r"\begin{pmatrix}2\\1\end{pmatrix}", id="vector-swap"
    ),
    pytest.param(
        r"\begin{pmatrix}1&2\\3&4\end{pmatrix}",
        r"\begin{pmatrix}1&3\\2&4\end{pmatrix}",
        id="matrix-transposed",
    ),
    pytest.param(r"\text{(C)}", "D", id="text-letter-other"),
    pytest.param(r"\text{Monday}", "Tuesday", id="text-word-other"),
    # debatable: "1.5e3" is not LaTeX; math-verify reads it as 1.5*e*3
    pytest.param("1500", "1.5e3", id="debatable-e-notation-is-euler-e"),
    # debatable: an angle in degrees against radians
    pytest.param(r"90^\circ", r"\frac{\pi}{2}", id="debatable-degrees-vs-radians"),
    # debatable: sympy reads \log as the natural log, but math-verify keeps \ln and \log apart
    pytest.param(r"\ln 2", r"\log 2", id="debatable-ln-vs-log"),
    # debatable: math-verify does not evaluate \sqrt{-1} to i
    pytest.param("i", r"\sqrt{-1}", id="debatable-sqrt-minus-one"),
    pytest.param("e", "2.718", id="e-three-places"),
]


@pytest.mark.parametrize(("gold", "candidate"), EQUIVALENT)
def test_equivalent(gold: str, candidate: str) -> None:
    assert equivalent(gold, candidate)


@pytest.mark.parametrize(("gold", "candidate"), NOT_EQUIVALENT)
def test_not_equivalent(gold: str, candidate: str) -> None:
    assert not equivalent(gold, candidate)


# --- the math grader on whole answer texts ---------------------------------------------------------

REASONING = "We add the two equations, so $2x = 6$ and hence $x = 3$.\n\n"

MATH_TEXTS = [
    # (text, gold, correct, format_ok, pred)
    pytest.param(REASONING + r"Therefore \boxed{3}.", "3", True, True, "3", id="reasoning-boxed"),
    pytest.param(
        r"The final answer is $\frac{1}{2}$.",
        r"\frac{1}{2}",
        True,
        True,
        r"\frac{1}{2}",
        id="final-answer-dollars",
    ),
    pytest.param(
        r"Final Answer: The final answer is $\frac{1}{2}$. I hope it is correct.",
        "0.5",
        True,
        True,
        r"\frac{1}{2}",
        id="minerva-final-answer",
    ),
    pytest.param(
        "First guess \\boxed{2}.\n\nChecking again, the answer is \\boxed{3}.",
        "3",
        True,
        True,
        "3",
        id="several-boxed-last-wins",
    ),
    pytest.param(
        "First guess \\boxed{3}.\n\nChecking again, the answer is \\boxed{2}.",
        "3",
        False,
        True,
        "2",
        id="several-boxed-earlier-right-is-wrong",
    ),
    # math-verify alone joins every box of a text into a set ({2, 3} here): graders.py hands it
    # only the text after the boxes that precede the final one
    pytest.param(
        r"First \boxed{2}, then correcting: \boxed{3}",
        "3",
        True,
        True,
        "3",
        id="correction-on-one-line-last-wins-fixed-here",
    ),
    pytest.param(
        "Try $\\boxed{2}$.\nNo: $\\boxed{3}$",
        "2, 3",
        False,
        True,
        "3",
        id="draft-box-is-not-part-of-the-answer-fixed-here",
    ),
    pytest.param(
        r"$\boxed{2}$ and $\boxed{3}$",
        "2, 3",
        True,
        True,
        "2 and 3",
        id="boxes-joined-by-and-dollars",
    ),
    pytest.param(r"\boxed{2}, \boxed{3}", "3, 2", True, True, "2,3", id="boxes-joined-by-comma"),
    pytest.param(r"\boxed{\boxed{3}}", "3", True, True, "3", id="box-in-a-box"),
    pytest.param(
        r"The solutions are \boxed{2} and \boxed{3}.",
        "2, 3",
        True,
        True,
        "2,3",
        id="boxes-joined-by-and",
    ),
    pytest.param(
        r"So $\boxed{\frac{1}{\sqrt{2}}}$",
        r"\frac{\sqrt{2}}{2}",
        True,
        True,
        r"\frac{1}{\sqrt{2}}",
        id="nested-braces",
    ),
    pytest.param("I cannot solve this problem.", "3", False, False, None, id="no-answer"),
    pytest.param("", "3", False, False, None, id="empty-text"),
    pytest.param(r"\boxed{}", "3", False, False, "", id="empty-box"),
    pytest.param(
        r"The answer is \boxed{3", "3", False, False, r"\boxed{3", id="unclosed-box-not-an-answer"
    ),
    pytest.param("The answer is 42", "42", True, True, "42", id="answer-is-bare"),
    pytest.param("Answer: 42", "42", True, True, "42", id="answer-colon"),
    pytest.param(r"\boxed 5", "5", True, True, "5", id="boxed-space-token"),
    pytest.param(r"\fbox{7}", "7", True, True, "7", id="fbox-fixed-here"),
    pytest.param(r"\[\boxed{x^2-1}\]", "(x-1)(x+1)", True, True, "x^2-1", id="display-boxed"),
    pytest.param(r"Thus \boxed{[1,2)}", "[1,2]", False, True, "[1,2)", id="boxed-interval-wrong"),
    pytest.param(
        r"$\boxed{\text{(C)}}$", r"\text{(C)}", True, True, r"\text{(C)}", id="boxed-text"
    ),
    pytest.param("The answer is $x = 5$.", "5", True, True, "x = 5", id="answer-as-assignment"),
    pytest.param(
        "**Final Answer**\n\\[\n\\boxed{10{,}000}\n\\]",
        "10000",
        True,
        True,
        "10,000",
        id="boxed-latex-thousands",
    ),
    pytest.param(
        r"The answer is 3, not \boxed{4}",
        "3",
        False,
        True,
        "4",
        id="box-beats-prose",
    ),
    pytest.param(
        r"The percentage is $\boxed{12.5\%}$.",
        "12.5",
        True,
        True,
        r"12.5\%",
        id="boxed-decimal-percent-fixed-here",
    ),
    pytest.param(
        r"So the range is $\boxed{(-\infty, 2) \cup (3, \infty)}$.",
        r"(-\infty,2)\cup(3,\infty)",
        True,
        True,
        r"(-\infty, 2) \cup (3, \infty)",
        id="boxed-union",
    ),
]


@pytest.mark.parametrize(("text", "gold", "correct", "format_ok", "pred"), MATH_TEXTS)
def test_math_texts(text: str, gold: str, correct: bool, format_ok: bool, pred: str | None) -> None:
    verdict = grade("math", text, gold)
    assert verdict == Verdict(pred, correct, format_ok), verdict


def test_math_gold_that_does_not_parse_is_an_error() -> None:
    verdict = grade("math", r"\boxed{3}", "")
    assert not verdict.correct
    assert verdict.error == "the gold answer did not parse"


def test_unknown_grader() -> None:
    with pytest.raises(ValueError, match="unknown grader 'fuzzy'"):
        grade("fuzzy", "3", "3")


# --- remove_until("</think>") ----------------------------------------------------------------------

THINK = [
    # (text, gold, correct, format_ok)
    pytest.param(
        "<think>maybe \\boxed{4}</think>The answer is \\boxed{5}",
        "5",
        True,
        True,
        id="answer-after-marker",
    ),
    pytest.param(
        "<think>so it is \\boxed{5}</think>The answer is \\boxed{4}",
        "5",
        False,
        True,
        id="right-inside-thinking-does-not-count",
    ),
    pytest.param(
        "<think>the answer is \\boxed{5}</think>I am not sure.",
        "5",
        False,
        False,
        id="answer-only-inside-thinking",
    ),
    pytest.param(
        "<think>a</think>draft \\boxed{1}<think>b</think>\\boxed{5}",
        "5",
        True,
        True,
        id="last-marker-wins",
    ),
    pytest.param("No thinking here: \\boxed{5}", "5", True, True, id="no-marker-keeps-all"),
    pytest.param(
        "<think>still thinking... \\boxed{5}",
        "5",
        True,
        True,
        id="unclosed-thinking-keeps-all",
    ),
]


@pytest.mark.parametrize(("text", "gold", "correct", "format_ok"), THINK)
def test_remove_until_think(text: str, gold: str, correct: bool, format_ok: bool) -> None:
    verdict = grade("math", extract.remove_until(text, "</think>"), gold)
    assert (verdict.correct, verdict.format_ok) == (correct, format_ok), verdict


@pytest.mark.parametrize(
    ("text", "marker", "want"),
    [
        pytest.param("a</think>b", "</think>", "b", id="cut"),
        pytest.param("a</think>b</think>c", "</think>", "c", id="cut-at-last"),
        pytest.param("abc", "</think>", "abc", id="no-marker"),
        pytest.param("a</think>b", None, "a</think>b", id="marker-none"),
        pytest.param("a</think>b", "", "a</think>b", id="marker-empty"),
        pytest.param("a</think>", "</think>", "", id="nothing-after"),
    ],
)
def test_remove_until(text: str, marker: str | None, want: str) -> None:
    assert extract.remove_until(text, marker) == want


# --- multiple choice -------------------------------------------------------------------------------

CHOICE = [
    # (text, n_choices, letter)
    pytest.param("Answer: (C)", 4, "C", id="answer-parens"),
    pytest.param("After comparing the options, **C**", 4, "C", id="bold-letter"),
    pytest.param("The answer is C.", 4, "C", id="answer-is"),
    pytest.param("So the answer is: **B**", 4, "B", id="answer-is-colon-bold"),
    pytest.param(r"Hence $\boxed{D}$", 4, "D", id="boxed-letter"),
    pytest.param(r"\boxed{\text{B}}", 4, "B", id="boxed-text-letter"),
    pytest.param(r"answer is $\boxed{\textbf{(C)}}$", 4, "C", id="boxed-textbf-letter"),
    pytest.param(r"The answer is \(\boxed{C}\)", 4, "C", id="boxed-in-parens-math"),
    pytest.param("Option B is correct.", 4, "B", id="option-is-correct"),
    pytest.param("Choice C is the correct one.", 4, "C", id="choice-is-the-correct"),
    pytest.param("answer: c", 4, "C", id="lower-case"),
    pytest.param("the answer is (b)", 4, "B", id="lower-case-parens"),
    pytest.param("ANSWER: B", 4, "B", id="upper-case-phrase"),
    pytest.param("**Answer:** C", 4, "C", id="bold-label-fixed-here"),
    pytest.param("**Answer: C**", 4, "C", id="bold-phrase"),
    pytest.param("Answer:**D**", 4, "D", id="bold-no-space"),
    pytest.param("Final answer: B", 4, "B", id="final-answer"),
    pytest.param("Answer: option B", 4, "B", id="answer-option"),
    pytest.param("The correct answer is **(B) 12**", 4, "B", id="bold-letter-with-text"),
    pytest.param("Answer: A\nWait, I made an error. Answer: D", 4, "D", id="last-phrase-wins"),
    pytest.param("The answer is (A) because (B) is wrong", 4, "A", id="phrase-beats-parens"),
    pytest.param("Between (A) and (B), I pick (B).", 4, "B", id="last-parens"),
    pytest.param("B", 4, "B", id="only-letter"),
    pytest.param("(B)", 4, "B", id="only-letter-parens"),
    pytest.param("B.", 4, "B", id="only-letter-dot"),
    pytest.param("Answer: E", 4, None, id="beyond-four-choices"),
    pytest.param("Answer: (E)", 4, None, id="beyond-four-choices-parens"),
    pytest.param("Answer: E", 5, "E", id="fifth-of-five"),
    pytest.param("I think it's A or B", 4, None, id="undecided"),
    pytest.param("Answer: Apple", 4, None, id="word-starting-with-letter"),
    pytest.param(
        "The answer is a multiple of 3, which is **C**",
        4,
        "C",
        id="article-a-is-not-a-letter-fixed-here",
    ),
    # debatable: a boxed letter followed by option text is not read
    pytest.param(r"\boxed{C) 12}", 4, None, id="debatable-boxed-letter-with-text"),
]


@pytest.mark.parametrize(("text", "n", "letter"), CHOICE)
def test_choice_letter(text: str, n: int, letter: str | None) -> None:
    assert extract.choice_letter(text, n) == letter


@pytest.mark.parametrize(
    ("text", "gold", "choices", "verdict"),
    [
        pytest.param("Answer: B", "B", None, Verdict("B", True, True), id="gold-letter"),
        pytest.param("Answer: B", "(B)", None, Verdict("B", True, True), id="gold-parens"),
        pytest.param("Answer: (c)", "C", None, Verdict("C", True, True), id="gold-lower-answer"),
        pytest.param("Answer: B", "C", None, Verdict("B", False, True), id="wrong-letter"),
        pytest.param(
            "Answer: B",
            "12",
            ["10", "12", "14", "16"],
            Verdict("B", True, True),
            id="gold-as-option-text",
        ),
        pytest.param(
            "Answer: C",
            "12",
            ["10", "12", "14", "16"],
            Verdict("C", False, True),
            id="gold-as-option-text-wrong",
        ),
        pytest.param(
            "Answer: E",
            "E",
            ["1", "2", "3", "4"],
            Verdict(None, False, False),
            id="letter-beyond-choices",
        ),
        pytest.param("no idea", "A", None, Verdict(None, False, False), id="no-letter"),
    ],
)
def test_choice_grader(text: str, gold: str, choices: list[str] | None, verdict: Verdict) -> None:
    assert grade("choice", text, gold, choices=choices) == verdict


# --- numeric (GSM8K) -------------------------------------------------------------------------------

NUMERIC = [
    # (text, gold, pred, correct, format_ok)
    pytest.param("So she pays 1000 + 234.\n#### 1,234", "1234", "1,234", True, True, id="hashes"),
    pytest.param("She makes 9 * 2 = 18.\nA: 18", "18", "18", True, True, id="a-colon"),
    pytest.param("The total is $18.00", "18", "18.00", True, True, id="dollars-cents"),
    pytest.param("The answer is 18 dollars.", "18", "18", True, True, id="answer-with-unit"),
    pytest.param("It drops by -5", "-5", "-5", True, True, id="negative"),
    pytest.param("It drops by -5", "5", "-5", False, True, id="negative-vs-positive"),
    pytest.param("20 - 25 = -5", "-5", "-5", True, True, id="negative-after-equals"),
    pytest.param("So he has 12.", "12", "12", True, True, id="trailing-full-stop"),
    pytest.param("3 apples and 5 pears, 8 in all", "8", "8", True, True, id="last-number"),
    pytest.param("The discount is 50%", "50", "50", True, True, id="percent"),
    pytest.param("The answer is $1,000.", "1000", "1,000", True, True, id="dollar-thousands"),
    pytest.param("Answer: -3.5", "-3.5", "-3.5", True, True, id="answer-negative-decimal"),
    pytest.param("No numbers here", "3", None, False, False, id="no-number"),
    pytest.param("x = 4, so the answer is \\boxed{16}", "16", "16", True, True, id="boxed"),
    pytest.param("Answer: 1/2", "0.5", "1/2", True, True, id="answer-fraction-fixed-here"),
    pytest.param(
        r"the answer is \frac{3}{4}",
        "0.75",
        r"\frac{3}{4}",
        True,
        True,
        id="answer-latex-fraction-fixed-here",
    ),
    pytest.param("Answer: 3 1/2", "3.5", "3 1/2", True, True, id="mixed-number-fixed-here"),
    pytest.param("The answer is 7.5 hours", "7.5", "7.5", True, True, id="decimal-with-unit"),
    pytest.param("It costs $ 45.", "45", "45", True, True, id="dollar-space"),
    pytest.param("A: 18 eggs\nExtra note: 99", "18", "18", True, True, id="a-colon-beats-last"),
    pytest.param("So 100.0", "100", "100.0", True, True, id="decimal-zero"),
    pytest.param("The answer is 18", "18.0", "18", True, True, id="gold-decimal"),
    pytest.param("0.30000000001", "0.3", "0.30000000001", True, True, id="relative-tolerance"),
    pytest.param("#### 72\n", "72", "72", True, True, id="hashes-newline"),
    pytest.param("I got 3", "three", "3", False, True, id="gold-not-a-number"),
]


@pytest.mark.parametrize(("text", "gold", "pred", "correct", "format_ok"), NUMERIC)
def test_numeric(text: str, gold: str, pred: str | None, correct: bool, format_ok: bool) -> None:
    verdict = grade("numeric", text, gold)
    assert (verdict.pred, verdict.correct, verdict.format_ok) == (pred, correct, format_ok)


def test_numeric_gold_not_a_number_is_an_error() -> None:
    assert grade("numeric", "3", "three").error == "the gold answer is not a number"


# --- exact and regex -------------------------------------------------------------------------------

EXACT = [
    # (text, gold, verdict)
    pytest.param(r"It is \boxed{Paris}.", "Paris", Verdict("Paris", True, True), id="boxed"),
    pytest.param("Thinking...\nParis", "Paris", Verdict("Paris", True, False), id="last-line"),
    pytest.param("Paris\n\n  ", " Paris ", Verdict("Paris", True, False), id="whitespace"),
    pytest.param(r"\boxed{paris}", "Paris", Verdict("paris", False, True), id="case-matters"),
    pytest.param(r"\boxed{0.5}", r"\frac{1}{2}", Verdict("0.5", False, True), id="no-maths"),
    pytest.param("", "Paris", Verdict(None, False, False), id="empty"),
]


@pytest.mark.parametrize(("text", "gold", "verdict"), EXACT)
def test_exact(text: str, gold: str, verdict: Verdict) -> None:
    assert grade("exact", text, gold) == verdict


REGEX = [
    # (text, pattern, gold, verdict)
    pytest.param(
        "Answer: 12\nAnswer: 14",
        r"Answer: (\d+)",
        "14",
        Verdict("14", True, True),
        id="group-last-match",
    ),
    pytest.param(
        "Answer: 12",
        r"Answer: (\d+)",
        "14",
        Verdict("12", False, True),
        id="group-wrong",
    ),
    pytest.param(
        "code XJ-42 then XJ-7",
        r"XJ-\d+",
        "XJ-7",
        Verdict("XJ-7", True, True),
        id="no-group-whole-match",
    ),
    pytest.param("nothing", r"Answer: (\d+)", "1", Verdict(None, False, False), id="no-match"),
    pytest.param(
        "Answer: yes",
        r"Answer: (\d+)?\s*(\w+)",
        "",
        Verdict("", True, True),
        id="first-group-unmatched-is-empty",
    ),
]


@pytest.mark.parametrize(("text", "pattern", "gold", "verdict"), REGEX)
def test_regex(text: str, pattern: str, gold: str, verdict: Verdict) -> None:
    assert grade("regex", text, gold, pattern=pattern) == verdict


def test_regex_needs_a_pattern() -> None:
    with pytest.raises(ValueError, match="needs a pattern"):
        grade("regex", "Answer: 1", "1")


# --- extract, directly -----------------------------------------------------------------------------

BOXED_ALL = [
    pytest.param(r"\boxed{1} and \fbox{2}", [(0, 9, "1"), (14, 22, "2")], id="boxed-and-fbox"),
    pytest.param(r"\boxed 5 and more", [(0, 8, "5")], id="boxed-space-token"),
    pytest.param(r"$\boxed 5$", [(1, 9, "5")], id="boxed-token-stops-at-dollar"),
    pytest.param(r"\boxed5", [], id="boxed-glued-token-not-read"),
    pytest.param(r"\boxed{\{1,2\}}", [(0, 15, r"\{1,2\}")], id="escaped-braces"),
    pytest.param(r"\boxed{a\}b}", [(0, 12, r"a\}b")], id="escaped-closing-brace"),
    pytest.param(r"\boxed{1\\}", [(0, 11, r"1\\")], id="line-break-before-brace-fixed-here"),
    pytest.param(
        r"\boxed{\frac{1}{\sqrt{2}}}", [(0, 26, r"\frac{1}{\sqrt{2}}")], id="nested-braces"
    ),
    pytest.param(r"\boxed{ 3 }", [(0, 11, "3")], id="inside-stripped"),
    pytest.param(r"\boxed  {3}", [(0, 11, "3")], id="space-before-brace"),
    pytest.param("\\boxed{", [], id="unclosed"),
    pytest.param(r"\boxed{\boxed{3}", [(7, 16, "3")], id="unclosed-outer-closed-inner"),
]


@pytest.mark.parametrize(("text", "want"), BOXED_ALL)
def test_boxed_all(text: str, want: list[tuple[int, int, str]]) -> None:
    assert extract.boxed_all(text) == want


def test_last_boxed() -> None:
    assert extract.last_boxed(r"\boxed{1} then \boxed{2}") == "2"
    assert extract.last_boxed("no box") is None


FINAL_LINE = [
    pytest.param("The final answer is $42$.", "42", id="dollars"),
    pytest.param(r"Answer: \(x+1\)", "x+1", id="paren-math"),
    pytest.param("the answer is: 7\nmore text", "7", id="rest-of-line"),
    pytest.param("The answer is $$5$$", "5", id="display-dollars"),
    pytest.param("nothing here", None, id="none"),
    pytest.param("The answer is .", None, id="empty-answer"),
    pytest.param("final answer = 3.", "3", id="equals"),
    pytest.param("**Final answer:** 42", "42", id="bold-label"),
    pytest.param(
        "The answer is 3. The final answer is 4.", "4", id="last-phrase-on-a-line-fixed-here"
    ),
    pytest.param(
        r"The final answer is $\frac{1}{2}$. I hope it is correct.",
        r"\frac{1}{2}",
        id="minerva-suffix-fixed-here",
    ),
]


@pytest.mark.parametrize(("text", "want"), FINAL_LINE)
def test_final_answer_line(text: str, want: str | None) -> None:
    assert extract.final_answer_line(text) == want


PARSE_NUMBER = [
    pytest.param("1,234", 1234.0, id="thousands"),
    pytest.param("$18", 18.0, id="dollar"),
    pytest.param(r"\$18", 18.0, id="escaped-dollar-fixed-here"),
    pytest.param("-3.50", -3.5, id="negative-decimal"),
    pytest.param("12.", 12.0, id="trailing-dot"),
    pytest.param("50%", 50.0, id="percent"),
    pytest.param(r"50\%", 50.0, id="latex-percent"),
    pytest.param("10{,}000", 10000.0, id="latex-thousands"),
    pytest.param(r"1\!000", 1000.0, id="latex-negative-space"),
    pytest.param("1/2", 0.5, id="slash-fraction"),
    pytest.param(r"\frac{3}{4}", 0.75, id="frac"),
    pytest.param(r"\dfrac{3}{4}", 0.75, id="dfrac"),
    pytest.param(r"-\frac{1}{2}", -0.5, id="negative-frac"),
    pytest.param("3 1/2", 3.5, id="mixed-number-fixed-here"),
    pytest.param(r"5\text{ cm}", 5.0, id="unit"),
    pytest.param("+7", 7.0, id="plus-sign"),
    pytest.param("1e3", 1000.0, id="e-notation"),
    pytest.param("1/0", None, id="divide-by-zero"),
    pytest.param("abc", None, id="word"),
    pytest.param("", None, id="empty"),
    pytest.param("--3", None, id="double-minus"),
    pytest.param("inf", None, id="inf-fixed-here"),
    pytest.param("nan", None, id="nan-fixed-here"),
    pytest.param("1e999", None, id="overflow-fixed-here"),
]


@pytest.mark.parametrize(("value", "want"), PARSE_NUMBER)
def test_parse_number(value: str, want: float | None) -> None:
    assert extract.parse_number(value) == want


# --- robustness: pathological answers return a Verdict ---------------------------------------------
#
# pytest runs tests in the main thread, so math-verify's SIGALRM limits apply here (in another
# thread they are off, see graders._limit). They are lowered to 1 s for these tests so that each
# stays well under 5 s; a verdict that hit a limit carries an error and counts as wrong.

PATHOLOGICAL = [
    # (text, gold, correct, error expected? None: either)
    pytest.param("\\boxed{" + "{" * 5000, "7", False, False, id="five-thousand-open-braces"),
    # math-verify takes about the 1 s limit to parse this: the error may or may not be set
    pytest.param("\\boxed{" * 15000, "7", False, None, id="unclosed-boxes-near-the-limit"),
    pytest.param(r"\boxed{9^{9^{9^{9}}}}", "7", False, True, id="power-tower-times-out"),
    pytest.param(r"\boxed{9^{9^{9^{9}}}}", "9^{9^{9^{9}}}", True, False, id="power-tower-same"),
    pytest.param(r"\boxed{1000000!}", "7", False, True, id="huge-factorial-times-out"),
    pytest.param(
        "$" + "(" * 3000 + "1" + ")" * 3000 + "$", "1", False, True, id="deep-parens-times-out"
    ),
    pytest.param("The fox 12 jumps. " * 5600 + r"\boxed{7}", "7", True, False, id="100kB-text"),
    pytest.param("}" * 100_000, "7", False, False, id="100kB-closing-braces"),
    pytest.param("$" * 100_001, "7", False, False, id="100kB-dollars"),
    pytest.param("\\" * 100_000 + "{", "7", False, False, id="100kB-backslashes"),
]


@pytest.mark.parametrize(("text", "gold", "correct", "errs"), PATHOLOGICAL)
def test_pathological_math(
    monkeypatch: pytest.MonkeyPatch, text: str, gold: str, correct: bool, errs: bool | None
) -> None:
    monkeypatch.setattr(graders, "PARSE_TIMEOUT", 1)
    monkeypatch.setattr(graders, "VERIFY_TIMEOUT", 1)
    start = time.perf_counter()
    verdict = grade("math", text, gold)
    assert time.perf_counter() - start < 5
    assert verdict.correct is correct
    if errs is not None:
        assert (verdict.error is not None) is errs, verdict.error


@pytest.mark.parametrize("grader", ["choice", "numeric", "exact"])
@pytest.mark.parametrize(
    "text",
    [
        pytest.param("\\boxed{" + "{" * 5000, id="open-braces"),
        pytest.param("\\boxed{" * 15000, id="unclosed-boxes"),
        pytest.param("answer is " * 10_000, id="answer-phrases"),
        pytest.param("1," * 50_000, id="commas"),
    ],
)
def test_pathological_string_graders(grader: str, text: str) -> None:
    start = time.perf_counter()
    assert isinstance(grade(grader, text, "7"), Verdict)
    assert time.perf_counter() - start < 5
