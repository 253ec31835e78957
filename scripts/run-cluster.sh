#!/usr/bin/env bash
# Local multi-process KvDB cluster: start | bootstrap | stop.
# Every process's PID goes to $RUN_DIR/pids, its log to $RUN_DIR/logs
# (start_process in lib.sh); `stop` signals only those PIDs.
set -euo pipefail

KVDB=${KVDB:-target/release/kvdb}
RUN_DIR=${RUN_DIR:-run}
COORD=127.0.0.1:7380
ADMIN=127.0.0.1:7381
GATEWAY=127.0.0.1:7379
NODE_PORTS=(7391 7392 7393)

# shellcheck source=scripts/lib.sh
source "$(dirname "$0")/lib.sh"

start() {
    start_cluster "$RUN_DIR"
    echo "cluster running: gateway $GATEWAY, coordinator $COORD, admin http://$ADMIN"
}

bootstrap() {
    "$KVDB" admin --admin "$ADMIN" shard-init --num-shards 8 --replication-factor 3
    # Ready when a write through the gateway succeeds.
    wait_for "the shards to elect leaders" 60 "$KVDB" put --gateway "$GATEWAY" kvdb:bootstrap ok
    echo "cluster bootstrapped: 8 shards, replication factor 3"
}

stop() {
    stop_processes "$RUN_DIR"
}

case "${1:-}" in
    start) start ;;
    bootstrap) bootstrap ;;
    stop) stop ;;
    *) echo "usage: $0 start|bootstrap|stop" >&2; exit 2 ;;
esac
