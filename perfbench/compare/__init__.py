"""Two runs side by side: every figure's change with a bootstrap confidence interval and a
verdict, gated by thresholds (:mod:`.runs`), two runs' answers question by question with
McNemar's test (:mod:`.answers`), and runs at several concurrency levels against concurrency 1's
greedy outputs (:mod:`.determinism`)."""

from perfbench import _callable_package

_callable_package(__name__, "perfbench.compare.runs", "compare")
