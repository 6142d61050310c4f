"""Run untrusted Python (a model's code answer) in a fresh, bounded, unprivileged process.

Code graders run what a model wrote against tests, and that code is hostile, by accident or on
purpose: it loops for ever, forks until the machine stops, allocates 4 GB, prints without end,
reads the API key from the environment, connects to the model server, or kills the process
that grades it. So each program runs in a process of its own, never in perfbench's, in a fresh
0700 temporary directory (its cwd, HOME and TMPDIR, removed afterwards), in a new session, with
a fixed environment that inherits nothing. A small trusted launcher (:func:`_launch`) prepares
that process, then execs ``python -s -B main.py``:

1. as root, it joins a pids cgroup made for this run: a bound on its tasks that concurrent
   runs do not share, and a kill that reaches even a process that left the session;
2. resource limits: CPU time, address space, file size, open files, no core dumps (and, with
   no cgroup, RLIMIT_NPROC over the user's current task count);
3. unshare(CLONE_NEWNET): a network namespace whose only interface, lo, is down (not root:
   inside a user namespace of its own);
4. as root, setgroups([]), setgid and setuid to nobody;
5. PR_SET_PDEATHSIG, so that it dies if perfbench dies.

A launcher rather than ``preexec_fn``: ``preexec_fn`` runs Python in a forked copy of a
threaded process (the pool's threads, the store's writer), where a lock another thread held at
the fork never comes free. ``-s -B`` rather than ``-I``: ``-I`` implies ``-E``, which ignores
PYTHONHASHSEED=0 (set order would change from run to run), and the environment is ours anyway.

The parent enforces what the kernel cannot: the wall clock and the size of the output. On
either, or as soon as the program ends, its process group and cgroup are killed with SIGKILL,
always before the program is reaped, so that its pid cannot have been reused by then.

What this does not stop, even as root: writing to world-writable directories such as /tmp
and /dev/shm (each file at most ``Limits.file_mb``, but not their number, and /dev/shm is
memory); reading world-readable files (the repository, any process's /proc/<pid>/cmdline);
and concurrent programs, which share the uid nobody, signalling or tracing one another. What
else is missing on this machine :func:`missing` says, and the grading report prints it.
"""

from __future__ import annotations

import contextlib
import errno
import functools
import inspect
import json
import math
import os
import pwd
import re
import resource
import selectors
import shutil
import signal
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field, fields
from pathlib import PurePosixPath
from typing import IO, Literal

from perfbench.errors import ConfigError, RunError

__all__ = ["Limits", "Pool", "Result", "SandboxError", "Status", "missing", "protections", "run"]

Status = Literal["ok", "runtime_error", "timeout", "memory", "output_limit", "killed"]

_MB = 1024 * 1024
_STDERR_TAIL = 64 * 1024
_SCRIPT = "main.py"
_CLONE_NEWUSER = 0x10000000
_CLONE_NEWNET = 0x40000000
_FALLBACK_PYTHON = "/usr/bin/python3"
#: After the program exits, how long its pipes may stay open (held by a process that escaped
#: the kill) before what was read is taken as all there is.
_DRAIN_S = 0.5
_OUT_OF_MEMORY = re.compile(r"\bMemoryError\b|Cannot allocate memory|[Oo]ut of memory")


class SandboxError(RunError):
    """The sandbox failed (its setup, or its pool was closed): never the answer's fault."""


@dataclass(frozen=True, slots=True)
class Limits:
    """What one program may use. ``processes`` counts threads too (the kernel counts tasks);
    ``cpu_s`` is enforced in whole seconds (rounded up); ``memory_mb`` is address space."""

    cpu_s: float = 10.0
    wall_s: float = 20.0
    memory_mb: int = 1024
    processes: int = 32
    file_mb: int = 16
    output_mb: int = 8
    open_files: int = 64

    def __post_init__(self) -> None:
        for limit in fields(self):
            value = getattr(self, limit.name)
            if not value > 0:
                raise ConfigError(f"sandbox limit {limit.name} must be greater than 0, not {value}")


