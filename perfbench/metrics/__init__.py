"""The metrics stage: figures computed from the store."""

from perfbench.metrics.summary import Distribution, Summary, summarize

__all__ = ["Distribution", "Summary", "summarize"]
