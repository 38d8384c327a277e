#!/usr/bin/env bash
# A NATS server with JetStream on loopback, for the CRM tasks (tests, benchmarks, trying it).
#
#   scripts/nats.sh install            install Debian's nats-server if it is missing
#   scripts/nats.sh start PORT         a new server in a new folder under /tmp on
#                                      127.0.0.1:PORT (JetStream stored there); prints
#                                      "<url> <folder>"
#   scripts/nats.sh stop FOLDER        stop that server and delete its folder
#   scripts/nats.sh halt FOLDER        stop that server, keep its folder (an outage)
#   scripts/nats.sh revive FOLDER      start it again on its port with its JetStream store
set -euo pipefail

find_server() {
    command -v nats-server 2>/dev/null || { [ -x /usr/sbin/nats-server ] && echo /usr/sbin/nats-server; }
}

check_folder() {
    case "$1" in
    /tmp/batch-processor-nats.*) ;;
    *) echo "nats.sh: $1 is not a folder this script made" >&2; exit 2 ;;
    esac
}

case "${1:-}" in
install)
    if find_server >/dev/null; then
        exit 0
    fi
    "$(dirname "$0")/apt-install.sh" nats-server
    find_server >/dev/null || { echo "nats.sh: nats-server installed but not found" >&2; exit 1; }
    ;;
start | revive)
    if [ "$1" = start ]; then
        port="${2:?usage: nats.sh start PORT}"
        dir="$(mktemp -d /tmp/batch-processor-nats.XXXXXX)"
        echo "$port" >"$dir/port"
    else
        dir="${2:?usage: nats.sh revive FOLDER}"
        check_folder "$dir"
        port="$(cat "$dir/port")"
    fi
    "$0" install
    server="$(find_server)"
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
stop | halt)
    dir="${2:?usage: nats.sh stop FOLDER}"
    check_folder "$dir"
    if [ -f "$dir/server.pid" ]; then
        pid="$(cat "$dir/server.pid")"
        kill "$pid" 2>/dev/null || true
        for _ in $(seq 1 50); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.1
        done
    fi
    if [ "$1" = stop ]; then
        rm -rf "$dir"
    fi
    ;;
*)
    echo "usage: nats.sh install | start PORT | stop FOLDER | halt FOLDER | revive FOLDER" >&2
    exit 2
    ;;
esac