@dataclass(frozen=True, slots=True)
class Result:
    """How one program ended, with its output."""

    status: Status
    detail: str  # one line: the exception, the limit hit or the signal; "" when ok
    exit_code: int | None  # None when a signal ended it
    signal: int | None
    stdout: str
    stderr: str  # its last 64 KB
    wall_s: float
    cpu_s: float  # the program and the children it waited for


@dataclass(frozen=True, slots=True)
class _Plan:
    """What the sandbox can do on this machine, found by trying it once (:func:`_probe`)."""

    python: str
    python_version: str
    user: tuple[int, int] | None  # (uid, gid) to switch to; None: perfbench's own user
    unshare: int  # clone flags for the launcher; 0: no namespace
    cgroup_parent: str | None  # where each run's pids cgroup is made
    pdeathsig: bool
    why_not: Mapping[str, str] = field(default_factory=dict)  # protection -> why it is missing


def run(
    code: str,
    *,
    stdin: str = "",
    limits: Limits = Limits(),  # noqa: B008 - frozen, so one shared default is safe
    files: Mapping[str, str] | None = None,
) -> Result:
    """Run ``code`` as ``python main.py`` in a sandbox and say how it ended.

        result = run("print(int(input()) * 2)", stdin="21\\n", limits=Limits(wall_s=5))
        assert result.status == "ok" and result.stdout == "42\\n"

    ``files`` (relative path -> text) are written next to main.py first, e.g. test data.
    """
    return _Job(code, stdin, limits, files or {}, _plan()).run()


def protections() -> Mapping[str, str | None]:
    """Each protection and how it is achieved here; None where it is missing (see :func:`missing`).

    Probed once, by running a program through the launcher, then cached.
    """
    plan = _plan()
    limits = "CPU time, address space, file size, open files, core dumps"
    if plan.cgroup_parent is None:
        limits += ", processes (RLIMIT_NPROC)"
    return {
        "environment": "a fixed minimal environment: nothing of perfbench's is inherited",
        "limits": f"rlimits on {limits}; the wall clock and the output size by perfbench",
        "user": f"runs as nobody ({plan.user[0]}): cannot signal perfbench's processes or read "
        "their environment and private files"
        if plan.user
        else None,
        "files": "writes only in its own directory and world-writable ones such as /tmp and "
        "/dev/shm (each file at most Limits.file_mb)"
        if plan.user
        else None,
        "network": _network_description(plan.unshare),
        "cgroup": "a pids cgroup per run: at most Limits.processes tasks, all killed at its end, "
        "even one that left the session"
        if plan.cgroup_parent
        else None,
        "orphans": "killed if perfbench dies (parent-death signal)" if plan.pdeathsig else None,
        "interpreter": f"{plan.python} (Python {plan.python_version})",
    }


def missing() -> list[str]:
    """One line per protection that is not in effect here: what is missing and what it allows."""
    given = protections()
    why = _plan().why_not
    return [f"{name}: {why[name]}" for name, value in given.items() if value is None]


class Pool:
    """Programs run in parallel, one thread driving each; closing kills whatever still runs.

        with Pool() as pool:
            futures = [pool.submit(code, stdin=case) for case in cases]
            results = [f.result() for f in futures]

    Leaving the block (also on KeyboardInterrupt) kills every running program's processes and
    removes their directories before it returns; their futures raise :class:`SandboxError`,
    and those not started are cancelled.
    """

    def __init__(self, workers: int | None = None) -> None:
        self._plan = _plan()  # probe here, not in several worker threads at once
        self.workers = workers or os.cpu_count() or 1
        self._executor = ThreadPoolExecutor(max_workers=self.workers, thread_name_prefix="sandbox")
        self._lock = threading.Lock()
        self._running: set[_Job] = set()
        self._closed = False

    def submit(
        self,
        code: str,
        *,
        stdin: str = "",
        limits: Limits = Limits(),  # noqa: B008
        files: Mapping[str, str] | None = None,
    ) -> Future[Result]:
        if self._closed:
            raise SandboxError("this sandbox pool is closed")
        return self._executor.submit(self._run, _Job(code, stdin, limits, files or {}, self._plan))

    def close(self) -> None:
        with self._lock:
            self._closed = True
            running = list(self._running)
        self._executor.shutdown(wait=False, cancel_futures=True)  # those not started: cancelled
        failed: list[SandboxError] = []
        for job in running:  # every one, even when one of them cannot be killed
            try:
                job.cancel()
            except SandboxError as exc:
                failed.append(exc)
        self._executor.shutdown(wait=True)
        if failed:
            raise failed[0]

    def __enter__(self) -> Pool:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _run(self, job: _Job) -> Result:
        with self._lock:
            if self._closed:
                raise SandboxError("the sandbox pool was closed before this program started")
            self._running.add(job)
        try:
            return job.run()
        finally:
            with self._lock:
                self._running.discard(job)


