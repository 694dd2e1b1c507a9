//! Runs pg_erasure rule modules in a wasmtime sandbox.
//!
//! A rule module is untrusted WebAssembly that follows ABI version 1
//! (`rules-wasm/ABI.md`). This crate checks it, compiles it, and runs it
//! with a fuel budget, a memory cap and an output cap. It has no
//! PostgreSQL dependency; the extension calls it from a backend process,
//! which is why it starts no threads, installs no signal handlers and keeps
//! no global state: the caller creates one [`RuleHost`] lazily and keeps it.
//!
//! ```text
//! RuleHost::new()                                  -> RuleHost (one wasmtime Engine)
//! host.prepare(wasm, &config, slot, &limits)       -> Prepared { sha256_hex, precompiled, wasm_size }
//!     installation: every static check, ABI version, smoke test, compile
//! unsafe host.load_precompiled(&prepared.precompiled) -> LoadedModule
//! host.load_wasm(wasm)                             -> LoadedModule (when precompiled bytes are stale)
//! host.evaluate(&module, &input, &limits)          -> Vec<Decision>, one per input record
//! host.evaluate_batch(&module, &input, &batch, &limits) -> the same, records in a RecordBatch
//! canonical_json(&config) / installation_sha256(wasm, &config)
//! ```
//!
//! Every failure is a [`HostError`] whose message names the fault in terms
//! a compliance engineer can act on; the extension aborts the erasure on
//! any of them, so a faulty module can delay an erasure but never cause a
//! wrong one.

use std::path::Path;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use code_image::{CodeImage, PageProtection};
use erasure_abi::{decode_output, AbiError, Decision, EvalInput, Timestamp, ABI_VERSION};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use wasmtime::{
    Config, Engine, Extern, ExternType, FuncType, InstancePre, Linker, Module, ModuleExport,
    ResourceLimiter, Store, Strategy, Trap, TypedFunc, ValType,
};

mod artifact_file;
mod code_image;
mod wire;

pub use wire::{AttrWriter, RecordBatch};

/// Per-call resource caps. The extension fills them from the GUCs
/// `erasure.module_fuel`, `erasure.module_memory_mb` and `erasure.module_output_mb`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Fuel for one call (about one unit per WebAssembly instruction).
    pub fuel: u64,
    /// Cap on the module's linear memory, in bytes.
    pub memory_bytes: usize,
    /// Cap on the length of the module's answer, in bytes.
    pub output_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            fuel: 50_000_000,
            memory_bytes: 16 << 20,
            output_bytes: 16 << 20,
        }
    }
}

/// Cap on table elements; Rust modules need a few hundred.
const MAX_TABLE_ELEMENTS: usize = 100_000;

/// Why a module was refused or a call failed.
#[derive(Debug, thiserror::Error)]
pub enum HostError {
    #[error("not a WebAssembly module (it does not start with the \\0asm header)")]
    NotWasm,
    #[error("invalid WebAssembly module: {0}")]
    Invalid(String),
    #[error(
        "the module imports `{module}`.`{name}`; rule modules must not import anything \
         (no WASI, no host functions)"
    )]
    HasImport { module: String, name: String },
    #[error("the module does not export `{0}`, which rule ABI version 1 requires")]
    MissingExport(String),
    #[error("the module's export `{name}` has the wrong type: ABI version 1 requires {expected}, found {found}")]
    BadExportType {
        name: String,
        expected: String,
        found: String,
    },
    #[error(
        "the module's memory starts at {declared} bytes, more than the {cap} bytes allowed \
         (erasure.module_memory_mb)"
    )]
    MemoryTooLarge { declared: u64, cap: usize },
    #[error("the module speaks rule ABI version {0}; this host speaks version 1")]
    WrongAbiVersion(i32),
    #[error(
        "the module ran out of fuel before answering (erasure.module_fuel): it loops forever, \
         or the input needs a higher limit"
    )]
    FuelExhausted,
    #[error("the module needed more memory than erasure.module_memory_mb allows")]
    MemoryLimit,
    #[error("the module crashed (WebAssembly trap): {0}")]
    Trap(String),
    #[error(
        "the module's alloc returned a buffer outside its memory; the input could not be written"
    )]
    OutOfBoundsInput,
    #[error("the module's answer lies outside its memory (pointer {ptr:#x}, length {len})")]
    OutOfBoundsOutput { ptr: u32, len: u32 },
    #[error("the module's answer is {len} bytes, more than the {cap} allowed (erasure.module_output_mb)")]
    OutputTooLarge { len: u32, cap: usize },
    #[error(transparent)]
    Abi(#[from] AbiError),
    #[error("the module failed its installation test (evaluate with no records): {0}")]
    SmokeTest(Box<HostError>),
    #[error("the module could not be compiled: {0}")]
    Compile(String),
    #[error(
        "the precompiled module cannot be used (made by another wasmtime version or \
         configuration?); load it from its WebAssembly bytes instead: {0}"
    )]
    Precompiled(String),
    #[error("the precompiled module's file is not used: {0}")]
    PrecompiledFile(String),
    #[error("the input for the module is {0} bytes, more than a 32-bit module can address")]
    InputTooLarge(usize),
    #[error("WebAssembly engine error: {0}")]
    Engine(String),
}

