//! Points the extension at the default rule modules, built for wasm32 by `make modules`.

use std::path::PathBuf;

fn main() {
    let manifest = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").unwrap());
    let dir = std::env::var("ERASURE_MODULES_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|_| manifest.join("../target/modules"));
    println!("cargo:rerun-if-env-changed=ERASURE_MODULES_DIR");
    for (env, file) in [
        ("ERASURE_RETENTION_WASM", "retention.wasm"),
        ("ERASURE_LEGAL_HOLD_WASM", "legal_hold.wasm"),
    ] {
        let path = dir.join(file);
        if !path.exists() {
            panic!(
                "{} is missing: build the rule modules first with `make modules`",
                path.display()
            );
        }
        println!("cargo:rerun-if-changed={}", path.display());
        println!(
            "cargo:rustc-env={env}={}",
            path.canonicalize().unwrap().display()
        );
    }
}