class _Job:
    """One program: its directory, cgroup and process, watched until it ends, then removed."""

    def __init__(
        self,
        code: str,
        stdin: str,
        limits: Limits,
        files: Mapping[str, str],
        plan: _Plan,
        *,
        strict: bool = True,
    ) -> None:
        self.code, self.stdin, self.limits, self.files, self.plan = code, stdin, limits, files, plan
        self.strict = strict  # False only for the probe: a failed step is reported, not fatal
        self.failed: dict[str, str] = {}  # launcher step -> its error
        self._lock = threading.Lock()
        self._proc: subprocess.Popen[bytes] | None = None
        self._cgroup: _Cgroup | None = None
        self._reaped = False
        self._cancelled = False

    def cancel(self) -> None:
        with self._lock:
            self._cancelled = True
        self._kill()

    def run(self) -> Result:
        workdir = _make_workdir(self.code, self.files, self.plan.user)
        try:
            if self.plan.cgroup_parent:
                name = os.path.basename(workdir)
                self._cgroup = _Cgroup.create(self.plan.cgroup_parent, name, self.limits.processes)
            return self._run_in(workdir)
        finally:
            if self._proc is not None and not self._reaped:
                self._reap()  # interrupted (KeyboardInterrupt): kill it and collect it all the same
            if self._cgroup is not None:
                self._cgroup.remove()
            _remove_tree(workdir)

    def _run_in(self, workdir: str) -> Result:
        status_r, status_w = os.pipe()
        try:
            with _stdin_file(self.stdin) as stdin:
                started = time.monotonic()
                self._spawn(workdir, stdin, status_w)
            os.close(status_w)
            status_w = -1
            assert self._proc is not None
            out, err, ended_by = self._watch(self._proc, started)
            code, cpu_s = self._reap()
            wall_s = time.monotonic() - started
            self.failed = _read_failures(status_r)
        finally:
            os.close(status_r)
            if status_w >= 0:
                os.close(status_w)
        if self.failed and self.strict:
            raise SandboxError(f"the sandbox could not be set up: {_one_line(self.failed)}")
        if self._cancelled:
            raise SandboxError("the sandbox pool was closed while this program ran")
        stdout = out.decode("utf-8", "replace")
        stderr = err.decode("utf-8", "replace")
        status, detail = _classify(code, cpu_s, stderr, ended_by, self.limits)
        return Result(
            status=status,
            detail=detail,
            exit_code=code if code >= 0 else None,
            signal=-code if code < 0 else None,
            stdout=stdout,
            stderr=stderr,
            wall_s=wall_s,
            cpu_s=cpu_s,
        )

    def _spawn(self, workdir: str, stdin: int | IO[bytes], status_w: int) -> None:
        spec = self._launch_spec(status_w)
        with self._lock:
            if self._cancelled:
                raise SandboxError("the sandbox pool was closed before this program started")
            try:
                self._proc = subprocess.Popen(
                    [sys.executable, "-I", "-S", "-B", "-c", _launcher_source(), json.dumps(spec)],
                    stdin=stdin,
                    stdout=subprocess.PIPE,
                    stderr=subprocess.PIPE,
                    cwd=workdir,
                    env=_environment(workdir),
                    start_new_session=True,
                    pass_fds=(status_w,),
                )
            except OSError as exc:
                raise SandboxError(f"cannot start the sandbox launcher: {exc}") from exc

    def _launch_spec(self, status_w: int) -> dict[str, object]:
        plan, limits = self.plan, self.limits
        cpu = math.ceil(limits.cpu_s)
        rlimits = [
            (resource.RLIMIT_CPU, cpu, cpu + 1),  # SIGXCPU at the soft limit, SIGKILL a second on
            (resource.RLIMIT_AS, limits.memory_mb * _MB, limits.memory_mb * _MB),
            (resource.RLIMIT_FSIZE, limits.file_mb * _MB, limits.file_mb * _MB),
            (resource.RLIMIT_NOFILE, limits.open_files, limits.open_files),
            (resource.RLIMIT_CORE, 0, 0),
        ]
        if plan.cgroup_parent is None:
            rlimits.append(_nproc_limit(plan.user[0] if plan.user else os.getuid(), limits))
        # With a cgroup, RLIMIT_NPROC is left alone on purpose: it counts every task of the uid,
        # so in a pool one answer's fork bomb would make a neighbour's fork fail (a wrong grade).
        return {
            "status_fd": status_w,
            "strict": self.strict,
            "parent": os.getpid(),
            "cgroup": self._cgroup.path if self._cgroup else None,
            "rlimits": rlimits,
            "unshare": plan.unshare,
            "map_ids": [os.getuid(), os.getgid()] if plan.unshare & _CLONE_NEWUSER else None,
            "user": plan.user,
            "pdeathsig": plan.pdeathsig,
            "argv": [plan.python, "-s", "-B", _SCRIPT],
        }

    def _watch(self, proc: subprocess.Popen[bytes], started: float) -> tuple[bytes, bytes, str]:
        """Read its output until it ends; kill it at the wall clock or the output cap.

        Returns (stdout, stderr tail, why perfbench ended it: "wall", "output" or "").
        """
        assert proc.stdout is not None and proc.stderr is not None
        cap = self.limits.output_mb * _MB
        deadline = started + self.limits.wall_s
        out, err, err_total = bytearray(), bytearray(), 0
        ended_by = ""
        exited_at: float | None = None
        with selectors.DefaultSelector() as sel, _pidfd(proc.pid) as pidfd:
            sel.register(proc.stdout.fileno(), selectors.EVENT_READ, "out")
            sel.register(proc.stderr.fileno(), selectors.EVENT_READ, "err")
            if pidfd is not None:
                sel.register(pidfd, selectors.EVENT_READ, "exit")
            while True:
                now = time.monotonic()
                if exited_at is None and _has_exited(proc.pid):
                    exited_at = now
                    self._kill()  # whatever it left behind
                    if pidfd is not None:
                        sel.unregister(pidfd)
                if exited_at is not None and (
                    len(sel.get_map()) == 0 or now > exited_at + _DRAIN_S
                ):
                    return bytes(out), bytes(err), ended_by
                if exited_at is None and not ended_by and now >= deadline:
                    ended_by = "wall"
                    self._kill()
                if exited_at is not None:
                    wait = exited_at + _DRAIN_S - now
                else:
                    wait = deadline - now if not ended_by else 0.05
                if pidfd is None:
                    wait = min(wait, 0.01)  # no pidfd: poll for the exit
                for key, _ in sel.select(max(wait, 0.0)):
                    if key.data == "exit":
                        continue  # seen by _has_exited at the top of the loop
                    chunk = os.read(key.fd, 65536)
                    if not chunk:
                        sel.unregister(key.fd)
                    elif ended_by == "output":
                        pass  # killed already: what is still buffered is not kept
                    elif key.data == "out":
                        out += chunk
                    else:
                        err += chunk
                        err_total += len(chunk)
                        del err[:-_STDERR_TAIL]
                    if not ended_by and (len(out) > cap or err_total > cap):
                        ended_by = "output"
                        del out[cap:]
                        self._kill()

    def _kill(self) -> None:
        """SIGKILL the program's group and cgroup; a no-op once it is reaped (its pid is free)."""
        with self._lock:
            if self._proc is None or self._reaped:
                return
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self._proc.pid, signal.SIGKILL)
            if self._cgroup is not None:
                self._cgroup.kill_all()

    def _reap(self) -> tuple[int, float]:
        """Kill what is left, then reap: (exit code, negative for a signal; CPU seconds)."""
        self._kill()
        assert self._proc is not None
        _, status, usage = os.wait4(self._proc.pid, 0)
        with self._lock:
            self._reaped = True
        code = os.waitstatus_to_exitcode(status)
        self._proc.returncode = code  # reaped here, so Popen must not wait for it
        for stream in (self._proc.stdout, self._proc.stderr):
            if stream is not None:
                stream.close()
        return code, usage.ru_utime + usage.ru_stime


