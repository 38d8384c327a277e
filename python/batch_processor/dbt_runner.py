"""The one way the project runs dbt: in-process, one invocation per batch.

The project is parsed in one folder per checkout (``parse_dir``), shared by every warehouse:
the profile attaches each warehouse under the same catalog name (``db.WAREHOUSE_CATALOG``)
and the parse runs without the variables that name a warehouse or a batch, so dbt's saved
parse fits them all and only the first parse of a checkout is a full one; the others are
partial (dbt re-reads only changed files). The batch's vars and paths are given to the
build, with the parsed manifest, and dbt renders them when it compiles. Each warehouse's
builds run in its own folder (``target_dir``).
After the run, the batch's artifacts are written into the batch's own folder, so that a
later dbt command can never overwrite the ones a batch reads: its run_results.json (with each
node's compiled SQL) and a copy of the parse's manifest.json (the project's graph, written
once per project state: dbt would serialize the whole manifest after every run).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
import pickle
import shutil
import sys
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

from batch_processor import db
from batch_processor.errors import ConfigError, RunFailedError
from batch_processor.logs import json_logging
from batch_processor.paths import PROJECT_ROOT
from batch_processor.progress import DbtProgress
from batch_processor.run_lock import exclusive

log = logging.getLogger(__name__)


def _first_line(message: str | None) -> str:
    """The line of a database error that says what failed (dbt prefixes a header line)."""
    lines = [line.strip() for line in (message or "").splitlines() if line.strip()]
    useful = [
        line for line in lines if not line.startswith(("Runtime Error in", "Database Error in"))
    ]
    return (useful or lines or ["no message"])[0][:300]


def _row_text(row: dict[str, Any]) -> str:
    return ", ".join(f"{k}={v}" for k, v in row.items())


@dataclass(frozen=True)
class NodeResult:
    unique_id: str
    resource_type: str
    status: str
    message: str | None
    failures: int | None
    execution_time: float
    compiled_code: str | None = None  # a test's query of its failing rows


@dataclass(frozen=True)
class DbtRun:
    success: bool
    target_path: Path
    nodes: list[NodeResult]
    error: str | None = None

    @property
    def invocation_id(self) -> str | None:
        """dbt's invocation id of this run (the batch id), from its run_results.json."""
        results = self.target_path / "run_results.json"
        if not results.exists():
            return None
        invocation: str = json.loads(results.read_text())["metadata"]["invocation_id"]
        return invocation

    @property
    def failed_nodes(self) -> list[NodeResult]:
        return [n for n in self.nodes if n.status in {"error", "fail", "runtime error"}]

    def failure_records(self) -> list[dict[str, Any]]:
        """The failed models and tests, as reports list them."""
        return [
            {
                "unique_id": n.unique_id,
                "status": n.status,
                "failures": n.failures,
                "message": n.message,
            }
            for n in self.failed_nodes
        ]

    def failing_rows(self, warehouse: Path, limit: int = 5) -> dict[str, list[dict[str, Any]]]:
        """Per failed data test: the first ``limit`` rows its query returns (the ids a
        uniqueness or conflict test found), read from ``warehouse`` after the run."""
        tests = [
            n
            for n in self.failed_nodes
            if n.resource_type == "test" and n.failures and n.compiled_code
        ]
        if not tests:
            return {}
        found: dict[str, list[dict[str, Any]]] = {}
        con = db.connect(warehouse, read_only=True)
        try:
            for node in tests:
                try:
                    cursor = con.execute(f"select * from ({node.compiled_code}) limit {limit}")
                    names = [d[0] for d in cursor.description or []]
                    found[node.unique_id] = [
                        dict(zip(names, r, strict=True)) for r in cursor.fetchall()
                    ]
                except Exception as error:  # a test that cannot be re-read names no rows
                    log.debug("could not re-read the failing rows of %s: %s", node.unique_id, error)
        finally:
            con.close()
        return found

    def failure_summary(self, examples: dict[str, list[dict[str, Any]]] | None = None) -> str:
        """One line naming each failed node and its failing-row count (or dbt's error)."""

        def described(n: NodeResult) -> str:
            if not n.failures:
                return f"{n.unique_id} ({n.status}: {_first_line(n.message)})"
            rows = (examples or {}).get(n.unique_id)
            shown = f", e.g. {'; '.join(_row_text(r) for r in rows)}" if rows else ""
            return f"{n.unique_id} ({n.status}, {n.failures} failing row(s){shown})"

        names = ", ".join(described(n) for n in self.failed_nodes)
        return names or str(self.error)


