#!/usr/bin/env bash
# Command 2: set everything up and run every check: ruff, mypy, dbt build (models, data tests,
# unit tests) on freshly generated data, sqlfluff lint, pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
step() { echo "== [${SECONDS} s] $*"; }  # a section's heading, with the time so far
scripts/setup.sh

BIN=.venv/bin
WORK=target-ci
rm -rf "$WORK"
mkdir -p "$WORK"
# every command below (and dbt) works in this one warehouse; pytest's tests make their own
export BATCH_PROCESSOR_DUCKDB_PATH="$PWD/$WORK/ci.duckdb"

step "ruff"
"$BIN/ruff" check python benchmarks
step "mypy"
"$BIN/mypy"

step "dbt build on a fresh warehouse (no data: what a newcomer's bare dbt build does)"
DBT=("$BIN/dbt" --log-level warn)
DBT_DIRS=(--project-dir . --profiles-dir . --target-path "$WORK/dbt" --log-path "$WORK/dbt/logs")
"${DBT[@]}" build "${DBT_DIRS[@]}"

step "every pipeline's generated data into that warehouse, then dbt build with every test"
ok_or_rejects() {  # 3: completed with rejects (the generated data carries faults on purpose)
    set +e; "$@"; local code=$?; set -e
    if [ "$code" -ne 0 ] && [ "$code" -ne 3 ]; then echo "failed (exit $code): $*" >&2; exit "$code"; fi
}
"$BIN/batch-processor" telemetry generate --output "$WORK/telemetry-in" --sites 4 --days 2 --seed 1 >/dev/null
"$BIN/batch-processor" products generate --output "$WORK/products-in" --rows 3000 >/dev/null
"$BIN/batch-processor" papers generate --output "$WORK/papers.xml.gz" --entries 3000 >/dev/null
"$BIN/batch-processor" crm generate --output "$WORK/crm-in" >/dev/null
ok_or_rejects "$BIN/batch-processor" products sync --input "$WORK/products-in" --output "$WORK/products" >/dev/null
ok_or_rejects "$BIN/batch-processor" papers load --input "$WORK/papers.xml.gz" --output "$WORK/papers" >/dev/null
for task in crm.customers crm.orders crm.leads crm.customer_segments; do
    "$BIN/batch-processor" crm run "$task" --input "$WORK/crm-in" >/dev/null
done
ok_or_rejects "$BIN/batch-processor" telemetry load --input "$WORK/telemetry-in" >/dev/null
# models, seeds, every data test (the ci_only ones too: batches skip them) and the unit tests
"${DBT[@]}" build "${DBT_DIRS[@]}"

step "dbt docs: coverage (docs 100 %, column tests >= 50 %) and dbt-score (>= 9.0)"
"${DBT[@]}" docs generate --no-compile "${DBT_DIRS[@]}"  # the build's manifest, this catalog
"$BIN/dbt-coverage" compute doc --project-dir . --run-artifacts-dir "$WORK/dbt" \
    --cov-report "$WORK/coverage-doc.json" --cov-fail-under 1.0 | grep -E "^Total"
"$BIN/dbt-coverage" compute test --project-dir . --run-artifacts-dir "$WORK/dbt" \
    --cov-report "$WORK/coverage-test.json" --cov-fail-under 0.5 | grep -E "^Total"
"$BIN/dbt-score" lint --manifest "$WORK/dbt/manifest.json" --fail-project-under 9.0 --show failing-rules \
    | tail -n 3

step "sqlfluff"
"$BIN/sqlfluff" lint models tests --processes 2

step "pytest (2 workers: pytest-xdist; every test has its own warehouse and server ports)"
started=$SECONDS
unset BATCH_PROCESSOR_DUCKDB_PATH
"$BIN/pytest" -n "${PYTEST_WORKERS:-2}" --dist worksteal --durations=15 "$@"
echo "== pytest took $((SECONDS - started)) s wall; CPU time of this script and its children:"
times
