#!/usr/bin/env bash
# A throw-away PostgreSQL server on loopback, for the tests and for trying the products sync
# against a real database.
#
#   scripts/postgres.sh install            install Debian's postgresql if it is missing
#   scripts/postgres.sh start PORT         a new server in a new folder under /tmp, on
#                                          127.0.0.1:PORT; prints "<url> <folder>"
#   scripts/postgres.sh stop FOLDER        stop that server and delete its folder
#
# The server trusts local connections (user postgres, no password) and listens on loopback
# only. PostgreSQL refuses to run as root: as root, the server runs as the `postgres` user,
# which is why its folder is a fresh one under /tmp (a root-only parent would lock it out).
set -euo pipefail

bindir() {
    local dir
    for dir in /usr/lib/postgresql/*/bin; do
        if [ -x "$dir/initdb" ]; then
            echo "$dir"
            return 0
        fi
    done
    return 1
}

as_server_user() {
    if [ "$(id -u)" = 0 ]; then
        runuser -u postgres -- "$@"
    else
        "$@"
    fi
}

case "${1:-}" in
install)
    if bindir >/dev/null; then
        exit 0
    fi
    "$(dirname "$0")/apt-install.sh" postgresql
    bindir >/dev/null || { echo "postgres.sh: postgresql installed but initdb not found" >&2; exit 1; }
    ;;
start)
    port="${2:?usage: postgres.sh start PORT}"
    "$0" install
    bin="$(bindir)"
    dir="$(mktemp -d /tmp/batch-processor-postgres.XXXXXX)"
    if [ "$(id -u)" = 0 ]; then
        chown postgres: "$dir"
    fi
    as_server_user "$bin/initdb" -D "$dir/data" -U postgres --auth=trust -E UTF8 \
        --locale=C.UTF-8 >"$dir/initdb.log" 2>&1 \
        || { cat "$dir/initdb.log" >&2; exit 1; }
    as_server_user "$bin/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 60 \
        -o "-c listen_addresses=127.0.0.1 -p $port -k $dir -c fsync=off" start >/dev/null \
        || { cat "$dir/server.log" >&2; exit 1; }
    echo "postgresql://postgres@127.0.0.1:$port/postgres $dir"
    ;;
stop)
    dir="${2:?usage: postgres.sh stop FOLDER}"
    case "$dir" in
    /tmp/batch-processor-postgres.*) ;;
    *) echo "postgres.sh: $dir is not a folder this script made" >&2; exit 2 ;;
    esac
    bin="$(bindir)"
    if [ -f "$dir/data/postmaster.pid" ]; then
        as_server_user "$bin/pg_ctl" -D "$dir/data" -m fast -w stop >/dev/null
    fi
    rm -rf "$dir"
    ;;
*)
    echo "usage: postgres.sh install | start PORT | stop FOLDER" >&2
    exit 2
    ;;
esac
