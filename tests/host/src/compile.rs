//! Turning a `.wasm` file into a compiled component, the way Spin does, and only once.
//!
//! Spin loads a wasip1 core module and wraps it into a component with the
//! `wasi_snapshot_preview1` reactor adapter; this does the same with the same crates. Compiling
//! with Cranelift takes seconds, and a test suite loads the same app many times, so compiled
//! components are kept for the whole process (keyed by a hash of the file's bytes) and, when the
//! host runs from a Cargo target directory, serialized under `<target>/spin-test-host-cache/`.

use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};

use anyhow::{Context, Result};
use sha2::{Digest, Sha256};
use tokio::sync::OnceCell;
use wasmtime::component::Component;
use wasmtime::{Config, Engine, InstanceAllocationStrategy, PoolingAllocationConfig};

/// The one engine of the process: components compiled for it are shared by every app.
///
/// Like `spin up`, it allocates instances from a pool reserved up front (1,000 instances, 4 GiB
/// per memory), so a request reuses a slot instead of mapping and unmapping its memories; where
/// the address space is too small for the pool, it falls back to on-demand allocation, as Spin
/// does.
pub(crate) fn engine() -> &'static Engine {
    static ENGINE: OnceLock<Engine> = OnceLock::new();
    ENGINE.get_or_init(|| {
        let mut config = Config::new();
        config.wasm_component_model(true);
        config.allocation_strategy(InstanceAllocationStrategy::Pooling(pool()));
        Engine::new(&config).unwrap_or_else(|_| {
            config.allocation_strategy(InstanceAllocationStrategy::OnDemand);
            Engine::new(&config).expect("the wasmtime configuration is valid")
        })
    })
}

/// Spin 3's pool: sized from a maximum of 1,000 concurrent instances.
fn pool() -> PoolingAllocationConfig {
    const INSTANCES: u32 = 1_000;
    const MIB: usize = 1 << 20;
    let mut pool = PoolingAllocationConfig::default();
    pool.total_component_instances(INSTANCES)
        .total_memories(INSTANCES)
        .total_tables(2 * INSTANCES)
        .total_stacks(INSTANCES)
        .total_core_instances(4 * INSTANCES)
        .table_elements(100_000)
        .max_component_instance_size(10 * MIB)
        .max_core_instance_size(10 * MIB)
        .max_core_instances_per_component(200)
        .max_tables_per_component(64)
        .max_memories_per_component(32)
        .max_tables_per_module(2)
        .max_memories_per_module(2)
        .max_memory_size(4 << 30)
        .linear_memory_keep_resident(2 * MIB)
        .table_keep_resident(MIB / 2);
    pool
}

type Slot = Arc<OnceCell<Component>>;

/// Loads the component at `path`, compiling it at most once per process per content.
pub(crate) async fn load(path: &Path) -> Result<Component> {
    let bytes = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    let digest: [u8; 32] = Sha256::digest(&bytes).into();

    static COMPILED: OnceLock<Mutex<HashMap<[u8; 32], Slot>>> = OnceLock::new();
    let slot = COMPILED
        .get_or_init(Default::default)
        .lock()
        .expect("compile cache lock")
        .entry(digest)
        .or_default()
        .clone();
    let path = path.to_owned();
    slot.get_or_try_init(|| async move {
        tokio::task::spawn_blocking(move || compile(&bytes, &digest, &path))
            .await
            .context("compilation task failed")?
    })
    .await
    .cloned()
}

fn compile(bytes: &[u8], digest: &[u8; 32], path: &Path) -> Result<Component> {
    let engine = engine();
    let cached = disk_cache_file(engine, digest);
    if let Some(file) = cached.as_deref().filter(|f| f.is_file()) {
        // SAFETY: the file was written by `Component::serialize` below, into our own target
        // directory; wasmtime still checks that it was compiled by a compatible engine.
        if let Ok(component) = unsafe { Component::deserialize_file(engine, file) } {
            return Ok(component);
        }
    }

    let component_bytes = if wasmparser::Parser::is_component(bytes) {
        bytes.to_vec()
    } else {
        componentize(bytes)
            .with_context(|| format!("cannot turn {} into a component", path.display()))?
    };
    let component = Component::new(engine, &component_bytes)
        .map_err(anyhow::Error::from)
        .with_context(|| format!("cannot compile {}", path.display()))?;

    if let Some(file) = cached {
        // Best effort: a failed write only costs a recompilation next time.
        let _ = write_atomically(&file, &component.serialize()?);
    }
    Ok(component)
}

/// Exactly what Spin does with a wasip1 core module.
fn componentize(module: &[u8]) -> Result<Vec<u8>> {
    wit_component::ComponentEncoder::default()
        .validate(true)
        .module(module)?
        .adapter(
            "wasi_snapshot_preview1",
            wasi_preview1_component_adapter_provider::WASI_SNAPSHOT_PREVIEW1_REACTOR_ADAPTER,
        )?
        .encode()
}

/// `<target>/spin-test-host-cache/<sha256>-<engine hash>.cwasm`, if this executable lives in a
/// Cargo target directory (found by its `CACHEDIR.TAG`).
fn disk_cache_file(engine: &Engine, digest: &[u8; 32]) -> Option<PathBuf> {
    let exe = std::env::current_exe().ok()?;
    let target = exe
        .ancestors()
        .find(|dir| dir.join("CACHEDIR.TAG").is_file())?;
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    engine.precompile_compatibility_hash().hash(&mut hasher);
    let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    Some(
        target
            .join("spin-test-host-cache")
            .join(format!("{hex}-{:016x}.cwasm", hasher.finish())),
    )
}

fn write_atomically(file: &Path, contents: &[u8]) -> std::io::Result<()> {
    let dir = file.parent().expect("cache files live in a directory");
    std::fs::create_dir_all(dir)?;
    let name = file
        .file_name()
        .expect("cache files have names")
        .to_string_lossy();
    let tmp = dir.join(format!(".{name}.{}.tmp", std::process::id()));
    std::fs::write(&tmp, contents)?;
    std::fs::rename(&tmp, file)
}
