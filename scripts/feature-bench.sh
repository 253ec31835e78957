#!/bin/bash
# What a feature costs: the `kvdb dev` layout plain, with tokens, with mutual TLS
# (`kvdb dev --tls`), and with metrics recorded (`--metrics-port`), alternated ROUNDS (2)
# times, each running `kvdb bench` puts and strong gets at c=50 for 5 s through the gateway
# and the smart client. "plain" records no metrics: nodes and gateways count requests only
# when their metrics are served.
# Settings (environment): KVDB_BIN (target/release/kvdb), ROUNDS, MODES ("plain tokens tls
# metrics").
set -u
BIN=${KVDB_BIN:-target/release/kvdb}
run() {
  local label=$1; shift
  local dir
  dir=$(mktemp -d /tmp/featbench.XXXX)
  $BIN dev --data "$dir" --gateway-listen 127.0.0.1:17379 --coordinator-listen 127.0.0.1:17380 \
    --admin-listen 127.0.0.1:17381 --node-port 17391 "$@" > "$dir/dev.log" 2>&1 &
  local pid=$!
  for _ in $(seq 100); do grep -q "KvDB dev cluster running" "$dir/dev.log" && break; sleep 0.2; done
  local extra=()
  [ "$label" = tokens ] && extra=(--token benchsecret)
  [ "$label" = tls ] && extra=(--tls-ca "$dir/tls/ca.pem" --tls-cert "$dir/tls/cert.pem" --tls-key "$dir/tls/key.pem")
  for op in put get; do
    for via in gateway smart; do
      local s=(); [ $via = smart ] && s=(--smart --coordinators 127.0.0.1:17380)
      out=$($BIN bench --op $op -c 50 --duration 5s --key-space 10000 --gateway 127.0.0.1:17379 "${s[@]}" "${extra[@]}" --preload --json 2>/dev/null)
      echo "$label $op $via $(echo "$out" | python3 -c 'import json,sys; d=json.load(sys.stdin); e=d["errors"]; print(round(d["throughput"]), "ok", d["ok"], "errors", sum(e.values()), "p50_ms", d["latency_ms"]["p50"], "p99_ms", d["latency_ms"]["p99"])' 2>/dev/null || echo "$out" | head -c 300)"
    done
  done
  kill $pid; wait $pid 2>/dev/null; rm -rf "$dir"
}
for _ in $(seq "${ROUNDS:-2}"); do
  for mode in ${MODES:-plain tokens tls metrics}; do
    case $mode in
      plain) run plain ;;
      tokens) run tokens --cluster-token benchsecret ;;
      tls) run tls --tls ;;
      metrics) run metrics --metrics-port 17400 ;;
    esac
  done
done
