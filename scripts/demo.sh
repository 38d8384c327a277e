#!/usr/bin/env bash
# Command 1: set everything up, make demo data if absent, run the telemetry job end to end.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh

DEMO_DIR="${DEMO_DIR:-demo}"
if [ ! -d "$DEMO_DIR/input" ]; then
    .venv/bin/batch-processor telemetry generate --output "$DEMO_DIR/input" --sites 4 --days 3 --seed 42
fi

set +e
.venv/bin/batch-processor telemetry run --input "$DEMO_DIR/input" --output "$DEMO_DIR/output"
code=$?
set -e
# 3 = completed with rejected input: the demo batch carries malformed files on purpose.
if [ "$code" -ne 0 ] && [ "$code" -ne 3 ]; then
    echo "demo run failed (exit $code)" >&2
    exit "$code"
fi
echo
out="$(cd "$DEMO_DIR/output" && pwd)"
echo "demo output: $out"
echo "  dataset:  $out/data (read it through $out/manifests/current.json)"
echo "  reports:  $out/reports"
.venv/bin/batch-processor verify --output "$out"
