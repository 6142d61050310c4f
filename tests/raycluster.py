"""A real, throwaway two-node Ray cluster on this machine, for tests.

    with local_cluster(tmp_path) as cluster:
        ray.init(address=cluster.address)
        ...                                  # actors, cluster.kill_second_node(), ...
        ray.shutdown()
    # here every process of the cluster is gone, or local_cluster raised

Each node is a ``ray start --block`` child of the test process, in a session of its
own, so it can be killed without touching anything else on the machine (never
``ray stop`` or kill-by-name: they would hit other people's clusters, including a
parallel test run's). This module does not import ray: it only starts processes.

Things about Ray (2.60) this is shaped around, each found by trying it:

* Ray rewrites the address ``127.0.0.1`` (and ``localhost``) to the machine's
  primary interface address, on the nodes and in ``ray.init``. Other loopback
  addresses are taken as given, so the head is 127.0.0.2 and the second node
  127.0.0.3: all traffic stays on the loopback interface, and an actor can tell
  from its node IP which node it is on.
* Every port is chosen here (workers get OS-chosen ones: min = max = 0), so two
  test runs on one machine do not collide on Ray's fixed defaults (6379, 8265,
  44217...).
* ``--temp-dir`` holds Unix sockets, whose paths are limited to 107 bytes, and
  pytest's ``tmp_path`` is often too long for that: Ray's files go in a short
  directory under /tmp, removed on exit; the nodes' own output goes in tmp_path.
* Ray moves each worker process (each actor) into a process group of its own,
  so killing the ``ray start`` process groups alone misses the workers. They do
  stay in the session that start_new_session made, and they inherit the
  environment, which carries a token unique to this cluster; teardown kills
  every process that has either, and checks that none is left.
* SIGTERM makes ``ray start`` drain the node for up to 30 s and can leave the GCS
  hanging; tests need no graceful stop, so teardown is SIGKILL.
* A worker node's ``ray start`` prints "Ray runtime started." only once the node
  is registered with the head, so when both have printed it ``ray.nodes()``
  already shows two live nodes.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

HEAD_IP = "127.0.0.2"
NODE_IP = "127.0.0.3"
# Custom resource of the second node: `.options(resources={NODE2_RESOURCE: 0.01})`
# pins an actor there (or NodeAffinitySchedulingStrategy with its node id).
NODE2_RESOURCE = "perfbench_node2"
OBJECT_STORE_BYTES = 100 * 1024 * 1024  # Ray's minimum is 75 MiB
STARTED = "Ray runtime started."
_TOKEN_VAR = "PERFBENCH_RAY_CLUSTER"  # in the environment of every process of the cluster


_GIVEN: set[int] = set()  # every port free_port handed out in this process


def free_port() -> int:
    """A TCP port free right now on the loopback interface (the OS picks it), and never one
    handed out before: the OS can pick a just-closed port again, and two of a node's components
    given one port stop its start ("a port number ... that is used by other components")."""
    for _ in range(1000):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port: int = s.getsockname()[1]
        if port not in _GIVEN:
            _GIVEN.add(port)
            return port
    raise RuntimeError("no fresh loopback port in 1,000 tries")


def _processes(token: str, sessions: set[int]) -> list[int]:
    """Live processes (not zombies) whose environment carries ``token`` or whose
    session id is in ``sessions``. Reads /proc: Ray's multi-node mode is Linux only."""
    needle = f"{_TOKEN_VAR}={token}".encode()
    found = []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat", "rb") as f:
                # "pid (comm) state ppid pgrp session ..."; comm may hold spaces
                fields = f.read().rsplit(b")", 1)[1].split()
            if fields[0] == b"Z":
                continue  # already dead; its parent (or init) reaps it
            if int(fields[3]) in sessions:
                found.append(int(name))
                continue
            with open(f"/proc/{name}/environ", "rb") as f:
                if needle in f.read().split(b"\0"):
                    found.append(int(name))
        except (OSError, IndexError, ValueError):
            continue  # gone meanwhile, or not ours to read
    return found


class _Node:
    """One ``ray start --block`` child, the leader of a new session."""

    def __init__(
        self, role: str, args: list[str], token: str, log: Path, temp_dir: Path, **env_vars: str
    ) -> None:
        self.role = role
        self.temp_dir = temp_dir
        self.token = f"{token}/{role}"
        self.log = log
        env = dict(os.environ, **env_vars, **{_TOKEN_VAR: self.token})
        # The interpreter running the tests runs Ray too, so its workers run the
        # same Python with the same packages (perfbench included).
        cmd = [sys.executable, "-m", "ray.scripts.scripts", "start", "--block", *args]
        with open(log, "wb") as out:
            self.proc = subprocess.Popen(
                cmd,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                env=env,
                start_new_session=True,  # its own session and process group: pgid = sid = pid
            )
        self.pid = self.proc.pid

    def wait_started(self, deadline: float) -> None:
        while STARTED not in self.log.read_text(errors="replace"):
            if self.proc.poll() is not None:
                raise RuntimeError(
                    f"ray {self.role} node exited with {self.proc.returncode} before starting; "
                    f"Ray's logs in {self.temp_dir}; end of {self.log}:\n{self._log_tail()}"
                )
            if time.monotonic() > deadline:
                raise TimeoutError(
                    f"ray {self.role} node not started in time; Ray's logs in {self.temp_dir}; "
                    f"end of {self.log}:\n{self._log_tail()}"
                )
            time.sleep(0.1)

    def processes(self) -> list[int]:
        return _processes(self.token, {self.pid})

    def kill(self, timeout: float = 10.0) -> None:
        """SIGKILL every process of this node, and check that none is left."""
        deadline = time.monotonic() + timeout
        while True:
            pids = self.processes()
            if not pids:
                break
            if time.monotonic() > deadline:
                raise RuntimeError(f"ray {self.role} node: processes survived SIGKILL: {pids}")
            for pid in pids:
                with suppress(ProcessLookupError):  # it ended meanwhile
                    os.kill(pid, signal.SIGKILL)
            time.sleep(0.05)
        self.proc.wait(timeout=timeout)  # reap our own child

    def _log_tail(self, lines: int = 30) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])