def _launch() -> None:
    """The trusted launcher: prepare this process, then exec the answer's interpreter.

    Runs as ``python -I -S -B -c <this function's source> <spec as JSON>``, so it uses the
    standard library only and nothing else of this module. Each failed step is written to the
    status pipe as "step<TAB>error"; the pipe closes on exec, so the answer cannot write to it.
    """
    import ctypes
    import json
    import os
    import resource
    import sys

    spec = json.loads(sys.argv[1])
    status = spec["status_fd"]
    os.set_inheritable(status, False)
    libc = ctypes.CDLL(None, use_errno=True)

    def check(name: str, result: int) -> None:
        if result != 0:
            err = ctypes.get_errno()
            raise OSError(err, f"{name}: {os.strerror(err)}")

    def step(name: str, action: Callable[[], None]) -> None:
        try:
            action()
        except Exception as exc:
            os.write(status, f"{name}\t{type(exc).__name__}: {exc}\n".encode())
            if spec["strict"] or name == "exec":
                os._exit(127)

    def join_cgroup() -> None:
        with open(spec["cgroup"] + "/cgroup.procs", "w") as procs:
            procs.write(str(os.getpid()))

    def set_limits() -> None:
        for which, soft, hard in spec["rlimits"]:
            resource.setrlimit(which, (soft, hard))

    def isolate() -> None:
        check("unshare", libc.unshare(spec["unshare"]))
        if spec["map_ids"]:  # a user namespace of our own: map our ids, or no file can be made
            uid, gid = spec["map_ids"]
            for name, text in (("setgroups", "deny"), ("uid_map", f"{uid} {uid} 1")):
                with open(f"/proc/self/{name}", "w") as out:
                    out.write(text)
            with open("/proc/self/gid_map", "w") as out:
                out.write(f"{gid} {gid} 1")

    def drop_user() -> None:
        uid, gid = spec["user"]
        os.setgroups([])
        os.setgid(gid)
        os.setuid(uid)

    def tie_to_parent() -> None:  # after setuid, which clears the parent-death signal
        check("prctl", libc.prctl(1, 9, 0, 0, 0))  # PR_SET_PDEATHSIG, SIGKILL
        if os.getppid() != spec["parent"]:
            os._exit(137)  # the parent died before the signal was armed

    if spec["cgroup"]:
        step("cgroup", join_cgroup)
    step("limits", set_limits)  # before unshare: a user namespace takes RLIMIT_NPROC from here
    if spec["unshare"]:
        step("network", isolate)
    if spec["user"]:
        step("user", drop_user)
    if spec["pdeathsig"]:
        step("orphans", tie_to_parent)
    step("exec", lambda: os.execv(spec["argv"][0], spec["argv"]))


