# pg_erasure: `make demo` and `make test` work on a fresh Debian 12 machine.
PG_CONFIG ?= /usr/lib/postgresql/15/bin/pg_config
WASM_TARGET := wasm32-unknown-unknown
MODULES_DIR := target/modules
UNIT_CRATES := -p erasure-core -p erasure-abi -p erasure-rules-sdk -p erasure-rule-host \
               -p erasure-rule-retention -p erasure-rule-legal-hold -p erasure-rule-template
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

# One rule module, e.g. `make module NAME=template`: builds the crate erasure-rule-$(NAME)
# (rules-wasm/$(NAME)) for WebAssembly and copies it to target/modules/$(NAME).wasm, ready for
# erasure.install_module. Needs only Rust and the wasm32 target (added when missing).
.PHONY: module
module:
	@case "$(NAME)" in ""|*[!a-z0-9_-]*) \
	    echo "usage: make module NAME=<name>  (builds the crate erasure-rule-<name>, e.g. NAME=template)" >&2; \
	    exit 2;; esac
	@rustup target list --installed | grep -qx $(WASM_TARGET) || rustup target add $(WASM_TARGET)
	cargo build --release --target $(WASM_TARGET) -p erasure-rule-$(NAME)
	@mkdir -p $(MODULES_DIR)
	@cp $(or $(CARGO_TARGET_DIR),target)/$(WASM_TARGET)/release/erasure_rule_$(subst -,_,$(NAME)).wasm \
	    $(MODULES_DIR)/$(NAME).wasm
	@echo "module: $(abspath $(MODULES_DIR)/$(NAME).wasm)"
	@echo "sha256: $$(sha256sum $(MODULES_DIR)/$(NAME).wasm | cut -d' ' -f1)  (of the file; the installation's sha256 also covers its config)"

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

# Benchmark harness (tests/src/bench): BENCH_ARGS="--orgs N --contacts-per-org M --subjects S ..."
bench: install
	cargo run --release -p erasure-tests --bin bench -- $(BENCH_ARGS)

bench-smoke:
	cargo run --release -p erasure-tests --bin bench -- --smoke $(BENCH_ARGS)

clean:
	cargo clean
