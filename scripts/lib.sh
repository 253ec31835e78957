# Shell helpers shared by KvDB's scripts; sourced, never run. Each script keeps
# the PIDs it starts in its own array `pids`, so it stops those and no others.

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

# stop_started: sends TERM to every PID in `pids`, reaps them, empties `pids`.
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
