"""The schedule stage: arrival processes and load shapes."""

from perfbench.load.schedule import arrival_offsets, constant_offsets, ramp_offsets
from perfbench.load.trace import Trace, read_trace

__all__ = ["Trace", "arrival_offsets", "constant_offsets", "ramp_offsets", "read_trace"]
