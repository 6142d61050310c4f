"""Thinking figures on crafted reasoning texts whose tokens, steps and thoughts are known.

Tokens are counted by whitespace (``words``) so that every T and T̂ below is exact and written
out by hand.
"""

from __future__ import annotations

import pickle

import pytest

from perfbench.grade.think import (
    StepSplit,
    ThinkFigures,
    ThinkRow,
    aggregate,
    analyse,
    answer_candidates,
    candidate_checker,
    count_thoughts,
    first_correct_step,
    measure,
    split_steps,
    thinking_text,
)


def words(text: str) -> int:
    return len(text.split())


def is_42(candidate: str) -> bool:
    return candidate == "42"


# Three steps of 5, 5 and 6 words; the answer first appears boxed in step 2 (index 1).
REASONING = (
    "First multiply six by seven.\n"
    "\n"
    "That gives \\boxed{42} as product.\n"
    "\n \n"
    "But wait, alternatively add: 40+2 still."
)


def spans_text(text: str, spans: list[tuple[int, int]]) -> list[str]:
    return [text[a:b] for a, b in spans]


# -- thinking text --------------------------------------------------------------------------------


def test_captured_reasoning_wins_over_think_tags_and_output():
    assert thinking_text("I think.", "<think>other</think>42") == ("I think.", "reasoning")
    assert thinking_text("  \n", "plain") == ("plain", "output")  # blank reasoning: none


def test_think_tag_fallback_takes_text_before_the_last_close_tag():
    text, source = thinking_text(None, "<think>a</think> b </think>The answer is 4.")
    assert (text, source) == ("a</think> b ", "think_tag")
    assert thinking_text("", "no open tag</think>4") == ("no open tag", "think_tag")


def test_output_fallback_is_the_whole_output():
    assert thinking_text(None, "The answer is 4.") == ("The answer is 4.", "output")
    assert thinking_text(None, None) == ("", "output")


# -- thoughts -------------------------------------------------------------------------------------


def test_markers_are_case_insensitive_whole_phrases():
    text = (
        "Alternatively, x. ALTERNATIVELY y. BUT WAIT. but\nwait again. Another approach: z. "
        "Let me reconsider."
    )
    assert count_thoughts(text) == 6


def test_markers_respect_word_boundaries():
    assert count_thoughts("The waitress came.", ["wait"]) == 0
    assert count_thoughts("Wait, wait. Await it. wait-list", ["wait"]) == 3
    assert count_thoughts("alternativelyx, another wayward path, butwait") == 0


def test_overlapping_markers_count_once_and_custom_lists_work():
    assert count_thoughts("But wait, hmm.", ["wait", "but wait"]) == 1
    assert count_thoughts("Hmm. hmm, HMM", ["hmm"]) == 3
    with pytest.raises(ValueError):
        count_thoughts("x", [" "])


# -- steps ----------------------------------------------------------------------------------------


def test_separator_splits_at_blank_lines_and_drops_empty_steps():
    text = "\n\nOne.\nStill one.\n\n\n\nTwo.\r\n\r\nThree.\n  \n\t\n"
    spans = split_steps(text, "separator")
    assert spans_text(text, spans) == ["One.\nStill one.", "Two.", "Three."]
    assert split_steps("", "separator") == [] and split_steps(" \n\n ", "separator") == []


def test_keywords_split_before_each_marker():
    text = "Try x = 1. Alternatively, x = 2. But wait, check. waitress"
    spans = split_steps(text, "keywords")
    assert spans_text(text, spans) == [
        "Try x = 1.",
        "Alternatively, x = 2.",
        "But wait, check. waitress",
    ]
    assert spans_text("Alternatively only", split_steps("Alternatively only", "keywords")) == [
        "Alternatively only"
    ]


def test_unknown_and_llm_strategies_are_refused():
    with pytest.raises(ValueError, match="judge"):
        split_steps("x", "llm")
    with pytest.raises(ValueError, match="unknown"):
        split_steps("x", "sentences")


# -- candidates and the first correct step --------------------------------------------------------


