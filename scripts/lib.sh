# Shell helpers shared by KvDB's scripts; sourced, never run.
#
# Processes: a script starts each process with start_process, which records
# its PID in the file DIR/pids/NAME.pid (its log is DIR/logs/NAME.log), and
# stops them with stop_processes DIR, which signals only the PIDs in those
# files. The files outlive the script, so `run-cluster.sh stop` finds what
# `run-cluster.sh start` began. start_cluster is the one start sequence of a
# local KvDB cluster. Set QUIET_PROCESSES=1 to silence their progress lines.

# wait_for WHAT SECONDS CMD...: polls CMD every 0.2 s until it succeeds. After
# SECONDS, says what it waited for (and $WAIT_HINT, if set) and returns 1.
wait_for() {
    local what=$1 deadline=$(( SECONDS + $2 )); shift 2
    until "$@" >/dev/null 2>&1; do
        if (( SECONDS >= deadline )); then
            echo "timed out waiting for $what${WAIT_HINT:+ ($WAIT_HINT)}" >&2
            return 1
        fi
        sleep 0.2
    done
}

# say MESSAGE...: a progress line, unless QUIET_PROCESSES is set.
say() {
    [[ -n ${QUIET_PROCESSES:-} ]] || echo "$@"
}

# alive PID: whether the process runs (exists and is not a zombie).
alive() {
    local stat
    kill -0 "$1" 2>/dev/null && stat=$(cat "/proc/$1/stat" 2>/dev/null) &&
        [[ $(awk '{ print $1 }' <<<"${stat##*) }") != Z ]]
}

# start_process DIR NAME CMD...: runs CMD in the background, its output in
# DIR/logs/NAME.log and its PID in DIR/pids/NAME.pid; does nothing when that
# file already names a running process.
start_process() {
    local dir=$1 name=$2; shift 2
    local pid_file=$dir/pids/$name.pid log=$dir/logs/$name.log
    if [[ -f $pid_file ]] && alive "$(cat "$pid_file")"; then
        say "$name already running (pid $(cat "$pid_file"))"
        return 0
    fi
    mkdir -p "$dir/pids" "$dir/logs"
    "$@" >"$log" 2>&1 &
    echo "$!" >"$pid_file"
    say "started $name (pid $!), log $log"
}

# stop_processes DIR: sends TERM to every still-running process recorded in
# DIR/pids, removes the files, then waits for those processes to exit (reaping
# the script's own children; giving up on others after 30 s).
stop_processes() {
    local dir=$1 f pid stopped=()
    if [[ ! -d $dir/pids ]]; then
        say "nothing to stop"
        return 0
    fi
    for f in "$dir"/pids/*.pid; do
        [[ -e $f ]] || continue
        pid=$(cat "$f")
        if alive "$pid" && kill -TERM "$pid" 2>/dev/null; then
            say "stopped $(basename "$f" .pid) (pid $pid)"
            stopped+=("$pid")
        fi
        rm -f "$f"
    done
    local deadline=$(( SECONDS + 30 ))
    for pid in "${stopped[@]}"; do
        wait "$pid" 2>/dev/null || true
        while alive "$pid" && (( SECONDS < deadline )); do
            sleep 0.1
        done
        if alive "$pid"; then
            echo "pid $pid still running 30 s after TERM" >&2
        fi
    done
}

# start_cluster DIR: starts a local KvDB cluster from $KVDB with start_process
# under DIR (data in DIR/data): the coordinator (gRPC $COORD, Admin API
# $ADMIN), a node per port in NODE_PORTS (node-1, node-2, ...) and the gateway
# ($GATEWAY). With NODE_RESP_PORTS (one per node) the nodes serve Redis Cluster
# mode there, with NODE_METRICS_PORTS (one per node) they serve Prometheus
# metrics there, and with GATEWAY_RESP the gateway serves RESP there. Returns once
# every node has registered; shards are left to the caller.
start_cluster() {
    local dir=$1 i=1 port
    local WAIT_HINT=${WAIT_HINT:-logs in $dir/logs}
    [[ -x $KVDB ]] || { echo "no $KVDB: run make build" >&2; exit 1; }
    mkdir -p "$dir/data"
    start_process "$dir" coordinator "$KVDB" coordinator --id 1 --listen "$COORD" \
        --admin-listen "$ADMIN" --data "$dir/data/coordinator"
    wait_for "the coordinator" 30 "$KVDB" admin --admin "$ADMIN" cluster
    local resp_ports=(${NODE_RESP_PORTS:-}) metrics_ports=(${NODE_METRICS_PORTS:-}) resp
    for port in "${NODE_PORTS[@]}"; do
        resp=()
        [[ -n ${resp_ports[i - 1]:-} ]] && resp=(--resp-listen "127.0.0.1:${resp_ports[i - 1]}")
        [[ -n ${metrics_ports[i - 1]:-} ]] && resp+=(--metrics-listen "127.0.0.1:${metrics_ports[i - 1]}")
        start_process "$dir" "node-$i" "$KVDB" node --name "node-$i" \
            --listen "127.0.0.1:$port" --coordinators "$COORD" --data "$dir/data/node-$i" "${resp[@]}"
        i=$(( i + 1 ))
    done
    resp=()
    [[ -n ${GATEWAY_RESP:-} ]] && resp=(--resp-listen "$GATEWAY_RESP")
    start_process "$dir" gateway "$KVDB" gateway --listen "$GATEWAY" --coordinators "$COORD" "${resp[@]}"
    wait_for "${#NODE_PORTS[@]} registered nodes" 30 bash -c \
        "[[ \$('$KVDB' admin --admin '$ADMIN' --json nodes | grep -o '\"address\"' | wc -l) -ge ${#NODE_PORTS[@]} ]]"
}

# stop_started: sends TERM to every PID in the array `pids`, reaps them, empties
# `pids`. Only bench/etcd/run.sh still records its etcd members this way; new
# code uses start_process and stop_processes.
stop_started() {
    local pid
    for pid in "${pids[@]}"; do
        kill -TERM "$pid" 2>/dev/null || true
    done
    for pid in "${pids[@]}"; do
        wait "$pid" 2>/dev/null || true
    done
    pids=()
}

# cpu_ticks PID: clock ticks of CPU (user + system) the process has used; 0
# once it is gone.
cpu_ticks() {
    local stat
    stat=$(cat "/proc/$1/stat" 2>/dev/null) || { echo 0; return; }
    awk '{ print $12 + $13 }' <<<"${stat##*) }"
}

# cpu_seconds PID: the same as "N.N s", or "gone".
cpu_seconds() {
    [[ -r "/proc/$1/stat" ]] || { echo gone; return; }
    awk -v t="$(cpu_ticks "$1")" -v hz="$(getconf CLK_TCK)" 'BEGIN { printf "%.1f s", t / hz }'
}
