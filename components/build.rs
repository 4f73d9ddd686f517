//! The build script of the API's components (each `Cargo.toml` names it: `build =
//! "../build.rs"`): the linear memory an instance starts with, kept small and fitted to a
//! request.
//!
//! Spin serves each request with a fresh instance from Wasmtime's pooling allocator, which
//! readies a memory slot for the next instance by zeroing up to 2 MiB of it with `memset`
//! (Spin's `linear_memory_keep_resident`) and dropping the rest, and which answers each
//! `memory.grow` with an `mprotect` and undoes it with another when the slot is reused. With
//! Rust's default 1 MiB stack an instance started with about 1.2 MiB and grew on nearly every
//! request: both costs per request, the syscalls stalling every core of a busy host. Measured on
//! real Spin, alternating rounds of 16 clients: a 4 MiB start (no growth, but a 2 MiB `memset`)
//! cost 6–33 % more CPU per request than the default; 512 KiB of stack in a 1 MiB start cost
//! 10–15 % less (GET a version, GET a function), the heap growing on fewer than 1 request in 5.
//!
//! The stack is linear memory only for what a function's locals must keep in memory; call
//! frames live on Wasmtime's own stack. Spinling's deepest recursion is serde_json's, bounded
//! by the JSON limits checked before parsing (`JsonLimits`) and serde_json's own 128 levels.
//! The built-in runtime (`wasm-runtime`) does not use it and keeps Rust's defaults: it runs
//! other people's modules, and its memory grows past any start size with theirs.
fn main() {
    println!("cargo::rerun-if-changed=../build.rs");
    if !std::env::var("TARGET").is_ok_and(|target| target.starts_with("wasm32")) {
        return;
    }
    println!("cargo::rustc-link-arg=-zstack-size={}", 512 << 10);
    println!("cargo::rustc-link-arg=--initial-memory={}", 1 << 20);
}