def test_candidates_boxed_answer_phrase_and_final_equals():
    assert answer_candidates("so \\boxed{\\frac{1}{2}} and \\boxed{3}") == ["\\frac{1}{2}", "3"]
    assert answer_candidates("Hmm.\nThe answer is $7$.\nok") == ["7"]
    assert answer_candidates("We add.\nSo 40 + 2 = 42.") == ["42"]
    assert answer_candidates("x = 42, then we go on to check more") == []  # "=" not at the end
    assert answer_candidates("x = 42\nwhich we check next") == []
    assert answer_candidates("a <= 3 and b == 3") == []


def test_first_correct_by_boxed():
    assert first_correct_step(REASONING, split_steps(REASONING, "separator"), is_42) == 1


def test_first_correct_by_answer_phrase_and_by_equals():
    text = "Guess 41.\n\nNo, the answer is 42\n\nDone."
    assert first_correct_step(text, split_steps(text, "separator"), is_42) == 1
    text = "Six sevens.\n\nSix times seven = 42.\n\nDone."
    assert first_correct_step(text, split_steps(text, "separator"), is_42) == 1


def test_each_candidate_is_checked_once():
    seen: list[str] = []

    def check(candidate: str) -> bool:
        seen.append(candidate)
        return False

    text = "x = 5\n\ny = 5\n\n\\boxed{5}"
    assert first_correct_step(text, split_steps(text, "separator"), check) is None
    assert seen == ["5"]


# -- figures --------------------------------------------------------------------------------------


def test_tokens_efficiency_and_thoughts_with_a_tokenizer():
    f = analyse(REASONING, None, is_42, count_tokens=words)
    assert f.steps == tuple(split_steps(REASONING, "separator"))
    assert (f.reasoning_tokens, f.first_correct_tokens, f.reflection_tokens) == (16, 10, 6)
    assert f.efficiency == 10 / 16
    assert f.thought_count == 2  # "But wait", "alternatively"
    assert (f.first_correct_step, f.source, f.token_source) == (1, "reasoning", "tokenizer")
    assert (f.strategy, f.note) == ("separator", None)
    assert pickle.loads(pickle.dumps(f)) == f  # it comes back from a worker process


def test_keywords_strategy_moves_the_first_correct_step():
    f = analyse(REASONING, None, is_42, count_tokens=words, strategy="keywords")
    # steps: [first two paragraphs], [But wait,], [alternatively add: 40+2 still.]
    assert len(f.steps) == 3 and f.first_correct_step == 0
    assert (f.reasoning_tokens, f.first_correct_tokens, f.reflection_tokens) == (16, 10, 6)


def test_none_correct_means_efficiency_zero():
    f = analyse(REASONING, None, lambda c: False, count_tokens=words)
    assert f.first_correct_step is None
    assert (f.first_correct_tokens, f.reflection_tokens, f.efficiency) == (0, 16, 0.0)


def test_no_thinking_text_is_zero_everywhere():
    f = analyse("", "", is_42, count_tokens=words)
    assert (f.reasoning_tokens, f.efficiency, f.steps, f.first_correct_step) == (0, 0.0, (), None)


def test_usage_proportional_estimate_without_a_tokenizer():
    text = "a" * 30 + "\n\n\\boxed{42}\n\n" + "b" * 56  # step 2 ends at character 42
    assert len(text) == 100
    f = analyse(text, None, is_42, usage_reasoning_tokens=50)
    assert f.token_source == "usage"
    assert (f.reasoning_tokens, f.first_correct_tokens, f.reflection_tokens) == (50, 21, 29)
    assert f.efficiency == 21 / 50


def test_chars_estimate_is_the_last_resort():
    text = "a" * 30 + "\n\n\\boxed{42}\n\n" + "b" * 56
    f = analyse(text, None, is_42)
    assert f.token_source == "chars"
    assert (f.reasoning_tokens, f.first_correct_tokens) == (25, 11)  # ceil(100/4), ceil(42/4)
    # server usage does not describe a whole output that is not known to be reasoning
    g = analyse(None, text, is_42, usage_reasoning_tokens=50)
    assert (g.source, g.token_source, g.reasoning_tokens) == ("output", "chars", 25)


def test_think_tag_text_is_measured_without_the_tags():
    output = "<think>\nSix sevens = 42.\n\nBut wait, check.\n</think>\n\nThe answer is \\boxed{42}."
    f = analyse(None, output, is_42, count_tokens=words)
    assert (f.source, f.reasoning_tokens, f.first_correct_tokens, f.first_correct_step) == (
        "think_tag",
        7,
        4,
        0,
    )


