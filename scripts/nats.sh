#!/usr/bin/env bash
# A NATS server with JetStream on loopback, for the CRM tasks (tests, benchmarks, trying it).
#
#   scripts/nats.sh install            install Debian's nats-server if it is missing
#   scripts/nats.sh start PORT         a new server in a new folder under /tmp on
#                                      127.0.0.1:PORT (JetStream stored there); prints
#                                      "<url> <folder>"
#   scripts/nats.sh stop FOLDER        stop that server and delete its folder
set -euo pipefail

find_server() {
    command -v nats-server 2>/dev/null || { [ -x /usr/sbin/nats-server ] && echo /usr/sbin/nats-server; }
}

case "${1:-}" in
install)
    if find_server >/dev/null; then
        exit 0
    fi
    "$(dirname "$0")/apt-install.sh" nats-server
    find_server >/dev/null || { echo "nats.sh: nats-server installed but not found" >&2; exit 1; }
    ;;
start)
    port="${2:?usage: nats.sh start PORT}"
    "$0" install
    server="$(find_server)"
    dir="$(mktemp -d /tmp/batch-processor-nats.XXXXXX)"
    "$server" -a 127.0.0.1 -p "$port" -js -sd "$dir/jetstream" -l "$dir/server.log" \
        -P "$dir/server.pid" >/dev/null 2>&1 &
    for _ in $(seq 1 100); do
        if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
            echo "nats://127.0.0.1:$port $dir"
            exit 0
        fi
        sleep 0.1
    done
    echo "nats.sh: nats-server did not start; its log:" >&2
    cat "$dir/server.log" >&2 || true
    exit 1
    ;;
stop)
    dir="${2:?usage: nats.sh stop FOLDER}"
    case "$dir" in
    /tmp/batch-processor-nats.*) ;;
    *) echo "nats.sh: $dir is not a folder this script made" >&2; exit 2 ;;
    esac
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
    echo "usage: nats.sh install | start PORT | stop FOLDER" >&2
    exit 2
    ;;
esac
