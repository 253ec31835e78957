#!/bin/bash
# Token cost: the same dev cluster layout with and without tokens, alternated.
set -u
BIN=${KVDB_BIN:-target/release/kvdb}
run() {
  local label=$1; shift
  local dir=$(mktemp -d /tmp/tokbench.XXXX)
  $BIN dev --data $dir --gateway-listen 127.0.0.1:17379 --coordinator-listen 127.0.0.1:17380 \
    --admin-listen 127.0.0.1:17381 --node-port 17391 "$@" > $dir/dev.log 2>&1 &
  local pid=$!
  for i in $(seq 100); do grep -q "KvDB dev cluster running" $dir/dev.log && break; sleep 0.2; done
  local tok=()
  [ "$label" = tokens ] && tok=(--token benchsecret)
  for op in put get; do
    for via in gateway smart; do
      local s=(); [ $via = smart ] && s=(--smart --coordinators 127.0.0.1:17380)
      out=$($BIN bench --op $op -c 50 --duration 5s --key-space 10000 --gateway 127.0.0.1:17379 "${s[@]}" "${tok[@]}" --preload --json 2>/dev/null)
      echo "$label $op $via $(echo "$out" | python3 -c 'import json,sys; d=json.load(sys.stdin); e=d["errors"]; print(round(d["throughput"]), "ok", d["ok"], "errors", sum(e.values()), "p99_ms", d["latency_ms"]["p99"])' 2>/dev/null || echo "$out" | head -c 300)"
    done
  done
  kill $pid; wait $pid 2>/dev/null; rm -rf $dir
}
for round in 1 2; do
  run plain
  run tokens --cluster-token benchsecret
done