impl HostError {
    /// Whether the module itself is to blame (refuse or fix the module), as
    /// opposed to the host: stale precompiled bytes, an oversized input or
    /// an engine failure.
    pub fn is_module_fault(&self) -> bool {
        match self {
            HostError::SmokeTest(inner) => inner.is_module_fault(),
            HostError::Compile(_)
            | HostError::Precompiled(_)
            | HostError::PrecompiledFile(_)
            | HostError::InputTooLarge(_)
            | HostError::Engine(_) => false,
            _ => true,
        }
    }
}

/// Result of [`RuleHost::prepare`]: what the extension stores for an installation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Prepared {
    /// [`installation_sha256`] of the module bytes and configuration.
    pub sha256_hex: String,
    /// Native code for [`RuleHost::load_precompiled`]; tied to this wasmtime
    /// version and engine configuration.
    pub precompiled: Vec<u8>,
    /// Size of the WebAssembly bytes.
    pub wasm_size: usize,
}

/// A compiled module whose imports and exports have been checked.
///
/// It keeps what every call needs ready: the module pre-instantiated (imports resolved,
/// which for rule modules means none, and types checked once) and the ABI exports' indices,
/// so a call looks nothing up by name.
#[derive(Clone)]
pub struct LoadedModule {
    module: Module,
    pre: InstancePre<Guard>,
    exports: AbiExports,
    /// The memory a precompiled module's code runs from. Declared last, so it is dropped after
    /// `module` and `pre`: the last clone of a module unmaps it only once no code can run
    /// from it (no other handle to the module leaves this crate).
    image: Option<Arc<CodeImage>>,
}

#[derive(Clone, Copy)]
struct AbiExports {
    memory: ModuleExport,
    alloc: ModuleExport,
    evaluate: ModuleExport,
}

impl std::fmt::Debug for LoadedModule {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoadedModule").finish_non_exhaustive()
    }
}

/// One wasmtime engine configured for rule modules.
pub struct RuleHost {
    engine: Engine,
}