def _node_args(ip: str, cpus: int, temp_dir: Path) -> list[str]:
    """Arguments common to both nodes: one IP, every port picked here, little memory."""
    return [
        f"--node-ip-address={ip}",
        f"--num-cpus={cpus}",
        f"--object-store-memory={OBJECT_STORE_BYTES}",
        f"--temp-dir={temp_dir}",
        f"--node-manager-port={free_port()}",
        f"--object-manager-port={free_port()}",
        "--min-worker-port=0",  # 0 and 0: each worker binds a port the OS picks
        "--max-worker-port=0",
        f"--dashboard-agent-listen-port={free_port()}",
        f"--dashboard-agent-grpc-port={free_port()}",
        f"--runtime-env-agent-port={free_port()}",
        f"--metrics-export-port={free_port()}",
        "--disable-usage-stats",
    ]


class LocalCluster:
    """What ``local_cluster`` yields. ``address`` is what ``ray.init(address=...)`` takes."""

    def __init__(self, address: str, head: _Node, node: _Node | None, temp_dir: Path) -> None:
        self.address = address
        self.temp_dir = temp_dir
        self._head = head
        self._node = node
        self.head_pid = head.pid
        self.node_pid = node.pid if node else None

    def kill_second_node(self) -> None:
        """SIGKILL the second node and everything it started (its actors too), as if
        its machine died; the head and its processes are left running."""
        if self._node is None:
            raise RuntimeError("this cluster has no second node")
        self._node.kill()

    def processes(self) -> list[int]:
        """Pids of every live process of the cluster."""
        return [pid for n in (self._head, self._node) if n for pid in n.processes()]


def _disconnect_driver(address: str) -> None:
    """``ray.shutdown()`` if this process is a driver of the cluster at ``address``.

    A driver still connected when its cluster's GCS dies does not raise: about 60 s
    later Ray ends the whole process (exit status 1), which would take pytest with it.
    """
    ray = sys.modules.get("ray")  # never imported here: only if the test did
    if (
        ray is not None
        and ray.is_initialized()
        and ray.get_runtime_context().gcs_address == address
    ):
        ray.shutdown()


@contextmanager
def local_cluster(
    tmp_path: Path,
    *,
    head_cpus: int = 1,
    node_cpus: int = 1,
    second_node: bool = True,
    timeout: float = 60.0,
) -> Iterator[LocalCluster]:
    """Start a head node (and a second node, with resource ``NODE2_RESOURCE``),
    yield the cluster once every node is registered, and on exit kill every
    process it started, raising if any survives. A test that is still a driver of
    the cluster then (``ray.init`` without ``ray.shutdown``) is disconnected first.

    A node that fails to start raises RuntimeError or TimeoutError (within
    ``timeout`` seconds) with the end of its output; what had started is killed.
    Logs: ``tmp_path/ray-head.log``, ``tmp_path/ray-node.log``.
    """
    token = uuid.uuid4().hex
    # Short on purpose, hence /tmp and not $TMPDIR (see the module docstring); a
    # subdirectory per node, as each node's raylet needs sockets of its own.
    temp_dir = Path(tempfile.mkdtemp(prefix="pbray-", dir="/tmp"))
    gcs_port = free_port()
    address = f"{HEAD_IP}:{gcs_port}"
    nodes: list[_Node] = []
    started = False
    try:
        deadline = time.monotonic() + timeout
        head_args = [
            "--head",
            f"--port={gcs_port}",
            # No dashboard (it needs ray[default]); a minimal dashboard process still
            # starts and is handed a port, so not the fixed 8265 either.
            "--include-dashboard=false",
            f"--dashboard-port={free_port()}",
            *_node_args(HEAD_IP, head_cpus, temp_dir / "head"),
        ]
        # The head's autoscaler monitor serves metrics on the fixed port 44217 when
        # prometheus_client is importable (perfbench depends on it); no flag moves it.
        metrics_port = str(free_port())
        head = _Node(
            "head",
            head_args,
            token,
            tmp_path / "ray-head.log",
            temp_dir,
            AUTOSCALER_METRIC_PORT=metrics_port,
        )
        nodes.append(head)
        head.wait_started(deadline)

        node = None
        if second_node:
            node_args = [
                f"--address={address}",
                f'--resources={{"{NODE2_RESOURCE}": 1}}',
                *_node_args(NODE_IP, node_cpus, temp_dir / "node"),
            ]
            node = _Node("node", node_args, token, tmp_path / "ray-node.log", temp_dir)
            nodes.append(node)
            node.wait_started(deadline)
        started = True
        yield LocalCluster(address, head, node, temp_dir)
    finally:
        _disconnect_driver(address)
        # Second node first: a worker node whose head vanishes first only logs more.
        errors = []
        for n in reversed(nodes):
            try:
                n.kill()
            except Exception as e:  # keep killing the others, then report
                errors.append(e)
        if errors:
            raise RuntimeError(f"ray cluster teardown failed (Ray's files: {temp_dir}): {errors}")
        if started:
            shutil.rmtree(temp_dir, ignore_errors=True)  # else kept: Ray's own logs are there
