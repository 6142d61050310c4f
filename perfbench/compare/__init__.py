"""Two runs side by side: every figure's change with a bootstrap confidence interval and a
verdict, gated by thresholds (:mod:`.runs`), and two runs' answers question by question with
McNemar's test (:mod:`.answers`)."""

from perfbench import _callable_package

_callable_package(__name__, "perfbench.compare.runs", "compare")