impl RuleHost {
    /// Creates the engine. Call lazily (on first use), not at library load.
    ///
    /// The configuration suits a PostgreSQL backend: single-threaded
    /// compilation (the crate is built without parallel compilation or a
    /// cache), no signal handlers (traps are explicit checks, so wasmtime
    /// never touches the process's SIGSEGV handling), linear memory from the
    /// ordinary heap instead of multi-GiB virtual reservations, fuel
    /// metering, and only the WebAssembly features Rust guests use.
    /// NaN canonicalisation and deterministic relaxed SIMD make a module
    /// decide the same way on every machine.
    pub fn new() -> Result<Self, HostError> {
        let mut config = Config::new();
        config
            .strategy(Strategy::Cranelift)
            .consume_fuel(true)
            .signals_based_traps(false)
            .memory_reservation(0)
            .memory_guard_size(0)
            // Room to grow in place: a batch of 5000 records takes a module to ~3 MiB, and
            // every growth past the reserve is a reallocation that copies the whole memory.
            // Only the pages a module touches are ever written.
            .memory_reservation_for_growth(4 << 20)
            .memory_init_cow(false)
            .wasm_multi_memory(false)
            .wasm_memory64(false)
            .wasm_backtrace_max_frames(None)
            // Smaller precompiled modules, so a backend loads one faster: no map from native
            // code back to wasm offsets (traps are reported by their code, without a wasm
            // backtrace), and no native unwind tables (a module imports nothing, so no host
            // frame ever unwinds through its code).
            .generate_address_map(false)
            .native_unwind_info(false)
            // Native code is made executable by `mprotect` through this hook, which also
            // serves modules loaded into memory of our own (`load_precompiled`).
            .with_custom_code_memory(Some(PageProtection::new()))
            .relaxed_simd_deterministic(true)
            .cranelift_nan_canonicalization(true);
        let engine = Engine::new(&config).map_err(|e| HostError::Engine(error_text(&e)))?;
        Ok(RuleHost { engine })
    }

    /// Checks a module for installation and compiles it.
    ///
    /// In order: the WebAssembly header; validation; no imports at all (the
    /// first one is named); the exports `memory`, `erasure_abi_version`,
    /// `alloc` and `evaluate` with their exact types; the memory's initial
    /// size within `limits.memory_bytes`; `erasure_abi_version() == 1`; and
    /// a smoke test: `evaluate` with `config`, `slot` and no records must
    /// answer `{"decisions": []}` (a module that validates its configuration
    /// refuses a bad one here). Then the native code is serialised.
    pub fn prepare(
        &self,
        wasm: &[u8],
        config: &Value,
        slot: &str,
        limits: &Limits,
    ) -> Result<Prepared, HostError> {
        check_header(wasm)?;
        Module::validate(&self.engine, wasm).map_err(|e| HostError::Invalid(error_text(&e)))?;
        let module = self.compile(wasm)?;
        check_memory_minimum(&module.module, limits)?;
        self.check_abi_version(&module, limits)?;

        let smoke = EvalInput {
            abi: ABI_VERSION,
            slot: slot.to_string(),
            now: now_rfc3339(),
            config: config.clone(),
            request: json!({"subject_kind": "smoke-test", "org_id": 0, "source": "install", "request_id": "smoke-test"}),
            holds: vec![],
            records: vec![],
        };
        self.evaluate(&module, &smoke, limits)
            .map_err(|e| HostError::SmokeTest(Box::new(e)))?;

        let precompiled = self.precompile(&module)?;
        Ok(Prepared {
            sha256_hex: installation_sha256(wasm, config),
            precompiled,
            wasm_size: wasm.len(),
        })
    }

    /// Loads native code produced by [`prepare`](Self::prepare).
    ///
    /// wasmtime rejects bytes from another wasmtime version or engine
    /// configuration with [`HostError::Precompiled`]; fall back to
    /// [`load_wasm`](Self::load_wasm) then.
    ///
    /// # Safety
    ///
    /// `bytes` must be the `precompiled` output of `prepare` (by any
    /// `RuleHost` of this crate version), unaltered. wasmtime runs the
    /// native code they contain without verifying it, so bytes from anyone
    /// else are arbitrary code execution in the database backend.
    pub unsafe fn load_precompiled(&self, bytes: &[u8]) -> Result<LoadedModule, HostError> {
        let image = CodeImage::copy_of(bytes)
            .map_err(|e| HostError::Precompiled(format!("no memory for the module's code: {e}")))?;
        // SAFETY: the caller's contract is this function's.
        unsafe { self.load_image(image) }
    }

