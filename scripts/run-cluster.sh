#!/usr/bin/env bash
# Local multi-process KvDB cluster: start | bootstrap | stop.
# Every process's PID goes to $RUN_DIR/pids, its log to $RUN_DIR/logs;
# `stop` signals only those PIDs.
set -euo pipefail

KVDB=${KVDB:-target/release/kvdb}
RUN_DIR=${RUN_DIR:-run}
COORD=127.0.0.1:7380
ADMIN=127.0.0.1:7381
GATEWAY=127.0.0.1:7379
NODE_PORTS=(7391 7392 7393)

# shellcheck source=scripts/lib.sh
source "$(dirname "$0")/lib.sh"

pids="$RUN_DIR/pids"
logs="$RUN_DIR/logs"

spawn() { # name, then the kvdb arguments
    local name=$1; shift
    if [[ -f "$pids/$name.pid" ]] && kill -0 "$(cat "$pids/$name.pid")" 2>/dev/null; then
        echo "$name already running (pid $(cat "$pids/$name.pid"))"
        return
    fi
    "$KVDB" "$@" >"$logs/$name.log" 2>&1 &
    echo $! >"$pids/$name.pid"
    echo "started $name (pid $!), log $logs/$name.log"
}


start() {
    [[ -x "$KVDB" ]] || { echo "no $KVDB: run make build" >&2; exit 1; }
    mkdir -p "$pids" "$logs" "$RUN_DIR/data"
    spawn coordinator coordinator --id 1 --listen "$COORD" --admin-listen "$ADMIN" \
        --data "$RUN_DIR/data/coordinator"
    wait_for "the coordinator" 30 "$KVDB" admin --admin "$ADMIN" cluster
    local i=1
    for port in "${NODE_PORTS[@]}"; do
        spawn "node-$i" node --name "node-$i" --listen "127.0.0.1:$port" \
            --coordinators "$COORD" --data "$RUN_DIR/data/node-$i"
        i=$(( i + 1 ))
    done
    spawn gateway gateway --listen "$GATEWAY" --coordinators "$COORD"
    wait_for "3 registered nodes" 30 bash -c \
        "[[ \$('$KVDB' admin --admin '$ADMIN' --json nodes | grep -o '\"address\"' | wc -l) -ge 3 ]]"
    echo "cluster running: gateway $GATEWAY, coordinator $COORD, admin http://$ADMIN"
}

bootstrap() {
    "$KVDB" admin --admin "$ADMIN" shard-init --num-shards 8 --replication-factor 3
    # Ready when a write through the gateway succeeds.
    wait_for "the shards to elect leaders" 60 "$KVDB" put --gateway "$GATEWAY" kvdb:bootstrap ok
    echo "cluster bootstrapped: 8 shards, replication factor 3"
}

stop() {
    [[ -d "$pids" ]] || { echo "nothing to stop"; return; }
    for f in "$pids"/*.pid; do
        [[ -e "$f" ]] || continue
        local pid; pid=$(cat "$f")
        if kill -0 "$pid" 2>/dev/null; then
            kill -TERM "$pid" && echo "stopped $(basename "$f" .pid) (pid $pid)"
        fi
        rm -f "$f"
    done
}

case "${1:-}" in
    start) start ;;
    bootstrap) bootstrap ;;
    stop) stop ;;
    *) echo "usage: $0 start|bootstrap|stop" >&2; exit 2 ;;
esac
