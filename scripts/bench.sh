#!/usr/bin/env bash
# KvDB benchmark (`make bench`): starts its own local multi-process cluster
# (1 coordinator, 3 nodes, gateway; 8 shards, RF 3, fsync on) on ports apart
# from `make run-cluster`'s, runs the Java original's workload (concurrency 50,
# 20,000 requests, 100-byte values) for put and strong get, through the gateway
# and through the smart client, over a spread key space and over one hot key,
# and prints a table built from `kvdb bench --json`. It stops only the
# processes it started, whatever way it exits.
#
#   scripts/bench.sh [run]         the whole benchmark (the binary must be built)
#   scripts/bench.sh table FILE..  the table of saved JSON results (one per line)
#   scripts/bench.sh up            start the cluster and keep it until interrupted,
#                                  to drive or profile it by hand
#   scripts/bench.sh profile [put|get] [gateway|smart]
#                                  one longer run (PROFILE_SECONDS, 20) over the
#                                  spread key space: CPU share and CPU time per
#                                  operation of every process and, when perf
#                                  works (and PROFILE_PERF is not 0), a
#                                  system-wide profile
#   scripts/bench.sh memory        resident memory of every node, every
#                                  MEMORY_SAMPLE (15) s, during MEMORY_SECONDS
#                                  (150) of smart puts over MEMORY_KEYS (100000)
#                                  keys of MEMORY_VALUE_SIZE (200) bytes, and the
#                                  throughput and data size at the end; nodes take
#                                  KVDB_CACHE_MIB from the environment
#   scripts/bench.sh shards        the shard-count curve: for each count in
#                                  SHARD_COUNTS ("2 8 32 128"), a fresh cluster,
#                                  its nodes' idle CPU over IDLE_SECONDS (10) and
#                                  resident memory, then CURVE_SECONDS (5) of smart
#                                  puts at CONCURRENCY over KEY_SPACE keys; when
#                                  etcd and etcdctl are installed (and ETCD_ROW is
#                                  not 0), a last row drives a 3-member etcd the
#                                  same way (bench/etcd/run.sh) for comparison
#   scripts/bench.sh clients       the concurrency curve for the charts: one cluster,
#                                  for each count in CLIENT_COUNTS ("1 4 16 64
#                                  256"), CURVE_SECONDS (5) of puts and of strong
#                                  gets over KEY_SPACE keys through the gateway and
#                                  the smart client; the JSON summaries go to
#                                  CHART_DATA (run/charts)/clients.jsonl, as the
#                                  shards curve's go to CHART_DATA/shards.jsonl
#                                  (scripts/charts.py draws them: make charts)
#   scripts/bench.sh datasize      the data-size curve: for each count in
#                                  DATA_SIZES ("10000 100000 1000000"), a fresh
#                                  cluster filled with that many keys of
#                                  VALUE_SIZE bytes (smart puts, c=256), then
#                                  CURVE_SECONDS (5) of smart puts at CONCURRENCY
#                                  over the stored keys, and each node's data
#                                  directory against the live data
#   scripts/bench.sh admin         the Admin API (`make bench-admin`): wrk on the
#                                  shard, cluster and node lists and on a replicated
#                                  mutation (pause/resume the scheduler), ADMIN_SECONDS
#                                  (10) each at CONCURRENCY
#   scripts/bench.sh scale         the scale test (`make scale-test`): 3 nodes
#                                  under smart puts, then SCALE_TO (6) nodes; the
#                                  time until the scheduler has replicas and
#                                  leaders per node within one of the mean,
#                                  throughput and CPU per node before and after
#                                  (SCALE_SECONDS, 10, each), errors during the
#                                  rebalancing, and every check key read back
#   scripts/bench.sh redis         the Redis protocol (docs/performance.md):
#                                  redis-benchmark -c CONCURRENCY -n REDIS_REQUESTS
#                                  (200000) -d VALUE_SIZE, SET and GET, against the
#                                  gateway's RESP port, against the nodes in cluster
#                                  mode (--cluster), against a redis-server with
#                                  appendfsync always and one without persistence;
#                                  with etcd installed, etcd puts the same way
#                                  (bench/etcd/run.sh) for comparison
#
# Settings (environment): KVDB, BENCH_DIR, CONCURRENCY, REQUESTS, VALUE_SIZE,
# KEY_SPACE (spread runs), BENCH_TARGETS ("gateway smart"), BENCH_OPS
# ("put get"), BENCH_KEYS ("spread hot"), BENCH_PORT_BASE (7480).
set -euo pipefail