    /// [`load_precompiled`](Self::load_precompiled) from a file written by
    /// [`write_precompiled_file`], with the note written beside the code: mapped from the page
    /// cache (or, where the file system does not let mapped files run, copied) as the memory
    /// its code runs from, when the file is whole and matches its checksums
    /// ([`HostError::PrecompiledFile`] otherwise, or [`HostError::Precompiled`] when wasmtime
    /// refuses the bytes: load them from where they are kept then).
    ///
    /// # Safety
    ///
    /// As for `load_precompiled`: the file must hold `prepare`'s or
    /// [`precompile`](Self::precompile)'s output, written by `write_precompiled_file` in a
    /// directory nobody but the database's own user can write.
    pub unsafe fn load_precompiled_file(&self, path: &Path) -> Result<FileModule, HostError> {
        use artifact_file::Placement;
        let read =
            |placement| artifact_file::read(path, placement).map_err(HostError::PrecompiledFile);
        // Mapped from the page cache; a file that is not whole is refused once, here.
        let (image, note) = read(Placement::Mapped)?;
        // SAFETY: the caller's contract is this function's; the checksum shows the bytes are
        // those written.
        let module = match unsafe { self.load_image(image) } {
            Ok(module) => module,
            // The file system may refuse to execute mapped files (`noexec`): copied then.
            // SAFETY: as above.
            Err(_) => unsafe { self.load_image(read(Placement::Copied)?.0) }?,
        };
        Ok(FileModule { module, note })
    }

    /// A loaded module's native code, serialised as [`prepare`](Self::prepare) serialises it:
    /// for keeping the code of a module that had to be compiled again (its stored
    /// precompiled code was made by another wasmtime or engine configuration).
    pub fn precompile(&self, module: &LoadedModule) -> Result<Vec<u8>, HostError> {
        module
            .module
            .serialize()
            .map_err(|e| HostError::Compile(error_text(&e)))
    }

    /// A short name (16 hex digits) of what precompiled code must match to load in this
    /// host: the wasmtime version and the engine configuration. Hosts with the same tag load
    /// each other's precompiled code; it keeps the files of different builds apart.
    pub fn engine_tag(&self) -> String {
        use std::hash::{Hash, Hasher};
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        self.engine
            .precompile_compatibility_hash()
            .hash(&mut hasher);
        format!("{:016x}", hasher.finish())
    }

    /// # Safety
    ///
    /// `image` holds `prepare`'s or `precompile`'s output, unaltered.
    unsafe fn load_image(&self, image: CodeImage) -> Result<LoadedModule, HostError> {
        // SAFETY: the caller guarantees the bytes are Module::serialize output
        // of this wasmtime build (see `load_precompiled`); wasmtime checks the
        // version and configuration header itself. The image is sealed read-only,
        // and outlives the module (`LoadedModule::image`).
        let module = unsafe { Module::deserialize_raw(&self.engine, image.bytes()) }
            .map_err(|e| HostError::Precompiled(error_text(&e)))?;
        let mut loaded = self.loaded(module)?;
        loaded.image = Some(Arc::new(image));
        Ok(loaded)
    }

    /// Compiles a module from its WebAssembly bytes (after the interface checks).
    pub fn load_wasm(&self, wasm: &[u8]) -> Result<LoadedModule, HostError> {
        check_header(wasm)?;
        self.compile(wasm)
    }

    /// Asks the module for one decision per `input.records` entry.
    ///
    /// Each call runs in a fresh instance with its own fuel and memory cap,
    /// so no state survives between calls. The answer is located, bounds-
    /// and size-checked, then decoded strictly ([`decode_output`]).
    pub fn evaluate(
        &self,
        module: &LoadedModule,
        input: &EvalInput,
        limits: &Limits,
    ) -> Result<Vec<Decision>, HostError> {
        self.evaluate_batch(module, input, &RecordBatch::of(&input.records), limits)
    }

    /// [`evaluate`](Self::evaluate) of `records` in place of `input.records` (which is not
    /// read): the extension's way, which writes its rows into a batch as it reads them.
    pub fn evaluate_batch(
        &self,
        module: &LoadedModule,
        input: &EvalInput,
        records: &RecordBatch,
        limits: &Limits,
    ) -> Result<Vec<Decision>, HostError> {
        // The same bytes serde_json would write (see `wire`), in three pieces written into the
        // module's memory one after the other: the records are not copied into a buffer of
        // the whole input first (a fresh half megabyte per call, and its page faults).
        let (head, tail) = wire::encode_input_around(input);
        // Decoded where the module left it, without copying it out first.
        self.call(module, &[&head, &records.json, tail], limits, |output| {
            Ok(decode_output(output, records.len())?)
        })
    }