def vars_argument(dbt_vars: Mapping[str, Any]) -> str:
    """``dbt_vars`` as dbt's --vars text, every value kept literal: dbt parses --vars as YAML
    (JSON is YAML) and then renders each string as Jinja, so a text value is wrapped in
    ``{% raw %}…{% endraw %}`` (``{{ 7*7 }}`` stays ``{{ 7*7 }}``, never 49). A value that
    itself contains ``endraw`` cannot be protected that way and is refused."""
    literal: dict[str, Any] = {}
    for name, value in dbt_vars.items():
        if isinstance(value, str):
            if "endraw" in value:
                raise ConfigError(f"the value of {name} may not contain 'endraw': {value!r}")
            value = "{% raw %}" + value + "{% endraw %}" if value else value
        literal[name] = value
    return json.dumps(literal, default=str, ensure_ascii=False)


@contextmanager
def _environment(values: Mapping[str, str | None]) -> Iterator[None]:
    """``values`` set in the environment (None: unset) for the block, then restored."""
    saved = {key: os.environ.get(key) for key in values}
    for key, value in values.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def _release_warehouse() -> None:
    """dbt-duckdb keeps its DuckDB database open in the process after a run; close it so the
    loader, the publisher or the next run can open the file (DuckDB has a single writer)."""
    from dbt.adapters.duckdb.connections import DuckDBConnectionManager

    environment = DuckDBConnectionManager._ENV
    if environment is not None:
        environment.close()
    DuckDBConnectionManager.close_all_connections()  # type: ignore[no-untyped-call]


CI_ONLY_TAG = "ci_only"


def batch_build(
    selector: str, *options: str, skip_seeds: bool = False, exclude: tuple[str, ...] = ()
) -> list[str]:
    """The dbt command of a production batch: the pipeline's seeds, models and data tests.
    Unit tests check the SQL logic on fixed rows, not the batch's data, and the data tests
    tagged ``ci_only`` re-check what the published contract's tests, unique keys and model
    contracts already guard (every column's not_null, the grain of each intermediate view):
    CI runs both (``scripts/test.sh``'s dbt build on generated data of every pipeline); a
    batch does not pay for them. ``skip_seeds`` (the warehouse holds the seeds, loaded and
    tested: ``seed_state``) also leaves out the seeds and the tests that read only seeds;
    "cautious" keeps a test that also reads a model (a relationship from a model to a seed),
    and selects what "eager" would otherwise (every test of a selected node). ``exclude``:
    models the batch leaves as they are (and their tests), built earlier in the same run."""
    excluded = [f"tag:{CI_ONLY_TAG}", *exclude]
    if skip_seeds:
        excluded.append("resource_type:seed")
        options = (*options, "--indirect-selection", "cautious")
    return [
        "build",
        "--select",
        selector,
        "--exclude-resource-type",
        "unit_test",
        "--exclude",
        *excluded,
        *options,
    ]


ARTIFACTS = ("run_results.json", "manifest.json")


def target_dir(warehouse: Path) -> Path:
    """dbt's working folder for the builds of ``warehouse`` from this checkout (compiled
    SQL, the latest run's artifacts); the warehouse lock guards it."""
    checkout = hashlib.sha256(str(PROJECT_ROOT).encode()).hexdigest()[:12]
    return warehouse.with_name(warehouse.name + ".dbt") / checkout


def parse_dir() -> Path:
    """dbt's saved parse of this checkout, shared by all its warehouses: it names the
    project's own files (a seed is read from the folder it was parsed in), so each checkout
    has its own, in its git-ignored ``target/`` folder."""
    return PROJECT_ROOT / "target" / "parse"


PARSE_LOCK_TIMEOUT_S = 600.0  # a full parse takes 10-30 s; processes of one checkout queue
PARTIAL_PARSE_FILE = "partial_parse.msgpack"  # dbt's saved parse, in parse_dir()
_ENV_PREFIX = "BATCH_PROCESSOR_"


