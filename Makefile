# pg_erasure: `make demo` and `make test` work on a fresh Debian 12 machine.
PG_CONFIG ?= /usr/lib/postgresql/15/bin/pg_config
WASM_TARGET := wasm32-unknown-unknown
MODULES_DIR := target/modules
UNIT_CRATES := -p erasure-core -p erasure-abi -p erasure-rules-sdk -p erasure-rule-host \
               -p erasure-rule-retention -p erasure-rule-legal-hold
DEMO_DB ?= erasure_demo

.PHONY: setup modules build install test unit-test integration-test lint demo bench clean

setup:
	bash scripts/bootstrap.sh

# The default rule modules, built for WebAssembly and embedded into the extension.
modules: setup
	cargo build --release --target $(WASM_TARGET) -p erasure-rule-retention -p erasure-rule-legal-hold
	mkdir -p $(MODULES_DIR)
	cp target/$(WASM_TARGET)/release/erasure_rule_retention.wasm $(MODULES_DIR)/retention.wasm
	cp target/$(WASM_TARGET)/release/erasure_rule_legal_hold.wasm $(MODULES_DIR)/legal_hold.wasm

install: modules
	cd pg_extension && cargo pgrx install --release --pg-config $(PG_CONFIG)

unit-test: modules
	cargo test $(UNIT_CRATES)

integration-test:
	cargo test -p erasure-tests -- --test-threads 2

test: install unit-test integration-test

lint: modules
	cargo fmt --all -- --check
	cargo clippy --workspace --all-targets -- -D warnings

demo: install
	bash scripts/demo.sh $(DEMO_DB)

clean:
	cargo clean