    fn compile(&self, wasm: &[u8]) -> Result<LoadedModule, HostError> {
        let module = Module::new(&self.engine, wasm).map_err(|e| {
            // Module::new validates too; keep validation failures distinct.
            match Module::validate(&self.engine, wasm) {
                Err(invalid) => HostError::Invalid(error_text(&invalid)),
                Ok(()) => HostError::Compile(error_text(&e)),
            }
        })?;
        self.loaded(module)
    }

    /// Checks the interface of a compiled module and readies it for calls.
    fn loaded(&self, module: Module) -> Result<LoadedModule, HostError> {
        check_interface(&module)?;
        let export = |name: &str| {
            module
                .get_export_index(name)
                .ok_or_else(|| HostError::MissingExport(name.into()))
        };
        let exports = AbiExports {
            memory: export("memory")?,
            alloc: export("alloc")?,
            evaluate: export("evaluate")?,
        };
        // No imports (checked above), so an empty linker resolves everything.
        let pre = Linker::<Guard>::new(&self.engine)
            .instantiate_pre(&module)
            .map_err(|e| HostError::Engine(error_text(&e)))?;
        Ok(LoadedModule {
            module,
            pre,
            exports,
            image: None,
        })
    }

    fn new_store(&self, limits: &Limits) -> Result<Store<Guard>, HostError> {
        let mut store = Store::new(
            &self.engine,
            Guard {
                memory_cap: limits.memory_bytes,
                denied: false,
            },
        );
        store.limiter(|guard| guard);
        store
            .set_fuel(limits.fuel)
            .map_err(|e| HostError::Engine(error_text(&e)))?;
        Ok(store)
    }

    fn check_abi_version(&self, module: &LoadedModule, limits: &Limits) -> Result<(), HostError> {
        let mut store = self.new_store(limits)?;
        let instance = module
            .pre
            .instantiate(&mut store)
            .map_err(|e| classify(e, &store))?;
        let version = instance
            .get_typed_func::<(), i32>(&mut store, "erasure_abi_version")
            .map_err(|_| HostError::MissingExport("erasure_abi_version".into()))?
            .call(&mut store, ())
            .map_err(|e| classify(e, &store))?;
        if version != ABI_VERSION {
            return Err(HostError::WrongAbiVersion(version));
        }
        Ok(())
    }

    /// The memory protocol: alloc, write the input (`pieces`, one after the other), evaluate,
    /// and give `read` the packed answer's bytes.
    fn call<R>(
        &self,
        module: &LoadedModule,
        pieces: &[&[u8]],
        limits: &Limits,
        read: impl FnOnce(&[u8]) -> Result<R, HostError>,
    ) -> Result<R, HostError> {
        let total: usize = pieces.iter().map(|p| p.len()).sum();
        let len = i32::try_from(total).map_err(|_| HostError::InputTooLarge(total))?;
        let mut store = self.new_store(limits)?;
        let instance = module
            .pre
            .instantiate(&mut store)
            .map_err(|e| classify(e, &store))?;
        // The interface was checked when the module was loaded.
        let exports = &module.exports;
        let Some(Extern::Memory(memory)) = instance.get_module_export(&mut store, &exports.memory)
        else {
            return Err(HostError::MissingExport("memory".into()));
        };
        let func = |store: &mut Store<Guard>, index: &ModuleExport, name: &str| match instance
            .get_module_export(&mut *store, index)
        {
            Some(Extern::Func(f)) => Ok(f),
            _ => Err(HostError::MissingExport(name.into())),
        };
        let alloc = func(&mut store, &exports.alloc, "alloc")?;
        let evaluate = func(&mut store, &exports.evaluate, "evaluate")?;
        // The signatures were checked exactly in `check_interface`.
        let alloc: TypedFunc<i32, i32> = alloc
            .typed(&store)
            .map_err(|_| HostError::MissingExport("alloc".into()))?;
        let evaluate: TypedFunc<(i32, i32), i64> = evaluate
            .typed(&store)
            .map_err(|_| HostError::MissingExport("evaluate".into()))?;

        let ptr = alloc
            .call(&mut store, len)
            .map_err(|e| classify(e, &store))?;
        // wasm32 addresses are unsigned.
        let mut at = ptr as u32 as usize;
        for piece in pieces {
            memory
                .write(&mut store, at, piece)
                .map_err(|_| HostError::OutOfBoundsInput)?;
            at += piece.len();
        }
        let packed = evaluate
            .call(&mut store, (ptr, len))
            .map_err(|e| classify(e, &store))? as u64;

        let (out_ptr, out_len) = ((packed >> 32) as u32, packed as u32);
        if out_len as usize > limits.output_bytes {
            return Err(HostError::OutputTooLarge {
                len: out_len,
                cap: limits.output_bytes,
            });
        }
        let data = memory.data(&store);
        let start = out_ptr as usize;
        let end = start + out_len as usize;
        let bytes = data.get(start..end).ok_or(HostError::OutOfBoundsOutput {
            ptr: out_ptr,
            len: out_len,
        })?;
        read(bytes)
    }
}

