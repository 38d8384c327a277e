"""Real servers on loopback for the tests, the benchmarks and demos: moto's AWS server mode
and a throw-away PostgreSQL (``scripts/postgres.sh``). Not used by the pipelines themselves."""

from __future__ import annotations

import logging
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from pathlib import Path

from batch_processor.paths import PROJECT_ROOT

log = logging.getLogger(__name__)

POSTGRES_SCRIPT = PROJECT_ROOT / "scripts" / "postgres.sh"
NATS_SCRIPT = PROJECT_ROOT / "scripts" / "nats.sh"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _wait_for_port(port: int, process: subprocess.Popen[bytes], seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            if process.poll() is not None:
                raise RuntimeError(f"the server on port {port} exited") from None
            if time.monotonic() > deadline:
                raise RuntimeError(f"nothing listens on port {port} after {seconds} s") from None
            time.sleep(0.1)


@contextmanager
def moto_server() -> Iterator[dict[str, str]]:
    """moto's server mode on a free loopback port; yields the AWS settings (endpoint,
    dummy credentials, region) that point boto3 at it."""
    port = free_port()
    server = subprocess.Popen(
        [str(Path(sys.executable).parent / "moto_server"), "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        _wait_for_port(port, server, 30)
        yield {
            "AWS_ENDPOINT_URL": f"http://127.0.0.1:{port}",
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_DEFAULT_REGION": "us-east-1",
        }
    finally:
        server.terminate()
        server.wait(timeout=10)


@contextmanager
def _scripted(script: Path) -> Iterator[tuple[str, str]]:
    """Start a server with ``script start PORT`` (it prints "<url> <folder>"), yield both,
    and ``script stop FOLDER`` afterwards."""
    for _attempt in range(3):  # a free port can be taken by another process before the server
        started = subprocess.run(
            [str(script), "start", str(free_port())], capture_output=True, text=True, check=False
        )
        if started.returncode == 0:
            break
        log.warning("%s could not start its server: %s", script.name, started.stderr.strip())
    else:
        raise RuntimeError(f"{script.name} could not start its server: {started.stderr.strip()}")
    url, folder = started.stdout.split()
    try:
        yield url, folder
    finally:
        subprocess.run([str(script), "stop", folder], check=False)


@contextmanager
def _scripted_server(script: Path) -> Iterator[str]:
    """A server started by ``script``; yields its URL."""
    with _scripted(script) as (url, _):
        yield url


def postgres_server() -> AbstractContextManager[str]:
    """A fresh PostgreSQL server on a free loopback port (installed by the script if
    missing); yields its admin URL, and stops and deletes it afterwards."""
    return _scripted_server(POSTGRES_SCRIPT)


def nats_server() -> AbstractContextManager[str]:
    """A fresh nats-server with JetStream on a free loopback port (Debian's package,
    installed by the script if missing); yields its URL."""
    return _scripted_server(NATS_SCRIPT)


@dataclass(frozen=True)
class ScriptedServer:
    """A server started by a project script, which can be taken down and brought back with
    its state (an outage, for tests)."""

    url: str
    folder: str
    script: Path

    def halt(self) -> None:
        subprocess.run([str(self.script), "halt", self.folder], check=True)

    def revive(self) -> None:
        subprocess.run([str(self.script), "revive", self.folder], check=True, capture_output=True)


@contextmanager
def nats_server_with_outages() -> Iterator[ScriptedServer]:
    """Like nats_server, yielding a handle whose halt() stops the server and revive() starts
    it again on the same port with the same JetStream store."""
    with _scripted(NATS_SCRIPT) as (url, folder):
        yield ScriptedServer(url, folder, NATS_SCRIPT)
