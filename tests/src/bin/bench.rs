//! `make bench`: pg_erasure against hand-written SQL, ON DELETE CASCADE and a schema without
//! foreign keys, on one freshly generated CRM. See `tests/src/bench/mod.rs` for what is measured
//! and how; `--help` for the options.

#[path = "../bench/mod.rs"]
mod bench;

fn main() {
    std::process::exit(bench::main());
}