/// Store data: enforces the memory and table caps and remembers refusing,
/// so the trap a refused guest then raises is reported as [`HostError::MemoryLimit`].
struct Guard {
    memory_cap: usize,
    denied: bool,
}

impl ResourceLimiter for Guard {
    fn memory_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        // Refusing makes memory.grow return -1 (or instantiation fail), as the spec allows.
        let allowed = desired <= self.memory_cap;
        self.denied |= !allowed;
        Ok(allowed)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        let allowed = desired <= MAX_TABLE_ELEMENTS;
        self.denied |= !allowed;
        Ok(allowed)
    }

    fn instances(&self) -> usize {
        1
    }

    fn memories(&self) -> usize {
        1
    }
}

/// Maps a wasmtime error from instantiate/call to what happened.
fn classify(error: wasmtime::Error, store: &Store<Guard>) -> HostError {
    match error.downcast_ref::<Trap>() {
        Some(Trap::OutOfFuel) => HostError::FuelExhausted,
        // A guest whose allocation was refused usually aborts right after.
        _ if store.data().denied => HostError::MemoryLimit,
        Some(trap) => HostError::Trap(trap.to_string()),
        None => HostError::Trap(error_text(&error)),
    }
}

fn check_header(wasm: &[u8]) -> Result<(), HostError> {
    if wasm.len() < 8 || &wasm[..4] != b"\0asm" {
        return Err(HostError::NotWasm);
    }
    if wasm[4..8] != [1, 0, 0, 0] {
        return Err(HostError::Invalid(
            "this is not a core WebAssembly module (a component?); build for wasm32-unknown-unknown".into(),
        ));
    }
    Ok(())
}

/// The ABI's static shape: no imports, the four exports with exact types.
fn check_interface(module: &Module) -> Result<(), HostError> {
    if let Some(import) = module.imports().next() {
        return Err(HostError::HasImport {
            module: import.module().to_string(),
            name: import.name().to_string(),
        });
    }
    match module.get_export("memory") {
        None => return Err(HostError::MissingExport("memory".into())),
        Some(ExternType::Memory(m)) if !m.is_64() && !m.is_shared() => {}
        Some(other) => {
            return Err(HostError::BadExportType {
                name: "memory".into(),
                expected: "an unshared 32-bit memory".into(),
                found: describe(&other),
            })
        }
    }
    let functions: [(&str, &[ValType], ValType); 3] = [
        ("erasure_abi_version", &[], ValType::I32),
        ("alloc", &[ValType::I32], ValType::I32),
        ("evaluate", &[ValType::I32, ValType::I32], ValType::I64),
    ];
    for (name, params, result) in functions {
        let expected = || signature(params.iter().cloned(), [result.clone()]);
        match module.get_export(name) {
            None => return Err(HostError::MissingExport(name.into())),
            Some(ExternType::Func(f)) if matches_signature(&f, params, &result) => {}
            Some(other) => {
                return Err(HostError::BadExportType {
                    name: name.into(),
                    expected: expected(),
                    found: describe(&other),
                })
            }
        }
    }
    Ok(())
}

