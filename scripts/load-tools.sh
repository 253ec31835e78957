#!/usr/bin/env bash
# The Java original's load-tool targets, against a running `make run-cluster`
# (gateway 127.0.0.1:7379, Admin API 127.0.0.1:7381; GATEWAY and ADMIN override):
#
#   scripts/load-tools.sh ghz-gateway     ghz: KvGateway Put then Get (gRPC)
#   scripts/load-tools.sh k6-gateway      k6: bench/k6/gateway.js (gRPC Put and Get)
#   scripts/load-tools.sh k6-admin        k6: bench/k6/admin.js (Admin API reads)
#   scripts/load-tools.sh vegeta-admin    vegeta: Admin API reads at a fixed rate
#
# None of these tools is in Debian: when one is missing the target says how to
# install it and exits 1. `make bench-admin` (scripts/bench.sh admin) measures
# the Admin API with wrk from Debian instead, on a cluster of its own.
#
# Settings (environment): CONCURRENCY (50), REQUESTS (20000), RATE (500 per
# second, vegeta), LOAD_SECONDS (10, k6 and vegeta).
set -euo pipefail

cd "$(dirname "$0")/.."

GATEWAY=${GATEWAY:-127.0.0.1:7379}
ADMIN=${ADMIN:-127.0.0.1:7381}
CONCURRENCY=${CONCURRENCY:-50}
REQUESTS=${REQUESTS:-20000}
RATE=${RATE:-500}
LOAD_SECONDS=${LOAD_SECONDS:-10}

# need TOOL HOW: exits 1 saying how to install TOOL when it is not on PATH.
need() {
    if ! command -v "$1" >/dev/null 2>&1; then
        echo "$1 is not installed (it is not packaged in Debian); install it with: $2" >&2
        echo "then start a cluster (make run-cluster bootstrap-cluster) and run this target again" >&2
        exit 1
    fi
}

# reachable HOST:PORT WHAT: exits 1 unless something listens there.
reachable() {
    if ! (exec 3<>"/dev/tcp/${1%:*}/${1##*:}") 2>/dev/null; then
        echo "no $2 at $1: start one with make run-cluster bootstrap-cluster" >&2
        exit 1
    fi
}

ghz_gateway() {
    need ghz "go install github.com/bojand/ghz/cmd/ghz@latest (or a release from https://github.com/bojand/ghz/releases)"
    reachable "$GATEWAY" gateway
    local value
    value=$(head -c 75 /dev/zero | tr '\0' 'v' | base64 -w0) # 100 bytes once base64-encoded
    for call in Put Get; do
        echo "--- ghz: kvdb.v1.KvGateway/$call, c=$CONCURRENCY, n=$REQUESTS"
        # Keys spread over 10,000 values of the request number; bytes fields are base64.
        ghz --insecure --import-paths proto --proto proto/kvdb/v1/gateway.proto \
            --call "kvdb.v1.KvGateway.$call" -c "$CONCURRENCY" -n "$REQUESTS" \
            -d "{\"key\":\"{{b64enc (printf \\\"bench-%d\\\" (mod .RequestNumber 10000))}}\",\"value\":\"$value\"}" \
            "$GATEWAY"
    done
}

k6_gateway() {
    need k6 "a release from https://github.com/grafana/k6/releases (or the packages at https://grafana.com/docs/k6/latest/set-up/install-k6/)"
    reachable "$GATEWAY" gateway
    k6 run -e GATEWAY="$GATEWAY" -e VUS="$CONCURRENCY" -e SECONDS="$LOAD_SECONDS" bench/k6/gateway.js
}

k6_admin() {
    need k6 "a release from https://github.com/grafana/k6/releases (or the packages at https://grafana.com/docs/k6/latest/set-up/install-k6/)"
    reachable "$ADMIN" "Admin API"
    k6 run -e ADMIN="$ADMIN" -e VUS="$CONCURRENCY" -e SECONDS="$LOAD_SECONDS" bench/k6/admin.js
}

vegeta_admin() {
    need vegeta "go install github.com/tsenart/vegeta/v12@latest (or a release from https://github.com/tsenart/vegeta/releases)"
    reachable "$ADMIN" "Admin API"
    for path in /admin/shards /admin/cluster /admin/nodes; do
        echo "--- vegeta: GET $path at $RATE/s for ${LOAD_SECONDS}s"
        echo "GET http://$ADMIN$path" |
            vegeta attack -rate="$RATE" -duration="${LOAD_SECONDS}s" | vegeta report
    done
}

case "${1:-}" in
    ghz-gateway) ghz_gateway ;;
    k6-gateway) k6_gateway ;;
    k6-admin) k6_admin ;;
    vegeta-admin) vegeta_admin ;;
    *) echo "usage: $0 ghz-gateway|k6-gateway|k6-admin|vegeta-admin" >&2; exit 2 ;;
esac
