"""The store stage: one SQLite file holding many runs."""

from perfbench.store.runs import Run, Store
from perfbench.store.writer import RecordWriter

__all__ = ["RecordWriter", "Run", "Store"]
