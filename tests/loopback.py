"""A real multi-node Ray cluster on one machine, for tests and benchmarks: `ray start --block`
subprocesses with a shared random auth token, stopped by PID.

Ray rewrites the addresses 127.0.0.1 and localhost to the machine's network address, so
nodes bind to and are reached at another loopback address, 127.0.0.2: all traffic stays
in 127.0.0.0/8."""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from tuning.records.ray_processes import descendants

NODE_IP = "127.0.0.2"
RAY = str(Path(sys.executable).with_name("ray"))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind((NODE_IP, 0))
        return s.getsockname()[1]


@dataclass
class LoopbackCluster:
    """A Ray head and worker nodes on 127.0.0.2, started as subprocesses and stopped by PID."""

    address: str
    env: dict[str, str]
    temp_dir: Path
    nodes: list[subprocess.Popen] = field(default_factory=list)

    def add_node(self, head: bool = False, cpus: int = 1) -> subprocess.Popen:
        """Start one more worker node on loopback and wait until it has joined."""
        log = (self.temp_dir / f"node{len(self.nodes)}.log").open("w")
        cmd = [RAY, "start", "--block", f"--node-ip-address={NODE_IP}", f"--num-cpus={cpus}", "--disable-usage-stats"]
        if head:
            port = self.address.rsplit(":", 1)[1]
            cmd += ["--head", f"--port={port}", f"--temp-dir={self.temp_dir}", "--include-dashboard=false"]
        else:
            cmd += [f"--address={self.address}"]
        proc = subprocess.Popen(cmd, env=self.env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        self.nodes.append(proc)
        self._wait_started(Path(log.name), proc)
        return proc

    @staticmethod
    def _wait_started(log: Path, proc: subprocess.Popen, timeout: float = 120) -> None:
        deadline = time.time() + timeout
        while "Ray runtime started" not in log.read_text():
            if proc.poll() is not None or time.time() > deadline:
                raise RuntimeError(f"ray node did not start:\n{log.read_text()[-3000:]}")
            time.sleep(0.5)

    def command(self, *args: str) -> list[str]:
        """argv of `fishleg-tune ARGS` as a driver of this cluster."""
        return [str(Path(sys.executable).with_name("fishleg-tune")), *args]

    def sweep_args(self, spec: Path, storage: Path) -> list[str]:
        """`search` on this cluster; its nodes share this machine's disk, hence --shared-storage."""
        return ["search", str(spec), "--address", self.address, "--storage-path", str(storage), "--shared-storage"]

    def cli(self, *args: str, timeout: float = 600) -> subprocess.CompletedProcess:
        """Run `fishleg-tune ARGS` to completion with the cluster's auth token."""
        return subprocess.run(self.command(*args), env=self.env, capture_output=True, text=True, timeout=timeout)

    def kill_node(self, proc: subprocess.Popen) -> None:
        """Hard node failure: SIGKILL the node's whole process tree (`ray start`, raylet and
        every worker it spawned, some of which leave the process group)."""
        for pid in [proc.pid, *descendants(proc.pid)]:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        proc.wait(timeout=30)

    def stop(self) -> None:
        """Stop every node started here, by PID (the head last)."""
        for proc in reversed(self.nodes):
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in self.nodes:
            try:
                proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=30)


def _head(env: dict[str, str], temp_dir: Path, tries: int = 3) -> LoopbackCluster:
    """A cluster with its head started on a free port. A port another process took between its
    choice and the GCS binding it (the GCS then cannot start its gRPC server) is chosen again."""
    attempt = 1
    while True:
        cluster = LoopbackCluster(f"{NODE_IP}:{_free_port()}", env, temp_dir)
        try:
            cluster.add_node(head=True)
            return cluster
        except RuntimeError as exc:
            cluster.stop()
            if "Failed to start the grpc server" not in str(exc) or attempt == tries:
                raise
            attempt += 1


@contextmanager
def loopback_cluster(workers: int = 1) -> Iterator[LoopbackCluster]:
    """A head and `workers` worker nodes with 1 CPU each. Unix socket paths must stay short,
    hence a temporary folder directly under /tmp."""
    temp_dir = Path(tempfile.mkdtemp(prefix="rt", dir="/tmp"))
    env = {**os.environ, "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": secrets.token_hex(16)}
    cluster = _head(env, temp_dir)
    try:
        for _ in range(workers):
            cluster.add_node()
        yield cluster
    finally:
        cluster.stop()
        shutil.rmtree(temp_dir, ignore_errors=True)