fn matches_signature(f: &FuncType, params: &[ValType], result: &ValType) -> bool {
    let same = |a: &ValType, b: &ValType| {
        matches!(
            (a, b),
            (ValType::I32, ValType::I32) | (ValType::I64, ValType::I64)
        )
    };
    f.params().len() == params.len()
        && f.params().zip(params).all(|(a, b)| same(&a, b))
        && f.results().len() == 1
        && f.results().all(|r| same(&r, result))
}

fn signature(
    params: impl IntoIterator<Item = ValType>,
    results: impl IntoIterator<Item = ValType>,
) -> String {
    let list = |types: Vec<String>| types.join(", ");
    format!(
        "func ({}) -> ({})",
        list(params.into_iter().map(|t| t.to_string()).collect()),
        list(results.into_iter().map(|t| t.to_string()).collect())
    )
}

fn describe(ty: &ExternType) -> String {
    match ty {
        ExternType::Func(f) => signature(f.params(), f.results()),
        ExternType::Memory(m) => format!(
            "{}{}-bit memory",
            if m.is_shared() { "a shared " } else { "a " },
            if m.is_64() { 64 } else { 32 }
        ),
        ExternType::Global(_) => "a global".into(),
        ExternType::Table(_) => "a table".into(),
        _ => "another kind of export".into(),
    }
}

fn check_memory_minimum(module: &Module, limits: &Limits) -> Result<(), HostError> {
    if let Some(ExternType::Memory(m)) = module.get_export("memory") {
        let declared = m.minimum().saturating_mul(m.page_size());
        if declared > limits.memory_bytes as u64 {
            return Err(HostError::MemoryTooLarge {
                declared,
                cap: limits.memory_bytes,
            });
        }
    }
    Ok(())
}

/// wasmtime errors carry context layers; keep them all, on one line.
fn error_text(error: &wasmtime::Error) -> String {
    error
        .chain()
        .map(|cause| cause.to_string())
        .collect::<Vec<_>>()
        .join(": ")
}

fn now_rfc3339() -> String {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64);
    Timestamp::from_unix_seconds(secs).to_rfc3339()
}

/// Compact JSON with object keys sorted (by code point, recursively), so
/// equal configurations hash equally whatever order they were written in.
pub fn canonical_json(value: &Value) -> String {
    let mut out = String::new();
    write_canonical(value, &mut out);
    out
}

fn write_canonical(value: &Value, out: &mut String) {
    match value {
        Value::Object(map) => {
            // Sorted here, not by serde_json: another crate in the build may
            // enable its `preserve_order` feature.
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            out.push('{');
            for (i, key) in keys.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&Value::String(key.clone()).to_string());
                out.push(':');
                write_canonical(&map[key], out);
            }
            out.push('}');
        }
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_canonical(item, out);
            }
            out.push(']');
        }
        scalar => out.push_str(&scalar.to_string()),
    }
}

/// Keeps `precompiled` (the output of [`RuleHost::prepare`]) in a file for
/// [`RuleHost::load_precompiled_file`], with `note` (the caller's, returned with the module;
/// not kept when longer than [`NOTE_MAX`]): written whole or not at all (a temporary file,
/// flushed, then renamed), readable and writable by its owner only.
pub fn write_precompiled_file(path: &Path, precompiled: &[u8], note: &[u8]) -> std::io::Result<()> {
    artifact_file::write(path, precompiled, note)
}

pub use artifact_file::NOTE_MAX;

/// A module loaded by [`RuleHost::load_precompiled_file`], and its file's note (empty when the
/// file keeps none).
pub struct FileModule {
    pub module: LoadedModule,
    pub note: Vec<u8>,
}

/// Content address of an installation: hex SHA-256 of the module bytes
/// followed by [`canonical_json`] of its configuration.
pub fn installation_sha256(wasm: &[u8], config: &Value) -> String {
    let mut hasher = Sha256::new();
    hasher.update(wasm);
    hasher.update(canonical_json(config).as_bytes());
    hex::encode(hasher.finalize())
}

#[cfg(test)]
mod tests;
