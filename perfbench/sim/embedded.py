"""The embedded default: ``perfbench perf`` with no --url benchmarks a ``perfbench sim`` subprocess.

The simulator runs in its own process (and its own session, so that a Ctrl-C at the terminal
reaches only perfbench, which then stops it in order): it must not share the client's event
loop or CPU time, or the client would be measuring itself.
"""

from __future__ import annotations

import contextlib
import os
import re
import select
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence

from perfbench.errors import ConfigError, RunError

_LISTENING = re.compile(r"listening on (http://\S+)")


class EmbeddedSim:
    def __init__(self, args: Sequence[str] = (), *, start_timeout: float = 20.0) -> None:
        self.args = list(args)
        self.start_timeout = start_timeout
        self.url = ""
        self._proc: subprocess.Popen[bytes] | None = None
        self._stderr = tempfile.TemporaryFile()  # noqa: SIM115 - lives as long as the process

    def __enter__(self) -> EmbeddedSim:
        cmd = [
            sys.executable,
            "-m",
            "perfbench",
            "sim",
            "--host",
            "127.0.0.1",
            "--port",
            "0",
            "--parent-pid",
            str(os.getpid()),
            *self.args,
        ]
        self._proc = subprocess.Popen(
            cmd,
            stdout=subprocess.PIPE,
            stderr=self._stderr,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
        assert self._proc.stdout is not None
        deadline = time.monotonic() + self.start_timeout
        line = b""
        fd = self._proc.stdout.fileno()
        while time.monotonic() < deadline:
            ready, _, _ = select.select([fd], [], [], 0.1)
            if ready:
                byte = os.read(fd, 1)
                if not byte:
                    break
                line += byte
                if byte == b"\n":
                    match = _LISTENING.search(line.decode("utf-8", "replace"))
                    if match:
                        self.url = match.group(1)
                        return self
                    line = b""
            elif self._proc.poll() is not None:
                break
        code = self._proc.poll()
        if code is None and time.monotonic() < deadline:
            # its stdout closed: it is exiting (a busy machine may take a moment)
            with contextlib.suppress(subprocess.TimeoutExpired):
                code = self._proc.wait(timeout=5)
        why = self._tail()  # before __exit__ closes the file it is read from
        self.__exit__()
        if code == 2:  # the simulator refused its flags: a usage error, as perf's own would be
            raise ConfigError(f"--sim-args: the simulator refused them: {_strip_prog(why)}")
        raise RunError(f"the embedded simulator did not start: {why}")

    def _tail(self) -> str:
        self._stderr.seek(0)
        lines = self._stderr.read().decode("utf-8", "replace").strip().splitlines()
        return lines[-1] if lines else "no output (see `perfbench sim --help`)"

    def __exit__(self, *exc: object) -> None:
        proc = self._proc
        if proc is not None and proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        if proc is not None and proc.stdout is not None:
            proc.stdout.close()
        self._stderr.close()


def _strip_prog(line: str) -> str:
    """``perfbench: error: X (see …)`` as ``X``."""
    return line.split("error: ", 1)[-1]
