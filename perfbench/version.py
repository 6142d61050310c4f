"""The version of perfbench, in one place (``perfbench.__version__`` re-exports it)."""

__version__ = "0.1.0"