@functools.cache
def _launcher_source() -> str:
    # the future import keeps the annotations unevaluated there, as they are here
    source = textwrap.dedent(inspect.getsource(_launch))
    return f"from __future__ import annotations\n{source}\n{_launch.__name__}()\n"


@dataclass(frozen=True, slots=True)
class _Cgroup:
    """A pids cgroup holding one run: bounds its tasks and lets every one of them be killed."""

    path: str

    @classmethod
    def create(cls, parent: str, name: str, max_tasks: int) -> _Cgroup:
        path = os.path.join(parent, name)
        try:
            os.mkdir(path)
            with open(os.path.join(path, "pids.max"), "w") as out:
                out.write(str(max_tasks))
        except OSError as exc:
            with contextlib.suppress(OSError):
                os.rmdir(path)
            raise SandboxError(f"cannot make the run's cgroup {path}: {exc}") from exc
        return cls(path)

    def kill_all(self, timeout: float = 5.0) -> None:
        # pids.max 0 first: no task can fork while the list is read and killed
        self._write("pids.max", "0")
        deadline = time.monotonic() + timeout
        while pids := self._tasks():
            if time.monotonic() > deadline:
                raise SandboxError(f"cannot kill the processes of {self.path}: {pids}")
            for pid in pids:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            time.sleep(0.001)

    def remove(self) -> None:
        self.kill_all()
        deadline = time.monotonic() + 5.0
        while True:
            try:
                os.rmdir(self.path)
                return
            except FileNotFoundError:
                return
            except OSError as exc:
                if exc.errno != errno.EBUSY or time.monotonic() > deadline:
                    raise SandboxError(f"cannot remove the cgroup {self.path}: {exc}") from exc
                time.sleep(0.01)

    def _tasks(self) -> list[int]:
        try:
            with open(os.path.join(self.path, "cgroup.procs")) as procs:
                return [int(line) for line in procs if line.strip()]
        except FileNotFoundError:
            return []

    def _write(self, name: str, text: str) -> None:
        with contextlib.suppress(FileNotFoundError), open(os.path.join(self.path, name), "w") as f:
            f.write(text)


