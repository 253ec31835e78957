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

.PHONY: build run-cluster bootstrap-cluster smoke-test stop test bench chaos clean-run

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

clean-run: stop
	rm -rf $(RUN_DIR)
