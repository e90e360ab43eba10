//! The wasmtime engine, and loading components: componentize wasip1 modules with the
//! preview1 adapter (as Spin does), compile each once, and keep compiled code in an
//! on-disk cache so a restart skips compilation.

use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, Result};
use sha2::{Digest, Sha256};
use wasmtime::component::Component;
use wasmtime::{Config, Enabled, Engine, InstanceAllocationStrategy, PoolingAllocationConfig};

use crate::console::log;

/// How much of a freed instance's linear memory stays mapped, to be reset in place:
/// the components' initial memory (`crates/component-build.rs`), where a request's
/// stack, data and heap are.
const KEEP_RESIDENT: usize = 8 << 20;

/// The engine every component runs on: async (host calls await Redis and HTTP), with
/// the pooling allocator so a per-request instance costs microseconds.
pub fn new_engine() -> Result<Engine> {
    let mut config = Config::new();
    config.wasm_component_model(true);
    let mut pooling = PoolingAllocationConfig::default();
    // Concurrent instances (requests and messages in flight at once).
    pooling.total_component_instances(1_000);
    pooling.total_core_instances(4_000);
    pooling.total_memories(2_000);
    pooling.total_tables(4_000);
    pooling.total_stacks(1_000);
    pooling.max_memory_size(256 << 20);
    // A freed instance's memory is reset in place rather than given back to the kernel:
    // `madvise` then a page fault on every page the next request touches flushed the
    // TLBs of every core each time (half the host's time on a trivial route). The
    // `PAGEMAP_SCAN` ioctl (Linux 6.7+) finds the pages the instance wrote, and only
    // those are restored; with no ioctl, the memory is given back as before (a memset of
    // all of it would cost more). Tables (small) are reset with memset. The settings
    // tried and their figures: docs/performance.md.
    pooling.pagemap_scan(Enabled::Auto);
    if PoolingAllocationConfig::is_pagemap_scan_available() {
        pooling.linear_memory_keep_resident(KEEP_RESIDENT);
    }
    pooling.table_keep_resident(1 << 16);
    pooling.decommit_batch_size(32);
    config.allocation_strategy(InstanceAllocationStrategy::Pooling(pooling));
    match Engine::new(&config) {
        Ok(engine) => Ok(engine),
        Err(err) => {
            // Some sandboxes cap virtual memory below what the pool reserves.
            log!("pooling allocator unavailable ({err:#}); allocating on demand");
            config.allocation_strategy(InstanceAllocationStrategy::OnDemand);
            Ok(Engine::new(&config)?)
        }
    }
}

/// A component ready to instantiate, and whether compilation was skipped.
pub struct Loaded {
    pub component: Component,
    pub from_cache: bool,
}

/// Reads a `.wasm` (a wasip1 module or a component), componentizes it when needed,
/// and compiles it, using `cache_dir` for compiled code when given.
pub fn load_component(engine: &Engine, path: &Path, cache_dir: Option<&Path>) -> Result<Loaded> {
    let bytes = std::fs::read(path)
        .with_context(|| format!("cannot read the component source {}", path.display()))?;
    let cached = cache_dir.map(|dir| cache_path(engine, dir, &bytes));
    if let Some(cached) = &cached
        && cached.exists()
    {
        // SAFETY: the file was written by `Component::serialize` of an engine with the
        // same compatibility hash (it is part of the file name); wasmtime also checks
        // the header and refuses incompatible code.
        match unsafe { Component::deserialize_file(engine, cached) } {
            Ok(component) => {
                return Ok(Loaded {
                    component,
                    from_cache: true,
                });
            }
            Err(err) => log!(
                "ignoring unusable compiled-code cache {}: {err:#}",
                cached.display()
            ),
        }
    }
    let component_bytes = componentize::component_of(&bytes).with_context(|| {
        format!(
            "cannot turn the wasip1 module {} into a component",
            path.display()
        )
    })?;
    let started = Instant::now();
    let component = Component::new(engine, &component_bytes)
        .map_err(anyhow::Error::from)
        .with_context(|| format!("cannot compile {}", path.display()))?;
    log!(
        "compiled {} in {} ms",
        path.display(),
        started.elapsed().as_millis()
    );
    if let Some(cached) = &cached
        && let Err(err) = write_cache(&component, cached)
    {
        log!(
            "cannot write the compiled-code cache {}: {err:#}",
            cached.display()
        );
    }
    Ok(Loaded {
        component,
        from_cache: false,
    })
}

/// `<dir>/<sha256 of the source and the engine's settings>.cwasm`.
fn cache_path(engine: &Engine, dir: &Path, source: &[u8]) -> PathBuf {
    let mut engine_settings = std::hash::DefaultHasher::new();
    engine
        .precompile_compatibility_hash()
        .hash(&mut engine_settings);
    let mut digest = Sha256::new();
    digest.update(source);
    digest.update(engine_settings.finish().to_le_bytes());
    let name: String = digest
        .finalize()
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect();
    dir.join(format!("{name}.cwasm"))
}

fn write_cache(component: &Component, path: &Path) -> Result<()> {
    let dir = path.parent().expect("a cache file is inside the cache dir");
    std::fs::create_dir_all(dir)?;
    // Write then rename, so a crash or a concurrent start never leaves half a file.
    let temporary = path.with_extension(format!("{}.tmp", std::process::id()));
    std::fs::write(&temporary, component.serialize()?)?;
    std::fs::rename(&temporary, path)?;
    Ok(())
}
