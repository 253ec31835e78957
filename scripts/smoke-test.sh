#!/usr/bin/env bash
# Smoke test of a running cluster through the CLI: put, get, CAS, TTL'd put,
# delete, exit codes, and the smart client.
set -euo pipefail

KVDB=${KVDB:-target/release/kvdb}
fail() { echo "smoke test FAILED: $*" >&2; exit 1; }

key="smoke:$$:$RANDOM"
v1=$("$KVDB" put "$key" one) || fail "put"
[[ $("$KVDB" get "$key") == one ]] || fail "get after put"
# An eventual read may lag the write, but must answer (value or absent).
set +e
"$KVDB" get --consistency eventual "$key" >/dev/null; code=$?
set -e
[[ $code -eq 0 || $code -eq 1 ]] || fail "eventual get exited $code"
v2=$("$KVDB" cas "$key" "$v1" two) || fail "cas with the current version"
(( v2 > v1 )) || fail "versions must increase ($v1 -> $v2)"
set +e
"$KVDB" cas "$key" "$v1" three 2>/dev/null; code=$?
set -e
[[ $code -eq 3 ]] || fail "cas with a stale version exited $code, want 3"
[[ $("$KVDB" get --smart "$key") == two ]] || fail "smart-client get"
"$KVDB" put "$key:ttl" temp --ttl 60s >/dev/null || fail "put with ttl"
"$KVDB" del "$key" || fail "del"
set +e
out=$("$KVDB" get "$key"); code=$?
set -e
[[ $code -eq 1 && -z "$out" ]] || fail "get of a deleted key exited $code with '$out'"
echo "smoke test passed"