def _invoke(
    command: list[str],
    *,
    warehouse: Path | None,
    target_path: Path,
    log_path: Path | None = None,
    dbt_vars: Mapping[str, Any] | None = None,
    dbt_env: Mapping[str, str] | None = None,
    memory_limit_mb: int | None = None,
    manifest: Any = None,
) -> Any:
    """``dbt <command…>`` in this process against ``warehouse``; dbt's own result object.
    Without a warehouse (the parse) every ``BATCH_PROCESSOR_*`` variable is unset, so the
    profile and the macros see their defaults: the saved parse never depends on which
    warehouse, memory limit or staging folder a batch uses."""
    from dbt.cli.main import dbtRunner  # imported here: dbt takes ~2 s to import

    dbt_console = log.isEnabledFor(logging.DEBUG)

    args = [
        *command,
        "--project-dir",
        str(PROJECT_ROOT),
        "--profiles-dir",
        str(PROJECT_ROOT),
        "--target-path",
        str(target_path),
        "--log-path",
        str(log_path or target_path / "logs"),
        # dbt's own console is off: its warnings and errors reach the process's log through
        # DbtProgress (one format, written around a progress bar); its log is under
        # log_path. With -v dbt prints its info lines itself, and its log file holds every
        # debug line too (each statement it runs): formatting those ~1,700 lines costs a
        # batch ~1 CPU-s, so without -v the file keeps dbt's info lines (each node's start,
        # result and error; the compiled SQL is in run_results.json).
        "--log-level",
        "info" if dbt_console else "none",
        "--log-level-file",
        "debug" if dbt_console else "info",
    ]
    if dbt_vars:
        args += ["--vars", vars_argument(dbt_vars)]
    if json_logging():  # dbt prints its own console lines: keep them one JSON object each
        args += ["--log-format", "json"]
    environment: dict[str, str | None]
    if warehouse is None:
        environment = dict.fromkeys(k for k in os.environ if k.startswith(_ENV_PREFIX))
    else:
        environment = {"BATCH_PROCESSOR_DUCKDB_PATH": str(warehouse), **(dbt_env or {})}
    if memory_limit_mb is not None:
        environment["BATCH_PROCESSOR_MEMORY_LIMIT"] = f"{memory_limit_mb}MB"
    log.info("dbt %s", " ".join(command))
    # a log line dbt cannot write (a full disk under target_path) would print a traceback per
    # line; the run's error says it once, naming the folder (see run_dbt)
    raise_exceptions, logging.raiseExceptions = logging.raiseExceptions, False
    progress = DbtProgress(json_logs=json_logging(), forward_warnings=not dbt_console)
    with _environment(environment):
        try:
            return dbtRunner(manifest=manifest, callbacks=[progress]).invoke(args)
        finally:
            progress.close()
            logging.raiseExceptions = raise_exceptions
            _release_warehouse()


def _error_text(exception: BaseException | None, target_path: Path) -> str | None:
    """dbt's exception as one line; an OS error (a full disk) names where dbt was writing."""
    if exception is None:
        return None
    cause: BaseException | None = exception
    while cause is not None and not isinstance(cause, OSError):
        cause = cause.__cause__ or cause.__context__
    if isinstance(cause, OSError):
        where = cause.filename or f"dbt's artifacts and logs under {target_path}"
        return f"{where}: {cause.strerror or cause}"
    return str(exception)


def run_dbt(
    command: list[str],
    *,
    warehouse: Path,
    target_path: Path | None = None,
    dbt_vars: Mapping[str, Any] | None = None,
    dbt_env: Mapping[str, str] | None = None,
    memory_limit_mb: int | None = None,
    manifest: Any = None,
) -> DbtRun:
    """Run ``dbt <command…>`` against ``warehouse`` and collect every node's result; the
    caller holds the warehouse's lock. ``manifest`` (from ``parse_project``) is used as is: a
    long-lived process parses once. Without it, the project is parsed first, incrementally
    (see the module's docstring; ``dbt_env`` is not part of the parse). dbt's artifacts and
    log of this run end up in ``target_path`` (default: the warehouse's dbt folder). Paths
    are made absolute first: dbt resolves a relative path against the project, not the
    caller's folder."""
    warehouse = warehouse.absolute()
    work = target_dir(warehouse)
    artifacts = (target_path or work).absolute()
    for folder in {work, artifacts}:  # a run that writes none must not show an earlier one's
        for name in ARTIFACTS:
            (folder / name).unlink(missing_ok=True)
    if manifest is None:
        try:
            manifest = _parsed_project(artifacts / "logs")
        except RunFailedError as parse_error:
            return DbtRun(success=False, target_path=artifacts, nodes=[], error=str(parse_error))
    result = _invoke(
        # dbt would serialize the whole manifest after every run (~1 CPU-s): the batch gets
        # the parse's copy instead (``_manifest_file``), and its run_results.json from here
        [*command, "--no-write-json"],
        warehouse=warehouse,
        target_path=work,
        log_path=artifacts / "logs",
        dbt_vars=dbt_vars,
        dbt_env=dbt_env,
        memory_limit_mb=memory_limit_mb,
        manifest=manifest,
    )
    error: str | None = _error_text(result.exception, work)
    success = bool(result.success)
    try:  # run_results.json first: it names the batch (its invocation id)
        artifacts.mkdir(parents=True, exist_ok=True)
        if result.result is not None and hasattr(result.result, "write"):
            result.result.write(str(artifacts / "run_results.json"))  # as dbt writes it
        parsed = _manifest_file(manifest)
        if parsed is not None:
            shutil.copyfile(parsed, artifacts / "manifest.json")
        else:
            manifest.write(str(artifacts / "manifest.json"))
    except OSError as copy_error:  # a full disk: the batch cannot show what it ran
        error = error or _error_text(copy_error, artifacts)
        success = False
    nodes: list[NodeResult] = []
    if result.result is not None and hasattr(result.result, "results"):
        for node in result.result.results:
            if not hasattr(node, "node"):  # run-operation results carry no node
                continue
            nodes.append(
                NodeResult(
                    unique_id=node.node.unique_id,
                    resource_type=str(node.node.resource_type),
                    status=str(node.status),
                    message=node.message,
                    failures=node.failures,
                    execution_time=float(node.execution_time or 0.0),
                    compiled_code=getattr(node.node, "compiled_code", None),
                )
            )
    return DbtRun(success=success, target_path=artifacts, nodes=nodes, error=error)


