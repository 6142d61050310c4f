"""The grade stage: answer extraction, equivalence, sampling metrics and thinking efficiency."""

from perfbench.grade.passk import maj_at_k, majority, mean_pass_at_k, pass_at_k

__all__ = ["maj_at_k", "majority", "mean_pass_at_k", "pass_at_k"]
