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

failed_start() {  # a server that never started leaves no folder behind (a revived one keeps its)
    if [ "$1" = start ]; then rm -rf "$2"; fi
    exit 1
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
    # what the server prints before its log file is open (e.g. a port already taken) goes to
    # server.out, so that a failed start says why
    "$server" -a 127.0.0.1 -p "$port" -js -sd "$dir/jetstream" -l "$dir/server.log" \
        -P "$dir/server.pid" >"$dir/server.out" 2>&1 &
    pid=$!
    for _ in $(seq 1 300); do
        # ready means this server says so: another process may listen on a port taken since
        if grep -q "Server is ready" "$dir/server.log" 2>/dev/null \
            && (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
            echo "nats://127.0.0.1:$port $dir"
            exit 0
        fi
        if ! kill -0 "$pid" 2>/dev/null; then
            echo "nats.sh: nats-server exited on port $port:" >&2
            cat "$dir/server.out" "$dir/server.log" >&2 2>/dev/null || true
            failed_start "$1" "$dir"
        fi
        sleep 0.1
    done
    echo "nats.sh: nats-server did not listen on port $port within 30 s; its output:" >&2
    cat "$dir/server.out" "$dir/server.log" >&2 2>/dev/null || true
    kill "$pid" 2>/dev/null || true
    failed_start "$1" "$dir"
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