cd "$(dirname "$0")/.."

KVDB=${KVDB:-target/release/kvdb}
BENCH_DIR=${BENCH_DIR:-run/bench}
CONCURRENCY=${CONCURRENCY:-50}
REQUESTS=${REQUESTS:-20000}
VALUE_SIZE=${VALUE_SIZE:-100}
KEY_SPACE=${KEY_SPACE:-10000}
CHART_DATA=${CHART_DATA:-run/charts}
BENCH_TARGETS=${BENCH_TARGETS:-gateway smart}
BENCH_OPS=${BENCH_OPS:-put get}
BENCH_KEYS=${BENCH_KEYS:-spread hot}
port_base=${BENCH_PORT_BASE:-7480}

GATEWAY=127.0.0.1:$(( port_base - 1 ))
COORD=127.0.0.1:$port_base
ADMIN=127.0.0.1:$(( port_base + 1 ))
NODE_PORTS=($(( port_base + 11 )) $(( port_base + 12 )) $(( port_base + 13 )))
REDIS_REQUESTS=${REDIS_REQUESTS:-200000}

# shellcheck source=scripts/lib.sh
source scripts/lib.sh
WAIT_HINT="logs in $BENCH_DIR/logs"
QUIET_PROCESSES=1

stop_bench_cluster() {
    stop_processes "$BENCH_DIR"
}

# The cluster (start_cluster in lib.sh) on a fresh $BENCH_DIR, SHARDS (8) shards at
# RF 3, every shard with a leader and the clients' connections warm.
start_bench_cluster() {
    rm -rf "$BENCH_DIR"
    start_cluster "$BENCH_DIR"
    "$KVDB" admin --admin "$ADMIN" shard-init --num-shards "${SHARDS:-8}" --replication-factor 3 >/dev/null
    # Every shard has a leader once a put to keys spread over all of them succeeds;
    # this also warms connections and caches (not measured).
    wait_for "every shard to elect a leader" 60 "$KVDB" bench --gateway "$GATEWAY" \
        --op put -c 8 -n 400 --key-space 400 --key-prefix warmup- --json
    wait_for "the smart client" 30 "$KVDB" bench --coordinators "$COORD" \
        --op put -c 8 -n 400 --key-space 400 --key-prefix warmup- --json
    echo "bench cluster up: gateway $GATEWAY, coordinator $COORD, nodes ${NODE_PORTS[*]}," \
        "${SHARDS:-8} shards, RF 3 (logs in $BENCH_DIR/logs)"
}

# Checks what a run needs, and stops the bench cluster however the run ends.
prepare_run() {
    command -v jq >/dev/null || { echo "bench: needs jq" >&2; exit 1; }
    [[ -x "$KVDB" ]] || { echo "bench: no $KVDB: run make build" >&2; exit 1; }
    trap stop_bench_cluster EXIT
    trap 'exit 130' INT TERM
}

# One measured run; appends its JSON summary to the results file.
measure() { # target op keys
    local target=$1 op=$2 keys=$3 space=$KEY_SPACE
    [[ $keys == hot ]] && space=1
    local args=(bench --op "$op" -c "$CONCURRENCY" -n "$REQUESTS" --value-size "$VALUE_SIZE"
        --key-space "$space" --key-prefix "$op-$keys-" --consistency strong --json)
    [[ $op == get ]] && args+=(--preload)
    case $target in
        gateway) args+=(--gateway "$GATEWAY") ;;
        smart) args+=(--coordinators "$COORD") ;;
    esac
    local out status=0
    out=$("$KVDB" "${args[@]}") || status=$?
    # Exit 1 means some requests failed: the summary still counts them.
    if (( status == 0 || status == 1 )) && [[ -n $out ]]; then
        echo "$out" >>"$BENCH_DIR/results.jsonl"
        jq -r '"  \(.target) \(.op) keys=\(.key_space): \(.throughput | floor) ops/s, p99 \(.latency_ms.p99) ms, errors \(.errors | add)"' <<<"$out"
    else
        echo "bench: $target $op over $keys keys failed (exit $status)" >&2
        return 1
    fi
}

# Prints the table of JSON summaries (one per line) in the given files.
table() {
    jq -rs '
        ["target", "op", "keys", "ops/s", "p50 ms", "p99 ms", "p99.9 ms", "errors"],
        (.[] | [.target, .op + (if .op == "get" then " (" + .consistency + ")" else "" end),
                (if .key_space == 1 then "1 (hot)" else (.key_space | tostring) end),
                (.throughput | floor | tostring),
                (.latency_ms.p50 | tostring), (.latency_ms.p99 | tostring),
                (.latency_ms.p999 | tostring), (.errors | add | tostring)])
        | @tsv' "$@" | column -t -s $'\t'
}

