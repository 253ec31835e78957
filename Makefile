# KvDB developer commands. `make run-cluster` runs a multi-process local
# cluster (coordinator + Admin API, 3 storage nodes, gateway) with PIDs and
# logs under $(RUN_DIR); `make stop` stops only those PIDs.

PROFILE ?= release
RUN_DIR ?= run
CARGO ?= cargo

ifeq ($(PROFILE),release)
  KVDB ?= target/release/kvdb
  CARGO_PROFILE_FLAG := --release
else
  KVDB ?= target/debug/kvdb
  CARGO_PROFILE_FLAG :=
endif

export KVDB RUN_DIR

.PHONY: rolling-restart bench-admin ghz-gateway-bench k6-gateway-bench k6-admin-bench vegeta-admin-bench build run-cluster bootstrap-cluster smoke-test stop test bench bench-shards charts scale-test chaos availability clean-run

build:
	$(CARGO) build $(CARGO_PROFILE_FLAG) --bin kvdb

run-cluster: build
	scripts/run-cluster.sh start

bootstrap-cluster:
	scripts/run-cluster.sh bootstrap

smoke-test:
	scripts/smoke-test.sh

stop:
	scripts/run-cluster.sh stop

test:
	$(CARGO) test --workspace

# Starts its own cluster on ports apart from run-cluster's; see scripts/bench.sh.
bench: build
	scripts/bench.sh

# The shard-count curve (scripts/bench.sh shards): idle CPU, memory and put throughput of a
# fresh cluster per shard count, with etcd's row, at c=256 (SHARD_COUNTS, KEY_SPACE tune it)
# and at c=50 over 8 and 128 shards; then the data-size curve (scripts/bench.sh datasize).
bench-shards: build
	CONCURRENCY=256 scripts/bench.sh shards
	CONCURRENCY=50 SHARD_COUNTS="8 128" scripts/bench.sh shards
	CONCURRENCY=50 scripts/bench.sh datasize

# The charts in docs/charts: the concurrency curve (scripts/bench.sh clients), then every
# curve saved in run/charts (make bench-shards adds the shard-count one) drawn as SVG.
charts: build
	scripts/bench.sh clients
	python3 scripts/charts.py run/charts docs/charts

# The Admin API under wrk (Debian's): reads and a replicated mutation, on a cluster of its own.
bench-admin: build
	scripts/bench.sh admin

# The Java original's load-tool targets, against a running `make run-cluster` (see
# scripts/load-tools.sh); each says how to install its tool when it is missing.
ghz-gateway-bench:
	scripts/load-tools.sh ghz-gateway

k6-gateway-bench:
	scripts/load-tools.sh k6-gateway

k6-admin-bench:
	scripts/load-tools.sh k6-admin

vegeta-admin-bench:
	scripts/load-tools.sh vegeta-admin

# 3 storage nodes to SCALE_TO (6) under smart puts: time until the scheduler has balanced
# replicas and leaders, throughput and CPU per node before and after (scripts/bench.sh scale).
scale-test: build
	scripts/bench.sh scale

# Long chaos run: every chaos schedule for CHAOS_SECS of faults with a random
# seed (printed; rerun one with KVDB_CHAOS_SEED=...), CHAOS_ROUNDS times, then
# the recovery-time percentiles. Defaults: about 30 minutes. Log: $(RUN_DIR)/chaos.log
CHAOS_SECS ?= 130
CHAOS_ROUNDS ?= 2

chaos:
	@mkdir -p $(RUN_DIR) && rm -f $(RUN_DIR)/chaos.log
	@for round in $$(seq $(CHAOS_ROUNDS)); do \
	  KVDB_CHAOS_SECS=$(CHAOS_SECS) $(CARGO) test --release \
	    --test chaos_schedules --test chaos_process --test chaos_sensitivity \
	    -- --nocapture --test-threads 1 > $(RUN_DIR)/chaos.round.log 2>&1; status=$$?; \
	  cat $(RUN_DIR)/chaos.round.log >> $(RUN_DIR)/chaos.log; \
	  grep -E '^(CHAOS |test |test result)' $(RUN_DIR)/chaos.round.log; \
	  [ $$status -eq 0 ] || { echo "chaos round $$round failed, see $(RUN_DIR)/chaos.log"; exit 1; }; \
	done
	@grep '^CHAOS .* bug=None ' $(RUN_DIR)/chaos.log \
	  | sed 's/.*recovery_ms=\[\(.*\)\].*/\1/' | tr ', ' '\n\n' | grep -v '^$$' | sort -n \
	  | awk '{a[NR]=$$1} END {if (NR) printf "recovery after heal: n=%d p50=%dms p99=%dms max=%dms\n", \
	      NR, a[int((NR-1)*0.5)+1], a[int((NR-1)*0.99)+1], a[NR]}'

# The rolling-restart drill on a fresh multi-process cluster (coordinator, 3 nodes, gateway):
# every process stopped with SIGTERM and restarted in turn under recorded smart and gateway
# clients, nodes after their leaderships moved away; fails on a lost acknowledged write or a
# history that is not linearizable (tests/chaos/rolling.rs).
rolling-restart:
	$(CARGO) test $(CARGO_PROFILE_FLAG) --test chaos_process rolling_restart -- --nocapture

# What isolating or delaying one node costs: figures, no assertions (tests/chaos/availability.rs).
availability:
	$(CARGO) test --release --test chaos_availability -- --ignored --nocapture --test-threads 1 \
	  | grep -o 'AVAILABILITY.*'

clean-run: stop
	rm -rf $(RUN_DIR)
