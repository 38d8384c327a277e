#!/usr/bin/env bash
# Command 2: set everything up and run every check: ruff, mypy, dbt build (models, data tests,
# unit tests) on freshly generated data, sqlfluff lint, pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh

BIN=.venv/bin
WORK=target-ci
rm -rf "$WORK"
mkdir -p "$WORK"
export BATCH_PROCESSOR_DUCKDB_PATH="$PWD/$WORK/ci.duckdb"

echo "== ruff"
"$BIN/ruff" check python benchmarks
echo "== mypy"
"$BIN/mypy"

echo "== dbt build on generated data"
"$BIN/batch-processor" telemetry generate --output "$WORK/input" --sites 4 --days 2 --seed 1 >/dev/null
set +e
"$BIN/batch-processor" telemetry load --input "$WORK/input" --warehouse "$BATCH_PROCESSOR_DUCKDB_PATH"
code=$?
set -e
if [ "$code" -ne 0 ] && [ "$code" -ne 3 ]; then exit "$code"; fi
"$BIN/dbt" build --project-dir . --profiles-dir . --target-path "$WORK/dbt" --log-path "$WORK/dbt/logs"

echo "== sqlfluff"
"$BIN/sqlfluff" lint models tests

echo "== pytest (2 workers: pytest-xdist; every test has its own warehouse and server ports)"
started=$SECONDS
"$BIN/pytest" -n "${PYTEST_WORKERS:-2}" --dist worksteal "$@"
echo "== pytest took $((SECONDS - started)) s wall; CPU time of this script and its children:"
times