def ensure_tables(
    warehouse: Path,
    tables: list[tuple[str, str]],
    macro_name: str,
    target_path: Path | None = None,
    manifest: Any = None,
) -> None:
    """Tables a pipeline loads before its dbt build are defined once, by a dbt macro that
    on-run-start runs; on a warehouse that lacks any of ``tables`` ((schema, name) pairs),
    run that macro first (``dbt run-operation create_tables``)."""
    if warehouse.exists():
        con = db.connect(warehouse, read_only=True)
        try:
            present = {
                (str(schema), str(name))
                for schema, name in con.execute(
                    "select schema_name, table_name from duckdb_tables()"
                ).fetchall()
            }
        finally:
            con.close()
        if set(tables) <= present:
            return
    run = run_dbt(
        ["run-operation", "create_tables", "--args", json.dumps({"macro_name": macro_name})],
        warehouse=warehouse,
        target_path=target_path,
        manifest=manifest,
    )
    if not run.success:
        raise RunFailedError(f"could not create the tables of {macro_name}: {run.error}")


_PROJECT_FOLDERS = ("models", "macros", "seeds", "tests", "snapshots", "analyses")
_PARSED: dict[str, Any] = {}  # project state -> manifest
# the packages whose code is in a manifest (dbt-adapters ships the built-in macros) or reads it
_VERSIONED_PACKAGES = ("dbt-core", "dbt-adapters", "dbt-common", "dbt-duckdb", "duckdb")


def project_state() -> str:
    """A digest of every file dbt reads (path and content) and of the dbt and adapter
    versions: a change to the project (an edited model, a new test, a renamed file) or an
    upgrade changes it, so the project is parsed again. A file that vanishes during the scan
    is skipped."""
    versions = [metadata.version(name) for name in _VERSIONED_PACKAGES]
    digest = hashlib.sha256(f"{versions}\0{sys.version}\n".encode())
    stack = [PROJECT_ROOT / name for name in _PROJECT_FOLDERS]
    files = [PROJECT_ROOT / "dbt_project.yml", PROJECT_ROOT / "profiles.yml"]
    while stack:
        folder = stack.pop()
        try:
            entries = sorted(os.scandir(folder), key=lambda entry: entry.name)
        except OSError:
            continue
        for entry in entries:
            try:
                if entry.is_dir(follow_symlinks=False):
                    stack.append(Path(entry.path))
                else:
                    files.append(Path(entry.path))
            except OSError:
                continue
    for file in files:
        try:
            content = file.read_bytes()
        except OSError:
            continue
        digest.update(f"{file}\0{len(content)}\0".encode())
        digest.update(content)
    return digest.hexdigest()