def _classify(
    code: int, cpu_s: float, stderr: str, ended_by: str, limits: Limits
) -> tuple[Status, str]:
    if ended_by == "output":
        return "output_limit", f"more than {limits.output_mb} MB of output"
    if ended_by == "wall":
        return "timeout", f"wall-clock limit of {limits.wall_s:g} s"
    sig = -code if code < 0 else None
    cpu_limit = math.ceil(limits.cpu_s)
    # SIGXCPU at the soft limit; SIGKILL at the hard one when SIGXCPU was handled or ignored.
    # The CPU time wait4 reports can fall a little short of what the limit counted.
    if sig == signal.SIGXCPU or (sig == signal.SIGKILL and cpu_s >= 0.9 * cpu_limit):
        return "timeout", f"CPU-time limit of {cpu_limit} s"
    if code == 0:
        return "ok", ""
    last = _last_line(stderr)
    if _OUT_OF_MEMORY.search(stderr):
        return "memory", f"{last or 'out of memory'} (memory limit {limits.memory_mb} MB)"
    if sig is None:
        return "runtime_error", last or f"exit code {code}"
    return "killed", f"killed by {_signal_name(sig)}"


def _last_line(text: str) -> str:
    """The exception line of a traceback (``ZeroDivisionError: …``): the last line that names
    one, since forked processes writing tracebacks at once interleave their lines; else the
    last line."""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    named = [line for line in lines if _EXCEPTION.match(line)]
    return (named or lines or [""])[-1][:300]


_EXCEPTION = re.compile(r"^[A-Za-z_][\w.]*(Error|Exception|Exit|Interrupt|Warning)\b(:|$)")


def _signal_name(sig: int) -> str:
    try:
        return signal.Signals(sig).name
    except ValueError:
        return f"signal {sig}"


def _one_line(failed: Mapping[str, str]) -> str:
    return "; ".join(f"{step}: {error}" for step, error in failed.items())


def _read_failures(status_r: int) -> dict[str, str]:
    data = b""
    while chunk := os.read(status_r, 65536):
        data += chunk
    lines = (line.split("\t", 1) for line in data.decode("utf-8", "replace").splitlines())
    return {parts[0]: parts[-1] for parts in lines}


