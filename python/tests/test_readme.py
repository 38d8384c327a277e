"""The newcomer path: every ```bash block of README.md, as written and in order, in a fresh
copy of the checkout (its own .venv, made by scripts/setup.sh as the first block's
scripts/demo.sh does), succeeds. Exit code 3 ("completed, but some input was rejected") counts
as success: the demo data carries malformed files on purpose. ``scripts/test.sh`` is the one
line not run (it runs this test)."""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import subprocess
from pathlib import Path

import pytest

from batch_processor.paths import PROJECT_ROOT

BLOCK = re.compile(r"^```bash\n(.*?)^```", re.MULTILINE | re.DOTALL)
NOT_RUN = "scripts/test.sh"
SERVER_FOLDERS = ("batch-processor-nats.*", "batch-processor-s3.*", "batch-processor-postgres.*")
# every command must succeed (0) or complete with rejects (3); the first other exit stops it
PROLOGUE = """set -o pipefail
trap 'rc=$?; if [ "$rc" -ne 3 ]; then
    echo "README command failed (exit $rc): $BASH_COMMAND" >&2; exit "$rc"; fi' ERR
"""


def readme_script(readme: Path) -> str:
    blocks = BLOCK.findall(readme.read_text(encoding="utf-8"))
    lines = [
        line
        for block in blocks
        for line in block.splitlines()
        if line.split("#")[0].strip() != NOT_RUN
    ]
    return PROLOGUE + "\n".join(lines) + "\n"


def test_the_readme_script_holds_every_block_but_the_test_command():
    script = readme_script(PROJECT_ROOT / "README.md")
    assert "scripts/demo.sh" in script and NOT_RUN not in script.replace(PROLOGUE, "")
    for command in ("telemetry run", "products sync", "papers handle-event", "enqueue crm.orders"):
        assert command in script
    assert "[--" not in script and "EVENT.json" not in script  # no placeholders left


def _fresh_copy(target: Path) -> None:
    """The checkout's files as git sees them (tracked and new, not ignored), as a clone has
    them, but with uncommitted edits."""
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=PROJECT_ROOT,
        capture_output=True,
        check=True,
    ).stdout.split(b"\0")
    for name in filter(None, listed):
        source = PROJECT_ROOT / os.fsdecode(name)
        if source.is_file():
            (target / os.fsdecode(name)).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target / os.fsdecode(name))


def _server_folders() -> set[Path]:
    return {path for pattern in SERVER_FOLDERS for path in Path("/tmp").glob(pattern)}


def _stop_servers(folders: set[Path], checkout: Path) -> None:
    for folder in folders:
        kind = folder.name.split(".")[0].removeprefix("batch-processor-")
        script = {"nats": "nats.sh", "s3": "s3.sh", "postgres": "postgres.sh"}.get(kind)
        if script:
            subprocess.run([checkout / "scripts" / script, "stop", str(folder)], check=False)


@pytest.mark.timeout(1500)
def test_every_readme_block_runs_in_order_in_a_fresh_copy(tmp_path):
    if not (PROJECT_ROOT / ".git").exists():
        pytest.skip("not a git checkout: cannot tell which files a clone would have")
    checkout = tmp_path / "clone"
    _fresh_copy(checkout)
    script = checkout / "readme.sh"
    script.write_text(readme_script(checkout / "README.md"))
    environment = {k: v for k, v in os.environ.items() if not k.startswith("BATCH_PROCESSOR_")}
    environment.pop("PYTHONPATH", None)  # the copy's own .venv and package, as a clone has
    before = _server_folders()
    process = subprocess.Popen(
        ["bash", str(script)],
        cwd=checkout,
        env=environment,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    try:
        output, _ = process.communicate(timeout=1400)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
        else:  # a background worker the script left behind
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
        _stop_servers(_server_folders() - before, checkout)
    tail = output[-6000:]
    assert process.returncode == 0, tail
    demo = checkout / "demo"
    for dataset in ("output", "products", "products-from-pg", "papers"):
        current = json.loads((demo / dataset / "manifests" / "current.json").read_text())
        assert current["batch_id"], (dataset, current)
    assert (checkout / "warehouse" / "batch_processor.duckdb").exists()  # the bare dbt build's
    events = [json.loads(line) for line in output.splitlines() if line.startswith('{"version"')]
    assert [e["status"] for e in events] == ["ok"], tail
    assert "parity: ok" in output, tail