def _parsed_project(log_path: Path | None = None) -> Any:
    """The project's manifest, for every warehouse. A process parses once while the project
    is unchanged, and a new process loads the manifest the last parse of this project state
    saved (``manifest-<state>.pickle``: ~0.2 CPU-s, where dbt's partial parse takes ~1).
    Otherwise dbt parses, incrementally from the checkout's saved parse, under its lock (two
    processes of one checkout would otherwise write it at once)."""
    key = project_state()
    if key not in _PARSED:
        work = parse_dir()
        manifest = _saved_manifest(work / f"manifest-{key[:16]}.pickle")
        if manifest is None:
            with exclusive(work / ".lock", f"dbt's saved parse in {work}", PARSE_LOCK_TIMEOUT_S):
                # --no-write-json: the saved parse is partial_parse.msgpack; the manifest.json
                # the batches copy is written once per project state (_write_manifest_file)
                parsed = _invoke(
                    ["parse", "--no-write-json"],
                    warehouse=None,
                    target_path=work,
                    log_path=log_path,
                )
                saved_parse = work / PARTIAL_PARSE_FILE
                if not parsed.success and saved_parse.exists():
                    # dbt's partial parse can fail on an edit a full parse takes (seen on
                    # 1.11: a model renamed together with its unit test, "Unable to find
                    # model ... for unit test"): parse once more from scratch, and only a
                    # project that fails that too is an error
                    log.warning(
                        "dbt's partial parse failed (%s); parsing the whole project again",
                        _error_text(parsed.exception, work),
                    )
                    saved_parse.unlink(missing_ok=True)
                    parsed = _invoke(
                        ["parse", "--no-write-json"],
                        warehouse=None,
                        target_path=work,
                        log_path=log_path,
                    )
                # saved only if the project did not change while dbt read it (a deploy during
                # the parse): a later process would otherwise load it for the wrong state
                if parsed.success and project_state() == key:
                    _write_manifest_file(parsed.result, work / f"manifest-{key[:16]}.json")
                    _save_manifest(parsed.result, work / f"manifest-{key[:16]}.pickle")
            if not parsed.success:
                raise RunFailedError(
                    _error_text(parsed.exception, work) or "dbt could not parse the project"
                )
            manifest = parsed.result
        _PARSED.clear()
        _PARSED[key] = manifest
    return _PARSED[key]


def _saved_manifest(path: Path) -> Any:
    """The manifest a parse of this project state saved, or None (none saved, or one this
    dbt cannot load: the caller parses). The file is this checkout's own, in its git-ignored
    target/ folder, written by ``_save_manifest``."""
    from dbt.contracts.graph.manifest import Manifest

    try:
        with path.open("rb") as saved:
            fields = pickle.load(saved)  # noqa: S301 (the checkout's own file, see above)
        return Manifest(**fields)
    except FileNotFoundError:
        return None
    except Exception as error:  # a truncated or foreign file: parse instead
        log.debug("cannot load the saved manifest %s: %s", path, error)
        return None


def _save_manifest(manifest: Any, path: Path) -> None:
    """``manifest`` as a new process of this project state loads it (before any run compiles
    into it); older states' files are removed. Its public fields are saved, and the lookups
    and caches (the fields named ``_…``) are rebuilt when first used: dbt's own pickling of a
    Manifest (``__reduce_ex__``) passes its fields out of order in dbt 1.11 (it leaves out
    ``fixtures``), and a manifest it restores fails to compile a test."""
    fields = {
        field.name: getattr(manifest, field.name)
        for field in dataclasses.fields(manifest)
        if field.init and not field.name.startswith("_")
    }
    partial = path.with_name(path.name + ".tmp")
    try:
        with partial.open("wb") as saved:
            pickle.dump(fields, saved, protocol=pickle.HIGHEST_PROTOCOL)
        partial.replace(path)
    except OSError as error:  # a full disk: the next process parses again
        log.warning("could not save the parsed manifest to %s: %s", path, error)
        partial.unlink(missing_ok=True)
        return
    for old in path.parent.glob("manifest-*.pickle"):
        if old != path:
            old.unlink(missing_ok=True)


def _write_manifest_file(manifest: Any, path: Path) -> None:
    """The parse's manifest.json, once per project state (a copy goes to every batch's
    artifacts): written before any run compiles into the object, so it is the project's
    graph, and the batch's compiled SQL is in its run_results.json."""
    if path.exists():
        return
    partial = path.with_name(path.name + ".tmp")
    manifest.write(str(partial))
    partial.replace(path)
    for old in path.parent.glob("manifest-*.json"):
        if old != path:
            old.unlink(missing_ok=True)


def _manifest_file(manifest: Any) -> Path | None:
    """The parse's manifest.json of ``manifest`` if this process parsed it, else None."""
    for key, parsed in _PARSED.items():
        if parsed is manifest:
            path = parse_dir() / f"manifest-{key[:16]}.json"
            return path if path.exists() else None
    return None


def parse_project() -> Any:
    """Parse the dbt project (incrementally, from the checkout's saved parse) and keep it
    for this process; the manifest to pass to ``run_dbt``, for any warehouse."""
    try:
        return _parsed_project()
    except RunFailedError as error:
        raise RuntimeError(f"dbt parse failed: {error}") from error