def _has_exited(pid: int) -> bool:
    """Whether it has exited, without reaping it (its pid stays ours until :meth:`_Job._reap`)."""
    return os.waitid(os.P_PID, pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is not None


@contextlib.contextmanager
def _pidfd(pid: int) -> Iterator[int | None]:
    """A descriptor that becomes readable when ``pid`` exits (Linux 5.3); None: poll instead."""
    try:
        fd = os.pidfd_open(pid)
    except (AttributeError, OSError):
        yield None
        return
    try:
        yield fd
    finally:
        os.close(fd)


@contextlib.contextmanager
def _stdin_file(text: str) -> Iterator[int | IO[bytes]]:
    """The program's stdin as a file, not a pipe: nothing to feed while its output is read."""
    if not text:
        yield subprocess.DEVNULL
        return
    with tempfile.TemporaryFile() as f:
        f.write(text.encode())
        f.seek(0)
        yield f


def _environment(workdir: str) -> dict[str, str]:
    return {
        "PATH": "/usr/bin:/bin",
        "LANG": "C.UTF-8",
        "HOME": workdir,
        "TMPDIR": workdir,  # tempfile's files land in the directory that is removed afterwards
        "PYTHONHASHSEED": "0",
        "PYTHONDONTWRITEBYTECODE": "1",
    }


def _make_workdir(code: str, files: Mapping[str, str], owner: tuple[int, int] | None) -> str:
    """A fresh 0700 directory holding main.py and ``files``, owned by the sandbox user."""
    for name in files:
        path = PurePosixPath(name)
        if not path.parts or path.is_absolute() or ".." in path.parts or name == _SCRIPT:
            raise ValueError(f"sandbox file name {name!r}: must be relative, inside, not {_SCRIPT}")
    workdir = tempfile.mkdtemp(prefix="perfbench-sandbox-")
    try:
        for name, text in {**files, _SCRIPT: code}.items():
            target = os.path.join(workdir, name)
            os.makedirs(os.path.dirname(target), exist_ok=True)
            with open(target, "w", encoding="utf-8") as out:
                out.write(text)
        if owner is not None:
            for parent, _, names in os.walk(workdir):
                os.chown(parent, *owner)
                for name in names:
                    os.chown(os.path.join(parent, name), *owner)
    except BaseException:
        _remove_tree(workdir)
        raise
    return workdir


def _remove_tree(path: str) -> None:
    """Remove a run's directory even where the answer took its own permissions away."""
    if os.geteuid() != 0:
        _make_writable(path)
    shutil.rmtree(path, ignore_errors=True)


def _make_writable(path: str) -> None:
    with contextlib.suppress(OSError):
        os.chmod(path, 0o700)
        with os.scandir(path) as entries:
            for entry in entries:
                if entry.is_dir(follow_symlinks=False):
                    _make_writable(entry.path)


def _nproc_limit(uid: int, limits: Limits) -> tuple[int, int, int]:
    """RLIMIT_NPROC counts every task of the uid, so the bound is its current count plus ours."""
    count = _tasks_of(uid) + limits.processes
    hard = resource.getrlimit(resource.RLIMIT_NPROC)[1]
    if hard != resource.RLIM_INFINITY:
        count = min(count, hard)
    return resource.RLIMIT_NPROC, count, count


def _tasks_of(uid: int) -> int:
    count = 0
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(os.path.join(entry.path, "status")) as f:
                status = f.read()
        except OSError:
            continue  # gone already
        uid_line = re.search(r"^Uid:\s+(\d+)", status, re.M)
        threads = re.search(r"^Threads:\s+(\d+)", status, re.M)
        if uid_line and threads and int(uid_line.group(1)) == uid:
            count += int(threads.group(1))
    return count


def _network_description(flags: int) -> str | None:
    if not flags & _CLONE_NEWNET:
        return None
    where = "a user and network namespace" if flags & _CLONE_NEWUSER else "a network namespace"
    return f"{where} with no interface up: no connection to anything, 127.0.0.1 included"


# -- the probe: what works on this machine, found once by trying it ----------------------------

_PROBE_PROGRAM = """\
import json, os, platform, socket
try:
    socket.create_connection(("127.0.0.1", 9), timeout=2).close()
    net = "connected"
except OSError as exc:
    net = exc.errno
print(json.dumps({"uid": os.getuid(), "net": net, "version": platform.python_version()}))
"""

_PROBE_LOCK = threading.Lock()


def _plan() -> _Plan:
    with _PROBE_LOCK:
        return _probe()


#: What an answer can do when a protection is missing: the second half of each missing() line.
_ALLOWS = {
    "user": "it could signal perfbench's processes and read their environment and files",
    "files": "it can write wherever perfbench can",
    "network": "it can open connections, to the model server too",
    "cgroup": "processes are bounded by RLIMIT_NPROC over all the user's tasks, shared by "
    "parallel runs, and a process that calls setsid() can outlive its run",
    "orphans": "a program outlives perfbench if perfbench is killed",
}


@functools.cache
def _probe() -> _Plan:
    root = os.geteuid() == 0
    user = _nobody() if root else None
    cgroup_parent, no_cgroup = _pids_cgroup_parent() if root else (None, "perfbench is not root")
    flags = _CLONE_NEWNET if root else _CLONE_NEWUSER | _CLONE_NEWNET
    rejected: list[str] = []
    for python in _candidate_pythons(root):
        trial = _Plan(python, "?", user, flags, cgroup_parent, pdeathsig=True)
        job = _Job(_PROBE_PROGRAM, "", Limits(), {}, trial, strict=False)
        result = job.run()
        failed = job.failed
        if "exec" in failed or result.status != "ok":
            rejected.append(f"{python}: {failed.get('exec') or result.detail}")
            continue
        seen = json.loads(result.stdout)
        if not seen["version"].startswith("3."):
            rejected.append(f"{python}: Python {seen['version']}, not 3")
            continue
        if "limits" in failed:
            raise SandboxError(f"cannot set the sandbox's resource limits: {failed['limits']}")
        why: dict[str, str] = {}
        if user is None or seen["uid"] != user[0]:
            cause = failed.get("user", "perfbench is not root")
            why["user"] = f"runs as perfbench's own user ({cause})"
            why["files"] = f"runs as perfbench's own user ({cause})"
        if "network" in failed or seen["net"] != errno.ENETUNREACH:
            cause = failed.get("network", f"connecting to 127.0.0.1 gave errno {seen['net']}")
            why["network"] = f"not isolated ({cause})"
        if cgroup_parent is None or "cgroup" in failed:
            why["cgroup"] = f"no pids cgroup per run ({failed.get('cgroup', no_cgroup)})"
        if "orphans" in failed:
            why["orphans"] = f"no parent-death signal ({failed['orphans']})"
        return _Plan(
            python=python,
            python_version=seen["version"],
            user=None if "user" in why else user,
            unshare=0 if "network" in why else flags,
            cgroup_parent=None if "cgroup" in why else cgroup_parent,
            pdeathsig="orphans" not in why,
            why_not={name: f"{cause}: {_ALLOWS[name]}" for name, cause in why.items()},
        )
    raise SandboxError(
        f"no Python interpreter the sandbox can run ({'; '.join(rejected)}): "
        f"install python3 at {_FALLBACK_PYTHON}, readable and executable by nobody"
    )


def _nobody() -> tuple[int, int]:
    try:
        entry = pwd.getpwnam("nobody")
        return entry.pw_uid, entry.pw_gid
    except KeyError:
        return 65534, 65534


def _candidate_pythons(root: bool) -> list[str]:
    """Ours first. As root, ours may sit under /root (mode 700), which nobody cannot enter; the
    probe finds that out by trying, and falls back to the system's Python."""
    candidates = [sys.executable] if sys.executable else []
    if root and os.path.exists(_FALLBACK_PYTHON):
        candidates.append(_FALLBACK_PYTHON)
    return candidates


def _pids_cgroup_parent() -> tuple[str | None, str]:
    """A directory in which a pids cgroup per run can be made (v1 pids, or v2 with pids on)."""
    try:
        with open("/proc/self/cgroup") as f:
            own = [line.rstrip("\n").split(":", 2) for line in f]
        with open("/proc/self/mountinfo") as f:
            mounts = [line.split() for line in f]
    except OSError as exc:
        return None, f"cannot read /proc: {exc}"
    candidates: list[str] = []
    for mount in sorted(mounts, key=lambda mount: "cgroup2" in mount):  # v1 pids first
        fstype, point, options = mount[mount.index("-") + 1], mount[4], mount[-1].split(",")
        if fstype == "cgroup" and "pids" in options:
            mine = next((path for _, ctl, path in own if "pids" in ctl.split(",")), "/")
        elif fstype == "cgroup2":
            mine = next((path for hier, ctl, path in own if hier == "0" and not ctl), "/")
        else:
            continue
        candidates += [os.path.join(point, mine.lstrip("/")).rstrip("/"), point]
    for parent in dict.fromkeys(candidates):
        trial = os.path.join(parent, f"perfbench-sandbox-probe-{os.getpid()}")
        try:
            os.mkdir(trial)
        except OSError:
            continue
        usable = os.path.exists(os.path.join(trial, "pids.max"))
        os.rmdir(trial)
        if usable:
            return parent, ""
    return None, "no writable cgroup with the pids controller"
