#!/usr/bin/env bash
# An S3-compatible server on loopback (moto's server mode, from the project's .venv), for
# trying the papers pipeline's S3 path by hand; the tests start theirs from Python
# (batch_processor.devservers.moto_server).
#
#   scripts/s3.sh start PORT      a new server on 127.0.0.1:PORT (state in a new folder under
#                                 /tmp); prints "<endpoint-url> <folder>"
#   scripts/s3.sh stop FOLDER     stop that server and delete its folder
#
# Point boto3 (and batch-processor) at it with the standard AWS settings:
#   export AWS_ENDPOINT_URL=<endpoint-url> AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test \
#          AWS_DEFAULT_REGION=us-east-1
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"

check_folder() {
    case "$1" in
    /tmp/batch-processor-s3.*) ;;
    *) echo "s3.sh: $1 is not a folder this script made" >&2; exit 2 ;;
    esac
}

case "${1:-}" in
start)
    port="${2:?usage: s3.sh start PORT}"
    server="$root/.venv/bin/moto_server"
    [ -x "$server" ] || { echo "s3.sh: $server is missing: run scripts/setup.sh" >&2; exit 1; }
    if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
        echo "s3.sh: port $port is already taken: give another" >&2
        exit 1
    fi
    dir="$(mktemp -d /tmp/batch-processor-s3.XXXXXX)"
    "$server" -H 127.0.0.1 -p "$port" >"$dir/server.log" 2>&1 &
    pid=$!
    echo "$pid" >"$dir/server.pid"
    for _ in $(seq 1 300); do
        if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && kill -0 "$pid" 2>/dev/null; then
            echo "http://127.0.0.1:$port $dir"
            exit 0
        fi
        if ! kill -0 "$pid" 2>/dev/null; then
            echo "s3.sh: moto_server exited on port $port:" >&2
            cat "$dir/server.log" >&2 || true
            rm -rf "$dir"
            exit 1
        fi
        sleep 0.1
    done
    echo "s3.sh: moto_server did not listen on port $port within 30 s; its output:" >&2
    cat "$dir/server.log" >&2 || true
    kill "$pid" 2>/dev/null || true
    rm -rf "$dir"
    exit 1
    ;;
stop)
    dir="${2:?usage: s3.sh stop FOLDER}"
    check_folder "$dir"
    if [ -f "$dir/server.pid" ]; then
        pid="$(cat "$dir/server.pid")"
        kill "$pid" 2>/dev/null || true
        for _ in $(seq 1 50); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.1
        done
    fi
    rm -rf "$dir"
    ;;
*)
    echo "usage: s3.sh start PORT | stop FOLDER" >&2
    exit 2
    ;;
esac
