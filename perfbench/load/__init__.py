"""The schedule stage: arrival processes and load shapes."""

from perfbench.load.schedule import arrival_offsets

__all__ = ["arrival_offsets"]