# CPU each cluster process used since it started (warm-up and preloads included).
cpu_report() {
    local f
    echo "CPU time per process over the whole benchmark:"
    for f in "$BENCH_DIR"/pids/*.pid; do
        printf '  %-12s %s\n' "$(basename "$f" .pid)" "$(cpu_seconds "$(cat "$f")")"
    done
}

# Where the CPU goes during one steady run: cores used by each process, then a
# perf profile of the whole machine (`perf report -i $BENCH_DIR/perf.data`).
profile() { # op target
    local op=${1:-put} target=${2:-gateway} seconds=${PROFILE_SECONDS:-20}
    prepare_run
    start_bench_cluster
    local args=(bench --op "$op" -c "$CONCURRENCY" --value-size "$VALUE_SIZE"
        --key-space "$KEY_SPACE" --key-prefix profile- --consistency strong --json)
    case $target in
        gateway) args+=(--gateway "$GATEWAY") ;;
        smart) args+=(--coordinators "$COORD") ;;
    esac
    [[ $op == get ]] && "$KVDB" "${args[@]}" --preload -n 1 >/dev/null
    "$KVDB" "${args[@]}" --duration "${seconds}s" >"$BENCH_DIR/profile.json" &
    local client=$!
    sleep 2 # past connection setup: measure the steady state
    local names=() procs=() before=() f i window=$(( seconds - 4 ))
    for f in "$BENCH_DIR"/pids/*.pid; do
        names+=("$(basename "$f" .pid)"); procs+=("$(cat "$f")")
    done
    names+=("bench client"); procs+=("$client")
    for i in "${!procs[@]}"; do before[i]=$(cpu_ticks "${procs[i]}"); done
    local idle_before; idle_before=$(awk '/^cpu / { print $5 + $6 }' /proc/stat)
    if [[ ${PROFILE_PERF:-1} != 0 ]] && command -v perf >/dev/null; then
        perf record -a -g -F 199 -o "$BENCH_DIR/perf.data" -- sleep "$window" \
            >"$BENCH_DIR/logs/perf.log" 2>&1 || echo "bench: perf record failed (see $BENCH_DIR/logs/perf.log)"
    else
        sleep "$window"
    fi
    local hz used=(); hz=$(getconf CLK_TCK)
    for i in "${!procs[@]}"; do used[i]=$(( $(cpu_ticks "${procs[i]}") - before[i] )); done
    local idle; idle=$(awk -v b="$idle_before" -v hz="$hz" -v w="$window" \
        '/^cpu / { printf "%.2f", ($5 + $6 - b) / hz / w }' /proc/stat)
    wait "$client" || true
    local rate; rate=$(jq -r '.throughput' "$BENCH_DIR/profile.json")
    echo "cores used during ${window} s of a steady $op run via $target, and CPU per operation:"
    for i in "${!procs[@]}"; do
        awk -v n="${names[i]}" -v d="${used[i]}" -v hz="$hz" -v w="$window" -v r="$rate" \
            'BEGIN { c = d / hz / w; printf "  %-12s %.2f  %6.1f us/op\n", n, c, (r > 0 ? c * 1e6 / r : 0) }'
    done
    echo "  idle+iowait  $idle"
    jq -r '"run: \(.throughput | floor) ops/s, p50 \(.latency_ms.p50) ms, p99 \(.latency_ms.p99) ms, errors \(.errors | add)"' \
        "$BENCH_DIR/profile.json"
    if [[ -s "$BENCH_DIR/perf.data" ]]; then
        echo "hottest functions in the cluster and client processes (perf report --no-children):"
        perf report -i "$BENCH_DIR/perf.data" --pid "$(IFS=,; echo "${procs[*]}")" \
            --no-children --sort dso,sym --stdio 2>/dev/null |
            grep -E '^ +[0-9]' | head -n "${PROFILE_TOP:-30}"
    fi
}

# Resident memory under a steady write load (the page caches' budget at work).
memory() {
    local seconds=${MEMORY_SECONDS:-150} sample=${MEMORY_SAMPLE:-15}
    prepare_run
    start_bench_cluster
    echo "memory: ${seconds} s of smart puts, c=$CONCURRENCY, ${MEMORY_KEYS:-100000} keys of" \
        "${MEMORY_VALUE_SIZE:-200} bytes; node cache budget ${KVDB_CACHE_MIB:-default} MiB"
    "$KVDB" bench --coordinators "$COORD" --op put -c "$CONCURRENCY" --duration "${seconds}s" \
        --value-size "${MEMORY_VALUE_SIZE:-200}" --key-space "${MEMORY_KEYS:-100000}" \
        --key-prefix memory- --json >"$BENCH_DIR/memory.json" &
    local client=$! elapsed=0 i pid pids
    read -ra pids <<<"$(node_pids)"
    printf '  %6s' "s"; for i in "${!pids[@]}"; do printf '  node-%d MiB' $(( i + 1 )); done; echo
    while (( elapsed <= seconds )); do
        printf '  %6d' "$elapsed"
        for pid in "${pids[@]}"; do
            printf '  %10s' "$(rss_mib "$pid")"
        done
        echo
        sleep "$sample"; elapsed=$(( elapsed + sample ))
    done
    wait "$client" || true
    jq -r '"run: \(.throughput | floor) ops/s, p50 \(.latency_ms.p50) ms, p99 \(.latency_ms.p99) ms, errors \(.errors | add)"' \
        "$BENCH_DIR/memory.json"
    echo "data directory per node: $(du -sm "$BENCH_DIR/data/node-1" | cut -f1) MiB (node-1:" \
        "$(cd "$BENCH_DIR/data/node-1" && du -m -- *.redb | awk '{ printf "%s%s %s MiB", sep, $2, $1; sep = ", " }'))"
}

# The shard-count curve, one fresh cluster per count (see the usage above).
shards() {
    local counts=${SHARD_COUNTS:-2 8 32 128} idle=${IDLE_SECONDS:-10} secs=${CURVE_SECONDS:-5}
    prepare_run
    echo "machine: $(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg)"
    echo "shard-count curve: smart puts, c=$CONCURRENCY, $KEY_SPACE keys of $VALUE_SIZE bytes," \
        "${secs} s each; idle CPU over ${idle} s before the load (cores, summed over 3 nodes)"
    local rows=() n start_ms ready_s
    for n in $counts; do
        start_ms=$(date +%s%3N)
        SHARDS=$n start_bench_cluster >/dev/null
        ready_s=$(awk -v a="$start_ms" -v b="$(date +%s%3N)" 'BEGIN { printf "%.1f", (b - a) / 1000 }')
        local pids before=() i used=0 hz rss=0
        read -ra pids <<<"$(node_pids)"
        for i in "${!pids[@]}"; do before[i]=$(cpu_ticks "${pids[i]}"); done
        sleep "$idle"
        for i in "${!pids[@]}"; do
            used=$(( used + $(cpu_ticks "${pids[i]}") - before[i] ))
            rss=$(( rss + $(rss_mib "${pids[i]}") ))
        done
        hz=$(getconf CLK_TCK)
        "$KVDB" bench --coordinators "$COORD" --op put -c "$CONCURRENCY" --duration "${secs}s" \
            --value-size "$VALUE_SIZE" --key-space "$KEY_SPACE" --key-prefix "curve-$n-" \
            --json >"$BENCH_DIR/curve.json" || true
        rows+=("$(jq -r --arg n "$n" --arg r "$ready_s" \
            --arg idle "$(awk -v d="$used" -v hz="$hz" -v w="$idle" 'BEGIN { printf "%.2f", d / hz / w }')" \
            --arg rss "$(( rss / ${#pids[@]} ))" \
            '"\($n)\t\($r)\t\($idle)\t\($rss)\t\(.throughput | floor)\t\(.latency_ms.p50)\t\(.latency_ms.p99)\t\(.errors | add)"' \
            "$BENCH_DIR/curve.json")")
        mkdir -p "$CHART_DATA"
        jq -c --argjson n "$n" '. + {shards: $n}' "$BENCH_DIR/curve.json" >>"$CHART_DATA/shards.jsonl" || true
        stop_bench_cluster
    done
    if [[ ${ETCD_ROW:-1} != 0 ]] && command -v etcd >/dev/null && command -v etcdctl >/dev/null; then
        # etcd has no shards: one row, the same puts, as many as the last KvDB run made.
        local etcd_requests
        etcd_requests=$(jq -r '.requests' "$BENCH_DIR/curve.json" 2>/dev/null || echo 20000)
        if CONCURRENCY=$CONCURRENCY BENCH_OPS=put BENCH_KEYS=spread REQUESTS="$etcd_requests" \
            KEY_SPACE=$KEY_SPACE VALUE_SIZE=$VALUE_SIZE bench/etcd/run.sh >"$BENCH_DIR/etcd.log" 2>&1; then
            rows+=("$(jq -r '"etcd\t-\t-\t-\t\(.throughput | floor)\t\(.latency_ms.p50)\t\(.latency_ms.p99)\t\(.errors | add)"' \
                run/etcd-bench/results.jsonl | tail -n 1)")
        else
            echo "bench: the etcd row failed (see $BENCH_DIR/etcd.log)" >&2
        fi
    fi
    { printf 'shards\tready s\tidle cores\tRSS/node MiB\tputs/s\tp50 ms\tp99 ms\terrors\n'
      printf '%s\n' "${rows[@]}"; } | column -t -s $'\t'
}

# The concurrency curve for the charts (see the usage above).
clients() {
    local counts=${CLIENT_COUNTS:-1 4 16 64 256} secs=${CURVE_SECONDS:-5}
    prepare_run
    echo "machine: $(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg)"
    start_bench_cluster
    mkdir -p "$CHART_DATA"
    : >"$CHART_DATA/clients.jsonl"
    local n target op args out
    for n in $counts; do
        for target in $BENCH_TARGETS; do
            for op in $BENCH_OPS; do
                args=(bench --op "$op" -c "$n" --duration "${secs}s" --value-size "$VALUE_SIZE"
                    --key-space "$KEY_SPACE" --key-prefix "clients-" --consistency strong --json)
                [[ $op == get ]] && args+=(--preload)
                case $target in
                    gateway) args+=(--gateway "$GATEWAY") ;;
                    smart) args+=(--coordinators "$COORD") ;;
                esac
                out=$("$KVDB" "${args[@]}") || true
                [[ -n $out ]] || { echo "bench: $target $op at c=$n failed" >&2; continue; }
                echo "$out" >>"$CHART_DATA/clients.jsonl"
                jq -r --arg n "$n" '"  c=\($n) \(.target) \(.op): \(.throughput | floor) ops/s, p50 \(.latency_ms.p50) ms, p99 \(.latency_ms.p99) ms, errors \(.errors | add)"' <<<"$out"
            done
        done
    done
}

# datasize: see the header.
datasize() {
    local sizes=${DATA_SIZES:-10000 100000 1000000} secs=${CURVE_SECONDS:-5}
    prepare_run
    echo "machine: $(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg)"
    echo "data-size curve: ${SHARDS:-8} shards, smart puts at c=$CONCURRENCY over the stored" \
        "keys of $VALUE_SIZE bytes, ${secs} s each, after filling them at c=256"
    local rows=() n fill_s start_ms du_mib live_mib
    for n in $sizes; do
        start_bench_cluster >/dev/null
        start_ms=$(date +%s%3N)
        "$KVDB" bench --coordinators "$COORD" --op put -c 256 -n 1 --key-space "$n" \
            --value-size "$VALUE_SIZE" --key-prefix data- --preload --json >"$BENCH_DIR/fill.json"
        fill_s=$(awk -v a="$start_ms" -v b="$(date +%s%3N)" 'BEGIN { printf "%.0f", (b - a) / 1000 }')
        "$KVDB" bench --coordinators "$COORD" --op put -c "$CONCURRENCY" --duration "${secs}s" \
            --value-size "$VALUE_SIZE" --key-space "$n" --key-prefix data- --json \
            >"$BENCH_DIR/curve.json" || true
        # Per replica: keys of about 10 bytes ("data-" and the index) plus the value.
        live_mib=$(awk -v n="$n" -v v="$VALUE_SIZE" 'BEGIN { printf "%.1f", n * (v + 10) / 1048576 }')
        du_mib=$(du -sm "$BENCH_DIR/data/node-1" | cut -f1)
        rows+=("$(jq -r --arg n "$n" --arg fill "$fill_s" --arg live "$live_mib" --arg du "$du_mib" \
            '"\($n)\t\($fill)\t\(.throughput | floor)\t\(.latency_ms.p50)\t\(.latency_ms.p99)\t\(.errors | add)\t\($live)\t\($du)"' \
            "$BENCH_DIR/curve.json")")
        stop_bench_cluster
    done
    # The targets' terms: the rate against the smallest store's, the directory against the live data.
    { printf 'stored keys\tfill s\tputs/s\tp50 ms\tp99 ms\terrors\tlive MiB\tdata dir MiB (node-1)\trate vs first\tdir / live\n'
      printf '%s\n' "${rows[@]}" | awk -F'\t' -v OFS='\t' \
          'NR == 1 { first = $3 } { print $0, sprintf("%.2fx", first > 0 ? $3 / first : 0), sprintf("%.1fx", $7 > 0 ? $8 / $7 : 0) }'
    } | column -t -s $'\t'
}

# scale: see the header. Exits non-zero when the cluster does not balance within
# BALANCE_TIMEOUT (120) s, a write failed, or a check key reads back wrong.
scale() {
    local to=${SCALE_TO:-6} secs=${SCALE_SECONDS:-10} timeout=${BALANCE_TIMEOUT:-120}
    local checks=${SCALE_CHECK_KEYS:-100} i
    prepare_run
    echo "machine: $(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg)"
    SHARDS=${SHARDS:-12} start_bench_cluster
    for (( i = 0; i < checks; i++ )); do
        "$KVDB" put --gateway "$GATEWAY" "scale-check-$i" "value-$i" >/dev/null
    done
    scale_phase "3 nodes" "$secs" before
    local port n=${#NODE_PORTS[@]}
    for (( i = n + 1; i <= to; i++ )); do
        port=$(( port_base + 10 + i ))
        start_process "$BENCH_DIR" "node-$i" "$KVDB" node --name "node-$i" \
            --listen "127.0.0.1:$port" --coordinators "$COORD" --data "$BENCH_DIR/data/node-$i"
        NODE_PORTS+=("$port")
    done
    # Load while the scheduler moves replicas, in 3 s runs until it is balanced; their
    # errors are what clients saw.
    rm -f "$BENCH_DIR/during.jsonl" "$BENCH_DIR/balanced"
    (
        until [[ -f $BENCH_DIR/balanced ]]; do
            "$KVDB" bench --coordinators "$COORD" --op put -c "$CONCURRENCY" --duration 3s \
                --value-size "$VALUE_SIZE" --key-space "$KEY_SPACE" --key-prefix scale- \
                --json >>"$BENCH_DIR/during.jsonl" || true
        done
    ) &
    local load=$! started=$SECONDS balanced=""
    while (( SECONDS - started < timeout )); do
        if scale_balanced "$to"; then balanced=$(( SECONDS - started )); break; fi
        sleep 1
    done
    touch "$BENCH_DIR/balanced"
    wait "$load" 2>/dev/null || true
    if [[ -z $balanced ]]; then
        echo "scale: not balanced after ${timeout} s:" >&2
        "$KVDB" admin --admin "$ADMIN" nodes >&2
        exit 1
    fi
    echo "balanced $to nodes in ${balanced} s (replicas and leaders per node within one of the mean);" \
        "while it moved: $(jq -s 'map(.throughput) | add / length | floor' "$BENCH_DIR/during.jsonl") puts/s," \
        "$(jq -s 'map((.errors // {}) | add // 0) | add' "$BENCH_DIR/during.jsonl") errors"
    "$KVDB" admin --admin "$ADMIN" nodes
    scale_phase "$to nodes" "$secs" after
    local bad=0
    for (( i = 0; i < checks; i++ )); do
        [[ $("$KVDB" get --gateway "$GATEWAY" "scale-check-$i") == "value-$i" ]] || bad=$(( bad + 1 ))
    done
    echo "check keys read back: $(( checks - bad )) of $checks"
    local failed
    failed=$(jq -s 'map((.errors // {}) | add // 0) | add' "$BENCH_DIR/before.json" \
        "$BENCH_DIR/during.jsonl" "$BENCH_DIR/after.json")
    (( bad == 0 && failed == 0 )) || { echo "scale: $bad bad check keys, $failed failed writes" >&2; exit 1; }
}

# scale_phase LABEL SECONDS NAME: SECONDS of smart puts, saved as NAME.json; prints
# throughput, latency and CPU per node (cores) over the run.
scale_phase() {
    local label=$1 secs=$2 name=$3 pids before=() i cpu=() hz
    read -ra pids <<<"$(node_pids)"
    for i in "${!pids[@]}"; do before[i]=$(cpu_ticks "${pids[i]}"); done
    "$KVDB" bench --coordinators "$COORD" --op put -c "$CONCURRENCY" --duration "${secs}s" \
        --value-size "$VALUE_SIZE" --key-space "$KEY_SPACE" --key-prefix scale- \
        --json >"$BENCH_DIR/$name.json"
    hz=$(getconf CLK_TCK)
    for i in "${!pids[@]}"; do
        cpu+=("$(awk -v d="$(( $(cpu_ticks "${pids[i]}") - before[i] ))" -v hz="$hz" -v w="$secs" \
            'BEGIN { printf "%.2f", d / hz / w }')")
    done
    jq -r --arg what "$label" --arg cpu "${cpu[*]}" \
        '"\($what): \(.throughput | floor) puts/s, p50 \(.latency_ms.p50) ms, p99 \(.latency_ms.p99) ms, errors \(.errors | add // 0); CPU per node (cores): \($cpu)"' \
        "$BENCH_DIR/$name.json"
}

# scale_balanced N: whether N nodes are alive, no shard is moving, and replicas and
# leaders per node are within one of each other.
scale_balanced() {
    local nodes moving
    nodes=$("$KVDB" admin --admin "$ADMIN" --json nodes 2>/dev/null) || return 1
    moving=$("$KVDB" admin --admin "$ADMIN" --json operations 2>/dev/null | jq '.moving | length') || return 1
    jq -e --argjson n "$1" --argjson moving "$moving" '
        [.nodes[] | select(.status == "alive")] as $alive
        | ($alive | length) == $n and $moving == 0
          and (($alive | map(.replicas) | max) - ($alive | map(.replicas) | min)) <= 1
          and (($alive | map(.leaders) | max) - ($alive | map(.leaders) | min)) <= 1' \
        <<<"$nodes" >/dev/null
}

# node_pids: the PIDs of the bench cluster's storage nodes, in node order.
node_pids() {
    local i
    for i in "${!NODE_PORTS[@]}"; do printf '%s ' "$(cat "$BENCH_DIR/pids/node-$(( i + 1 )).pid")"; done
}

# rss_mib PID: the process's resident memory in MiB, or "gone".
rss_mib() {
    awk '/^VmRSS:/ { printf "%d", $2 / 1024; found = 1 } END { if (!found) printf "gone" }' \
        "/proc/$1/status" 2>/dev/null || echo gone
}

# The Admin API (make bench-admin): wrk, ADMIN_SECONDS (10) per endpoint at CONCURRENCY, on
# reads (shards, cluster, nodes) and on one mutation that is a coordinator Raft write each
# time (the scheduler paused and resumed in turn).
admin() {
    if ! command -v wrk >/dev/null; then
        echo "bench: admin needs wrk (apt-get install wrk)" >&2
        exit 1
    fi
    [[ -x "$KVDB" ]] || { echo "bench: no $KVDB: run make build" >&2; exit 1; }
    trap stop_bench_cluster EXIT
    trap 'exit 130' INT TERM
    echo "machine: $(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg)"
    start_bench_cluster
    local seconds=${ADMIN_SECONDS:-10} script=$BENCH_DIR/toggle-scheduler.lua
    cat >"$script" <<'LUA'
-- Each request pauses or resumes the scheduler, alternately: a replicated write every time.
local n = 0
request = function()
    n = n + 1
    local body = (n % 2 == 0) and '{"paused":false}' or '{"paused":true}'
    return wrk.format("POST", "/admin/scheduler", { ["Content-Type"] = "application/json" }, body)
end
LUA
    printf '%-28s %10s %9s %9s %8s\n' endpoint "req/s" "p50" "p99" errors
    local endpoint out
    for endpoint in "GET /admin/shards" "GET /admin/cluster" "GET /admin/nodes" "POST /admin/scheduler"; do
        local args=(-t 2 -c "$CONCURRENCY" -d "${seconds}s" --latency)
        [[ $endpoint == POST* ]] && args+=(-s "$script")
        out=$(wrk "${args[@]}" "http://$ADMIN${endpoint#* }")
        awk -v name="$endpoint" '
            /Requests\/sec:/ { rate = $2 }
            $1 == "50%" { p50 = $2 }
            $1 == "99%" { p99 = $2 }
            /Non-2xx or 3xx responses:/ { errors += $NF }
            /Socket errors:/ { errors += $4 + $6 + $8 + $10 }
            END { printf "%-28s %10d %9s %9s %8d\n", name, rate, p50, p99, errors }' <<<"$out"
    done
    "$KVDB" admin --admin "$ADMIN" scheduler resume >/dev/null
    echo "wrk -t 2 -c $CONCURRENCY -d ${seconds}s per endpoint; 8 shards, 3 nodes, 1 coordinator"
}

# One redis-benchmark run of SET and GET; prints a row per test.
redis_row() { # name redis-benchmark-args...
    local name=$1 out
    shift
    out=$(redis-benchmark "$@" -c "$CONCURRENCY" -n "$REDIS_REQUESTS" -d "$VALUE_SIZE" \
        -r "$KEY_SPACE" -t set,get --csv 2>&1)
    # "test","rps","avg_latency_ms","min_latency_ms","p50_latency_ms","p95_latency_ms",...
    awk -F'","' -v name="$name" '/^"(SET|GET)"/ {
        gsub(/"/, "", $1); gsub(/"/, "", $7)
        printf "%-30s %-4s %10.0f %9s %9s\n", name, $1, $2, $5, $7 }' <<<"$out"
    grep -qi "error" <<<"$out" && { echo "$name: $(grep -i error <<<"$out" | head -3)" >&2; return 1; }
    return 0
}

redis() {
    prepare_run
    command -v redis-benchmark >/dev/null && command -v redis-server >/dev/null ||
        { echo "bench: needs redis-server and redis-tools" >&2; exit 1; }
    local resp_base=$(( port_base + 20 ))
    GATEWAY_RESP=127.0.0.1:$resp_base
    NODE_RESP_PORTS="$(( resp_base + 1 )) $(( resp_base + 2 )) $(( resp_base + 3 ))"
    echo "machine: $(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg)"
    start_bench_cluster
    echo "redis-benchmark -c $CONCURRENCY -n $REDIS_REQUESTS -d $VALUE_SIZE -r $KEY_SPACE -t set,get"
    printf "%-30s %-4s %10s %9s %9s\n" target test "req/s" "p50 ms" "p99 ms"
    redis_row "kvdb gateway RESP" -h 127.0.0.1 -p "$resp_base"
    redis_row "kvdb nodes --cluster" --cluster -h 127.0.0.1 -p "$(( resp_base + 1 ))"
    stop_bench_cluster
    local dir=$BENCH_DIR/redis port=$(( resp_base + 5 )) mode
    for mode in always no; do
        rm -rf "$dir"; mkdir -p "$dir"
        if [[ $mode == always ]]; then
            redis-server --port "$port" --dir "$dir" --save "" --appendonly yes \
                --appendfsync always --daemonize yes >/dev/null
        else
            redis-server --port "$port" --dir "$dir" --save "" --appendonly no \
                --daemonize yes >/dev/null
        fi
        wait_for "redis-server" 10 redis-cli -p "$port" ping
        local label="redis-server, no persistence"
        [[ $mode == always ]] && label="redis-server, fsync always"
        redis_row "$label" -h 127.0.0.1 -p "$port"
        redis-cli -p "$port" shutdown nosave >/dev/null 2>&1 || true
        wait_for "redis-server to stop" 10 bash -c "! redis-cli -p $port ping >/dev/null 2>&1"
    done
    if command -v etcd >/dev/null; then
        echo "etcd, 3 members, the same concurrency and values (bench/etcd/run.sh):"
        BENCH_OPS=put BENCH_KEYS=spread REQUESTS=$(( REDIS_REQUESTS / 4 )) bench/etcd/run.sh
    fi
}

run() {
    command -v jq >/dev/null || { echo "bench: needs jq (apt-get install jq)" >&2; exit 1; }
    [[ -x "$KVDB" ]] || { echo "bench: no $KVDB: run make build" >&2; exit 1; }
    trap stop_bench_cluster EXIT
    trap 'exit 130' INT TERM
    echo "machine: $(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg)"
    start_bench_cluster
    echo "workload: concurrency $CONCURRENCY, $REQUESTS requests, $VALUE_SIZE-byte values," \
        "spread = $KEY_SPACE keys, hot = 1 key; gets are strong and preloaded"
    local target keys op failed=0
    for target in $BENCH_TARGETS; do
        for keys in $BENCH_KEYS; do
            for op in $BENCH_OPS; do
                measure "$target" "$op" "$keys" || failed=1
            done
        done
    done
    cpu_report
    echo
    [[ -s "$BENCH_DIR/results.jsonl" ]] && table "$BENCH_DIR/results.jsonl"
    echo "results: $BENCH_DIR/results.jsonl"
    return "$failed"
}

case "${1:-run}" in
    run) run ;;
    table) shift; table "$@" ;;
    profile) shift; profile "$@" ;;
    memory) memory ;;
    shards) shards ;;
    clients) clients ;;
    scale) scale ;;
    datasize) datasize ;;
    admin) admin ;;
    redis) redis ;;
    up) trap stop_bench_cluster EXIT; trap 'exit 130' INT TERM; start_bench_cluster; wait ;;
    *) echo "usage: $0 [run] | table FILE... | up | profile [put|get] [gateway|smart] | memory | shards | datasize | scale | admin | redis" >&2; exit 2 ;;
esac