def test_a_prefix_never_counts_more_than_the_whole():
    def odd(text: str) -> int:  # a tokenizer whose prefix of the full text counts more
        return 5 if text.endswith("42") else 3

    text = "x = 42\n\nend"
    f = measure(text, "reasoning", StepSplit(((0, 6), (8, 11)), "separator"), 0, count_tokens=odd)
    assert (f.reasoning_tokens, f.first_correct_tokens, f.reflection_tokens) == (3, 3, 0)
    with pytest.raises(ValueError):
        measure(text, "reasoning", StepSplit(((0, 6),), "separator"), 1)


# -- candidate checkers ---------------------------------------------------------------------------


def test_checkers_follow_their_grader_and_pickle():
    math = pickle.loads(pickle.dumps(candidate_checker("math", "\\frac{1}{2}")))
    assert math("0.5") and math("\\dfrac12") and not math("2")
    numeric = candidate_checker("numeric", "1,234")
    assert numeric("$1,234") and numeric("1234.0") and not numeric("123")
    choice = candidate_checker("choice", "C", ["one", "two", "three", "four"])
    assert choice("C") and choice("(C)") and choice("\\text{C}") and not choice("B")
    assert candidate_checker("exact", "yes")("yes") and not candidate_checker("regex", "7")("8")
    with pytest.raises(ValueError):
        candidate_checker("vibes", "x")


def test_rule_based_analysis_with_a_math_checker():
    text = "Try 1/3.\n\nNo: it is \\boxed{\\frac{2}{4}}.\n\nCheck done."
    f = analyse(text, None, candidate_checker("math", "\\frac{1}{2}"), count_tokens=words)
    assert (f.first_correct_step, f.reasoning_tokens, f.first_correct_tokens) == (1, 8, 6)


# -- aggregate ------------------------------------------------------------------------------------


def figures(tokens: int, useful: int, thoughts: int) -> ThinkFigures:
    return ThinkFigures(
        reasoning_tokens=tokens,
        first_correct_tokens=useful,
        reflection_tokens=tokens - useful,
        efficiency=useful / tokens if tokens else 0.0,
        thought_count=thoughts,
        steps=(),
        first_correct_step=None,
        source="reasoning",
        token_source="tokenizer",
        strategy="separator",
    )


ROWS = [
    ThinkRow("easy", figures(100, 50, 1), True),
    ThinkRow("hard", figures(1000, 0, 9), False),
    ThinkRow("easy", figures(300, 30, 3), True),
    ThinkRow("easy", figures(200, 200, 0), False),
    ThinkRow("hard", figures(400, 100, 2), True),
]


def test_aggregate_means_per_subset_in_order_of_appearance():
    easy, hard = aggregate(ROWS)
    assert (easy.subset, easy.num, easy.over_limit) == ("easy", 3, 0)
    assert easy.reasoning_tokens == 200 and easy.first_correct_tokens == pytest.approx(280 / 3)
    assert easy.reflection_tokens == pytest.approx(320 / 3)
    assert easy.efficiency == pytest.approx((0.5 + 0.1 + 1.0) / 3)  # mean of ratios
    assert easy.thought_count == pytest.approx(4 / 3) and easy.accuracy == pytest.approx(2 / 3)
    assert (hard.num, hard.reasoning_tokens, hard.efficiency, hard.accuracy) == (2, 700, 0.125, 0.5)


def test_aggregate_filters_by_thinking_length_then_takes_the_first_n():
    easy, hard = aggregate(ROWS, max_think_tokens=400, count=1)
    assert (easy.num, easy.over_limit, easy.reasoning_tokens) == (1, 0, 100)
    assert (hard.num, hard.over_limit, hard.reasoning_tokens) == (1, 1, 400)
    easy, hard = aggregate(ROWS, max_think_tokens=250)
    assert (easy.num, easy.over_limit, easy.reasoning_tokens) == (2, 1, 150)
    (only,) = aggregate([ThinkRow("x", figures(10, 5, 0), True)], max_think_tokens=5)
    assert (only.num, only.over_limit, only.reasoning_tokens, only.accuracy) == (0, 1, None, None)
    with pytest.raises(ValueError):
        aggregate(ROWS, count=0)
