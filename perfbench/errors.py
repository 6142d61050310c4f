"""The one exception tree of perfbench.

    PerfbenchError                  base; str() is one line that names the fix
    ├── UsageError                  bad flags or input: the CLI exits 2
    │   ├── ConfigError             a spec field out of range
    │   ├── DatasetError            a dataset or prompt file that cannot be used
    │   ├── ServerUnreachable       the pre-run check could not connect
    │   └── ServerRejected          the server answered the pre-run check with an error (404 model, 401 key)
    ├── RunError                    the run could not do its work: the CLI exits 1
    ├── WorkerError                 a worker could not do its part (exit 2 when its cause was usage)
    └── StoreError                  the database cannot be opened, or a run is not in it (exit 2)

Library code raises these and nothing else for expected failures; ``cli.py`` turns them
into one line on stderr and an exit code, once, at the edge.
"""

from __future__ import annotations


class PerfbenchError(Exception):
    """Base of every error perfbench raises on purpose."""

    exit_code = 1


class UsageError(PerfbenchError):
    exit_code = 2


class ConfigError(UsageError):
    pass


class DatasetError(UsageError):
    pass


class ServerUnreachable(UsageError):
    pass


class ServerRejected(UsageError):
    pass


class RunError(PerfbenchError):
    exit_code = 1


class StoreError(PerfbenchError):
    exit_code = 2


class WorkerError(PerfbenchError):
    """A worker process or Ray actor could not do its part; ``exit_code`` is its cause's."""

    def __init__(self, message: str, exit_code: int = 1) -> None:
        super().__init__(message)
        self.exit_code = exit_code
