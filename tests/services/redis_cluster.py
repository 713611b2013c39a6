"""A Redis Cluster for tests: three masters, each with one replica.

Resolved in this order: ``TEST_REDIS_CLUSTER_URL`` (any node of a running cluster); six
local ``redis-server --cluster-enabled yes`` processes on free loopback ports, each in a
temporary directory, joined with ``redis-cli --cluster create ... --cluster-replicas 1``.
With ``CI=true`` a missing cluster fails the test run; otherwise the tests that need it
skip. The session cluster is stopped by the ``redis_cluster`` fixture's teardown (and at
exit, should the session end early).
"""

from __future__ import annotations

import atexit
import os
import shutil
import subprocess
import time
from collections.abc import Iterator

import redis

from tests.services.local import free_port
from tests.services.redis_server import LocalRedis, require_redis_or_skip

MASTERS = 3
REPLICAS_PER_MASTER = 1
# Short, so that a node that dies is failed over within a few seconds.
NODE_TIMEOUT_MS = 2000

_session: LocalRedisCluster | None = None
_session_url: str | None = None
_session_problem: str | None = None


def _node(port: int) -> redis.Redis:
    return redis.Redis(host="127.0.0.1", port=port, socket_timeout=1, socket_connect_timeout=1)


def _free_port_pair() -> tuple[int, int]:
    """A client port and a cluster-bus port, both free now."""
    return free_port(), free_port()


class LocalRedisCluster:
    """``MASTERS`` x (1 + ``REPLICAS_PER_MASTER``) local ``redis-server`` processes.

    ``start()`` starts the processes and, the first time, creates the cluster; after a
    ``stop()`` they come back with their ``nodes.conf`` and form the same cluster again
    (with ``appendonly``, with their data too).
    """

    def __init__(self, *, appendonly: bool = False) -> None:
        if shutil.which("redis-cli") is None:
            raise FileNotFoundError("redis-cli is not installed")
        self.nodes: list[LocalRedis] = []
        for _ in range(MASTERS * (1 + REPLICAS_PER_MASTER)):
            port, bus = _free_port_pair()
            self.nodes.append(LocalRedis(port=port, appendonly=appendonly, extra_args=(
                "--cluster-enabled", "yes",
                "--cluster-config-file", "nodes.conf",
                "--cluster-node-timeout", str(NODE_TIMEOUT_MS),
                "--cluster-port", str(bus),
            )))
        self._created = False

    @property
    def url(self) -> str:
        """The URL of one node; a cluster client discovers the others from it."""
        return self.nodes[0].url

    @property
    def ports(self) -> list[int]:
        return [node.port for node in self.nodes]

    def start(self, timeout: float = 30.0) -> None:
        for node in self.nodes:
            node.start()
        if not self._created:
            self._create(timeout)
            self._created = True
        self.wait_healthy(timeout)

    def _create(self, timeout: float) -> None:
        redis_cli = shutil.which("redis-cli")
        assert redis_cli is not None
        done = subprocess.run(
            [redis_cli, "--cluster", "create",
             *(f"127.0.0.1:{port}" for port in self.ports),
             "--cluster-replicas", str(REPLICAS_PER_MASTER), "--cluster-yes"],
            capture_output=True, timeout=timeout, check=False,
        )
        if done.returncode != 0:
            raise RuntimeError(
                "redis-cli --cluster create failed: "
                + (done.stdout + done.stderr).decode(errors="replace")[-2000:]
            )

    def wait_healthy(self, timeout: float = 30.0) -> None:
        """Until every node says ``cluster_state:ok``, there are ``MASTERS`` masters and
        every replica's link to its master is up (so that a failover can happen)."""
        deadline = time.monotonic() + timeout
        problem = "not checked yet"
        while time.monotonic() < deadline:
            problem = self._problem()
            if problem == "":
                return
            time.sleep(0.1)
        raise RuntimeError(
            f"the test Redis Cluster is not healthy: {problem}\n{self._diagnosis()}"
        )

    def _diagnosis(self) -> str:
        try:
            with _node(self.ports[0]) as node:
                layout = node.execute_command("CLUSTER NODES")
        except redis.RedisError as exc:
            layout = f"CLUSTER NODES failed: {exc}"
        logs = [f"--- {node.port}\n{node.log_tail()}" for node in self.nodes]
        return f"{layout!s}\n" + "\n".join(logs)

    def _problem(self) -> str:
        masters = 0
        for port in self.ports:
            try:
                with _node(port) as node:
                    state = node.cluster("INFO")
                    replication = node.info("replication")
            except redis.RedisError as exc:
                return f"node {port}: {exc}"
            if state.get("cluster_state") != "ok":
                return f"node {port} is not ok"
            if replication["role"] == "master":
                masters += 1
                if replication["connected_slaves"] == 0:
                    return f"master {port} has no replica yet"
            elif replication.get("master_link_status") != "up":
                return f"replica {port} is not linked to its master"
        if masters != MASTERS:
            return f"{masters} masters, expected {MASTERS}"
        return ""

    def stop(self) -> None:
        for node in self.nodes:
            node.stop()

    def cleanup(self) -> None:
        for node in self.nodes:
            node.cleanup()


def local_redis_cluster(*, appendonly: bool = False) -> LocalRedisCluster:
    """A fresh :class:`LocalRedisCluster` (not started), or skip/fail when binaries miss."""
    try:
        return LocalRedisCluster(appendonly=appendonly)
    except FileNotFoundError as exc:
        require_redis_or_skip(f"this test runs its own Redis Cluster: {exc}")
        raise


def _resolve() -> tuple[str | None, str | None]:
    global _session
    url = os.environ.get("TEST_REDIS_CLUSTER_URL")
    if url:
        return url, None
    if shutil.which("redis-server") is None or shutil.which("redis-cli") is None:
        return None, (
            "no Redis Cluster for tests: TEST_REDIS_CLUSTER_URL is unset and "
            "redis-server / redis-cli are not installed"
        )
    cluster = LocalRedisCluster()
    try:
        cluster.start()
    except (OSError, RuntimeError, subprocess.TimeoutExpired) as exc:
        cluster.cleanup()
        return None, f"no Redis Cluster for tests: local cluster failed: {exc}"
    _session = cluster
    return cluster.url, None


def stop_session_cluster() -> None:
    """Stop the session cluster, if one was started. Idempotent."""
    global _session
    cluster, _session = _session, None
    if cluster is not None:
        cluster.cleanup()


atexit.register(stop_session_cluster)


def session_redis_cluster_url() -> str:
    """The URL of a Redis Cluster shared by the test session (started on first use).

    Skips the calling test when none can be had, or fails it with ``CI=true``.
    """
    global _session_url, _session_problem
    if _session_url is None and _session_problem is None:
        _session_url, _session_problem = _resolve()
    if _session_url is None:
        require_redis_or_skip(_session_problem or "no Redis Cluster for tests")
    assert _session_url is not None
    return _session_url


def redis_cluster_session() -> Iterator[str]:
    """The body of the session fixture: the URL, and the cluster stopped afterwards."""
    try:
        yield session_redis_cluster_url()
    finally:
        stop_session_cluster()
