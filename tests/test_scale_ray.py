"""Scale-out over Ray (``--ray``), against a real local cluster: a head node and a second node
on this machine (127.0.0.2 and 127.0.0.3), started by the test and killed by their process
groups afterwards (tests/raycluster.py). The same workers as ``--workers`` run as Ray actors,
one per node; a node that dies mid-run costs only its requests in flight."""

from __future__ import annotations

import json
import time

import pytest

from tests.conftest import perfbench, rows, start_perfbench, wait_for
from tests.raycluster import free_port, local_cluster

pytest.importorskip("ray")

SIM_FLAGS = ("--ttft-ms", "50", "--itl-ms", "10", "--itl-ms-per-seq", "0", "--seed", "2")


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory):
    with local_cluster(tmp_path_factory.mktemp("ray")) as c:
        yield c


def test_ray_workers_spread_over_the_nodes_and_send_the_plan(sim, cluster, tmp_path):
    url = sim(*SIM_FLAGS)
    db = tmp_path / "ray.db"
    done = perfbench(
        "perf", "--url", url, "--ray", cluster.address, "--parallel", "4", "--number", "40",
        "--max-tokens", "20", "--min-tokens", "20", "--db", str(db), "--quiet",
        timeout=180,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    status, scheduled, recorded, workers = rows(
        db, "SELECT status, scheduled, recorded, workers FROM runs"
    )[0]
    assert status == "completed" and scheduled == recorded == 40
    entries = json.loads(workers)
    # one actor per node (the default), each on its own node
    assert [w["kind"] for w in entries] == ["ray", "ray"]
    assert {w["ip"] for w in entries} == {"127.0.0.2", "127.0.0.3"}
    assert len({w["node"] for w in entries}) == 2
    for w in entries:  # one machine: the true offset is 0, within the measured uncertainty
        assert abs(w["offset_ns"]) <= w["offset_uncertainty_ns"], w
    per_worker = dict(rows(db, "SELECT worker, count(*) FROM requests GROUP BY worker"))
    assert per_worker == {0: 20, 1: 20}
    assert rows(db, "SELECT count(*) FROM requests WHERE status != 'ok'")[0][0] == 0
    # the same requests as one process sends
    one = tmp_path / "one.db"
    single = perfbench(
        "perf", "--url", url, "--parallel", "4", "--number", "40", "--max-tokens", "20",
        "--min-tokens", "20", "--db", str(one), "--quiet",
    )  # fmt: skip
    assert single.returncode == 0, single.stderr
    query = "SELECT idx, prompt_id FROM requests ORDER BY idx"
    assert rows(db, query) == rows(one, query)


def test_more_workers_than_free_cpus_is_one_line_and_nothing_sent(cluster, tmp_path):
    start = time.monotonic()
    done = perfbench(
        "perf", "--ray", cluster.address, "--workers", "5", "--number", "5",
        "--outputs-dir", str(tmp_path),
    )  # fmt: skip
    assert done.returncode == 2, done.stderr
    assert "free CPUs for 5 workers" in done.stderr and "Traceback" not in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "perfbench.db").exists()
    assert time.monotonic() - start < 60


def test_a_cluster_with_no_free_cpu_is_one_line(tmp_path):
    with local_cluster(tmp_path, head_cpus=0, second_node=False) as c:
        done = perfbench(
            "perf", "--ray", c.address, "--number", "5", "--outputs-dir", str(tmp_path)
        )
    assert done.returncode == 2, done.stderr
    assert "no free CPU" in done.stderr and "Traceback" not in done.stderr
    assert not (tmp_path / "perfbench.db").exists()


def test_an_unreachable_ray_address_is_one_line_within_seconds(tmp_path):
    address = f"127.0.0.2:{free_port()}"  # nothing listens there
    start = time.monotonic()
    done = perfbench("perf", "--ray", address, "--number", "5", "--outputs-dir", str(tmp_path))
    took = time.monotonic() - start
    assert done.returncode == 2, done.stderr
    assert f"cannot reach a Ray cluster at {address}" in done.stderr
    assert "Traceback" not in done.stderr and len(done.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "perfbench.db").exists()
    assert took < 45, took


def test_ray_missing_is_one_line(tmp_path):
    fake = tmp_path / "noray" / "ray"
    fake.mkdir(parents=True)
    (fake / "__init__.py").write_text("raise ImportError('ray is not installed')\n")
    done = perfbench(
        "perf", "--ray", "--number", "5", "--outputs-dir", str(tmp_path),
        env={"PYTHONPATH": str(fake.parent)},
    )  # fmt: skip
    assert done.returncode == 2
    assert "pip install 'perfbench[ray]'" in done.stderr and "Traceback" not in done.stderr
    assert not (tmp_path / "perfbench.db").exists()


def test_a_node_that_dies_mid_run_costs_only_its_requests_in_flight(sim, tmp_path):
    url = sim(*SIM_FLAGS)
    with local_cluster(tmp_path) as c:
        db = tmp_path / "lost.db"
        proc = start_perfbench(
            "perf", "--url", url, "--ray", c.address, "--parallel", "4", "--number", "80",
            "--max-tokens", "40", "--min-tokens", "40", "--on-worker-loss", "continue",
            "--db", str(db), "--quiet",
        )  # fmt: skip
        wait_for(db, "SELECT count(*) FROM runs WHERE workers IS NOT NULL", 1, timeout=120)
        entries = json.loads(rows(db, "SELECT workers FROM runs")[0][0])
        victim = next(w["worker"] for w in entries if w["ip"] == "127.0.0.3")
        wait_for(db, f"SELECT count(*) FROM requests WHERE worker = {victim}", 2, timeout=60)
        c.kill_second_node()
        out, err = proc.communicate(timeout=180)
    assert proc.returncode == 0, err
    assert "Traceback" not in err, err
    assert f"worker {victim} (" in err and "was lost" in err
    status, scheduled, recorded, workers = rows(
        db, "SELECT status, scheduled, recorded, workers FROM runs"
    )[0]
    n = rows(db, "SELECT count(*) FROM requests")[0][0]
    assert status == "completed" and scheduled == recorded == n
    lost = rows(db, "SELECT worker FROM requests WHERE status = 'worker_lost'")
    assert 1 <= len(lost) <= 2 and {w for (w,) in lost} == {victim}  # its 2 streams at most
    survivor = 1 - victim
    ok = rows(db, f"SELECT count(*) FROM requests WHERE worker = {survivor} AND status = 'ok'")
    assert ok[0][0] == 40  # the other node sent its whole share
    assert json.loads(workers)[victim]["lost"]
