#!/usr/bin/env bash
# The etcd side of KvDB's performance comparison (docs/performance.md): starts
# a 3-member etcd (Debian's etcd-server) on loopback with its default
# durability (the WAL is fsynced before a write is acknowledged, as KvDB's Raft
# log is), drives it with bench/etcd/driver (the same closed-loop, HDR-histogram
# method as `kvdb bench`) at concurrency 50, 20,000 requests, 100-byte values:
# put and linearizable get (serializable=false), over a spread key space and
# over one hot key, and prints the same table as scripts/bench.sh. It stops
# only the etcd members it started.
#
#   bench/etcd/run.sh
#
# Settings (environment): ETCD (binary), ETCD_DIR, ETCD_ENDPOINTS ("leader",
# the default and etcd's fastest: one connection to the leader, so nothing is
# forwarded; "all": one connection to each member), CONCURRENCY, REQUESTS, VALUE_SIZE,
# KEY_SPACE, BENCH_OPS, BENCH_KEYS, ETCD_PORT_BASE (23790).
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
cd "$root"

ETCD=${ETCD:-etcd}
ETCD_DIR=${ETCD_DIR:-run/etcd-bench}
ETCD_ENDPOINTS=${ETCD_ENDPOINTS:-leader}
CONCURRENCY=${CONCURRENCY:-50}
REQUESTS=${REQUESTS:-20000}
VALUE_SIZE=${VALUE_SIZE:-100}
KEY_SPACE=${KEY_SPACE:-10000}
BENCH_OPS=${BENCH_OPS:-put get}
BENCH_KEYS=${BENCH_KEYS:-spread hot}
port_base=${ETCD_PORT_BASE:-23790}
# The driver shares the repository's target directory, so it reuses the
# release build of KvDB that `make bench` made.
REPO_TARGET=$(cd "$here/../.." && pwd)/target
DRIVER=$REPO_TARGET/release/etcd-bench

names=(m1 m2 m3)
client_url() { echo "127.0.0.1:$(( port_base + $1 + 1 ))"; }
peer_url() { echo "http://127.0.0.1:$(( port_base + $1 + 11 ))"; }

# shellcheck source=scripts/lib.sh
source "$root/scripts/lib.sh"
pids=()



start_etcd() {
    rm -rf "$ETCD_DIR"
    mkdir -p "$ETCD_DIR/logs"
    local cluster="" i
    for i in 0 1 2; do
        cluster+="${cluster:+,}${names[i]}=$(peer_url "$i")"
    done
    for i in 0 1 2; do
        "$ETCD" --name "${names[i]}" --data-dir "$ETCD_DIR/${names[i]}" \
            --listen-client-urls "http://$(client_url "$i")" \
            --advertise-client-urls "http://$(client_url "$i")" \
            --listen-peer-urls "$(peer_url "$i")" \
            --initial-advertise-peer-urls "$(peer_url "$i")" \
            --initial-cluster "$cluster" --initial-cluster-state new \
            --initial-cluster-token kvdb-bench-etcd \
            --logger zap --log-level warn \
            >"$ETCD_DIR/logs/${names[i]}.log" 2>&1 &
        pids+=("$!")
    done
    local all
    all=$(for i in 0 1 2; do client_url "$i"; done | paste -sd,)
    WAIT_HINT="logs in $ETCD_DIR/logs" wait_for "healthy etcd members" 60 \
        env ETCDCTL_API=3 etcdctl --endpoints "$all" endpoint health
    echo "etcd $("$ETCD" --version | head -1 | awk '{print $3}') up: 3 members, clients on $all"
}

# The endpoints the driver uses, and how many connections.
endpoints() {
    local all
    all=$(for i in 0 1 2; do client_url "$i"; done | paste -sd,)
    case $ETCD_ENDPOINTS in
        all) echo "$all 3" ;;
        leader)
            # simple output: endpoint, id, version, db size, is leader, ...
            ETCDCTL_API=3 etcdctl --endpoints "$all" endpoint status -w simple |
                awk -F', ' '$5 == "true" { sub("^http://", "", $1); print $1 " 1" }'
            ;;
        *) echo "etcd bench: ETCD_ENDPOINTS is all or leader" >&2; return 1 ;;
    esac
}

run() {
    command -v "$ETCD" >/dev/null || { echo "etcd bench: no etcd (apt-get install etcd-server etcd-client)" >&2; exit 1; }
    command -v jq >/dev/null || { echo "etcd bench: needs jq" >&2; exit 1; }
    (cd "$here/driver" && CARGO_TARGET_DIR=$REPO_TARGET cargo build --release --quiet)
    trap stop_started EXIT
    trap 'exit 130' INT TERM
    echo "machine: $(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg)"
    start_etcd
    local eps conns
    read -r eps conns < <(endpoints)
    # Warm connections (not measured).
    "$DRIVER" --endpoints "$eps" --connections "$conns" --op put -c 8 -n 400 \
        --key-space 400 --key-prefix warmup- --json >/dev/null
    echo "workload: concurrency $CONCURRENCY, $REQUESTS requests, $VALUE_SIZE-byte values," \
        "spread = $KEY_SPACE keys, hot = 1 key; gets linearizable and preloaded;" \
        "endpoints $eps ($conns connection(s))"
    local results="$ETCD_DIR/results.jsonl" keys op space out status failed=0
    for keys in $BENCH_KEYS; do
        for op in $BENCH_OPS; do
            space=$KEY_SPACE
            [[ $keys == hot ]] && space=1
            local args=(--endpoints "$eps" --connections "$conns" --op "$op" -c "$CONCURRENCY"
                -n "$REQUESTS" --value-size "$VALUE_SIZE" --key-space "$space"
                --key-prefix "$op-$keys-" --json)
            [[ $op == get ]] && args+=(--preload)
            status=0
            out=$("$DRIVER" "${args[@]}") || status=$?
            if (( status == 0 || status == 1 )) && [[ -n $out ]]; then
                echo "$out" >>"$results"
                jq -r '"  etcd \(.op) keys=\(.key_space): \(.throughput | floor) ops/s, p99 \(.latency_ms.p99) ms, errors \(.errors | add)"' <<<"$out"
            else
                echo "etcd bench: $op over $keys keys failed (exit $status)" >&2
                failed=1
            fi
        done
    done
    echo "CPU time per etcd member over the whole benchmark:"
    local i
    for i in 0 1 2; do
        printf '  %-4s %s\n' "${names[i]}" "$(cpu_seconds "${pids[i]}")"
    done
    echo
    [[ -s $results ]] && "$root/scripts/bench.sh" table "$results"
    echo "results: $results"
    return "$failed"
}

run
