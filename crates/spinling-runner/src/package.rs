//! From a function package (a zip) to a validated module that is ready to run.

use std::fmt;
use std::io::{Cursor, Read};
use std::sync::Arc;
use std::time::Instant;

use wasmi::{Config, Engine, ExternType, FuncType, Module, Store};

use crate::limits::{Limiter, MAX_ENTRY_BYTES};
use crate::start;
use crate::wasi::{self, Host, LinkError, WASI_MODULE};

/// wasmi's own fuel cost of bulk copies (`memory.fill`, `memory.copy`, call arguments),
/// kept when the translation costs are set.
const DEFAULT_BYTES_COPIED_PER_FUEL: u32 = 64;

/// Why a package cannot be run; the messages are meant for the function's author.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PrepareError {
    NotAZip(String),
    NoWasm,
    SeveralWasm(Vec<String>),
    EntryNotFound(String),
    EntryTooLarge(String),
    UnreadableEntry {
        entry: String,
        reason: String,
    },
    InvalidModule(String),
    NotACommand,
    UnsupportedImport {
        module: String,
        name: String,
    },
    WrongImportType {
        name: String,
        wanted: String,
        found: String,
    },
}

impl fmt::Display for PrepareError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NotAZip(reason) => write!(f, "The package is not a valid zip archive: {reason}."),
            Self::NoWasm => f.write_str("The package holds no .wasm file."),
            Self::SeveralWasm(names) => write!(
                f,
                "The package holds several .wasm files ({}); name one as the function's entry.",
                names.join(", ")
            ),
            Self::EntryNotFound(entry) => write!(f, "Entry {entry} not found in the package."),
            Self::EntryTooLarge(entry) => write!(
                f,
                "Entry {entry} is larger than {} MiB uncompressed.",
                MAX_ENTRY_BYTES >> 20
            ),
            Self::UnreadableEntry { entry, reason } => {
                write!(
                    f,
                    "Entry {entry} cannot be read from the package: {reason}."
                )
            }
            Self::InvalidModule(reason) => write!(f, "Invalid WebAssembly module: {reason}"),
            Self::NotACommand => f.write_str(
                "The module is not a WASI command: it must export a `_start` function that takes \
                 and returns nothing (build a binary for wasm32-wasip1).",
            ),
            Self::UnsupportedImport { module, name } => write!(
                f,
                "Unsupported import {module}::{name}: a function may import only WASI preview1 \
                 functions ({WASI_MODULE})."
            ),
            Self::WrongImportType {
                name,
                wanted,
                found,
            } => write!(
                f,
                "The module imports {WASI_MODULE}::{name} as {wanted}, but WASI defines it as \
                 {found}."
            ),
        }
    }
}

impl std::error::Error for PrepareError {}

impl From<LinkError> for PrepareError {
    fn from(error: LinkError) -> Self {
        match error {
            LinkError::UnsupportedImport { module, name } => {
                PrepareError::UnsupportedImport { module, name }
            }
            LinkError::WrongImportType {
                name,
                wanted,
                found,
            } => PrepareError::WrongImportType {
                name,
                wanted: signature(&wanted),
                found: signature(&found),
            },
            LinkError::InvalidModule(reason) => PrepareError::InvalidModule(reason),
        }
    }
}

/// A validated WASI command module taken from a package, ready to [`run`](crate::run).
///
/// Cloning is cheap (shared bytes and module), and one `Prepared` can run any number of
/// times. To cache it, keep [`wasm`](Self::wasm) and [`entry`](Self::entry) and rebuild it
/// with [`Prepared::from_wasm`], which skips the unzipping.
#[derive(Clone)]
pub struct Prepared {
    entry: Arc<str>,
    wasm: Arc<[u8]>,
    module: Module,
    /// The export the module's start function was lifted to, if it had one.
    start_export: Option<Arc<str>>,
}

impl fmt::Debug for Prepared {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Prepared")
            .field("entry", &self.entry)
            .field("wasm_bytes", &self.wasm.len())
            .finish_non_exhaustive()
    }
}

impl Prepared {
    /// Validates `wasm` as a runnable function module named `entry` (argv\[0\] of the run).
    ///
    /// A start section is lifted out into an export (see `start.rs`), so the start function
    /// runs metered and sliced like `_start`; the engine refuses start sections, so no guest
    /// code can ever run unmetered during instantiation.
    pub fn from_wasm(entry: &str, wasm: Vec<u8>) -> Result<Self, PrepareError> {
        // Validate every function now, translate each on its first call: a run translates only
        // what it calls (a Rust hello-world calls a fraction of its code; translating all of
        // it was a quarter of a sync execution's CPU).
        let prepared = Self::compile(entry, wasm, wasmi::CompilationMode::LazyTranslation)?;
        // Link once on a throwaway store, so an import problem shows now and not at run time.
        let host = Host::new(&[], entry, 0, Instant::now(), Limiter::new(0));
        wasi::link(
            &mut Store::new(prepared.module.engine(), host),
            &prepared.module,
        )?;
        Ok(prepared)
    }

    /// [`Prepared::from_wasm`] for a module that passed it before (the runtime's cache holds
    /// such modules): each function is validated as well as translated on its first call, so
    /// a run validates only what it calls. Still validated, whatever the bytes: a function
    /// that would not validate fails the run that calls it, and nothing runs unchecked.
    pub fn from_prepared_wasm(entry: &str, wasm: Vec<u8>) -> Result<Self, PrepareError> {
        Self::compile(entry, wasm, wasmi::CompilationMode::Lazy)
    }

    fn compile(
        entry: &str,
        wasm: Vec<u8>,
        mode: wasmi::CompilationMode,
    ) -> Result<Self, PrepareError> {
        // One engine per module: a wasmi engine keeps the code of every module it compiled,
        // so a shared one would grow with every function ever prepared.
        let mut config = Config::default();
        config.consume_fuel(true);
        config.allow_start_fn(false);
        config.compilation_mode(mode);
        // Translation and validation cost no fuel, as they cost none when they all came
        // first: charged, a function whose translation found the slice short of fuel would end
        // with an error the sliced run cannot resume (a false timeout, or a large function
        // that can never run). Their work stays bounded by the module's size.
        config.fuel_cost(wasmi::CustomFuelCosts {
            bytes_copied_per_fuel: DEFAULT_BYTES_COPIED_PER_FUEL,
            fuel_per_bytes_translated: 0,
            fuel_per_bytes_validated: 0,
        });
        let engine = Engine::new(&config);
        let lifted = start::lift(&wasm);
        let module =
            Module::new(&engine, &lifted.wasm).map_err(|err| invalid_module(&wasm, &err))?;
        let is_command = matches!(
            module.get_export("_start"),
            Some(ExternType::Func(ty)) if ty.params().is_empty() && ty.results().is_empty()
        );
        if !is_command {
            return Err(PrepareError::NotACommand);
        }
        Ok(Self {
            entry: entry.into(),
            wasm: wasm.into(),
            module,
            start_export: lifted.start_export.map(Into::into),
        })
    }

    /// The module's bytes, as found in the package.
    pub fn wasm(&self) -> &[u8] {
        &self.wasm
    }

    /// The module's path inside the package.
    pub fn entry(&self) -> &str {
        &self.entry
    }

    pub(crate) fn module(&self) -> &Module {
        &self.module
    }

    /// The export to call before `_start`: the module's lifted start function.
    pub(crate) fn start_export(&self) -> Option<&str> {
        self.start_export.as_deref()
    }
}

/// Why `wasm` is not a module wasmi can run, in one plain line: the engine's own message
/// for a module that is broken, but a clear word for a file that is no WebAssembly module at
/// all (the engine's message then dumps the bytes it expected and found).
fn invalid_module(wasm: &[u8], err: &wasmi::Error) -> PrepareError {
    const MAGIC: &[u8] = b"\0asm";
    const CORE_VERSION: &[u8] = &[1, 0, 0, 0];
    let reason = if !wasm.starts_with(MAGIC) {
        "the file is not WebAssembly (a module starts with the bytes \\0asm)".to_string()
    } else if wasm
        .get(4..8)
        .is_some_and(|version| version != CORE_VERSION)
    {
        "the file is not a WebAssembly core module of version 1 (a component, or another \
         version); build the function for wasm32-wasip1"
            .to_string()
    } else {
        err.to_string()
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ")
    };
    PrepareError::InvalidModule(reason)
}

/// Unzips the package, finds the entry (or its only `.wasm` file when `entry` is `None`) and
/// validates it; see the crate documentation for the rules.
pub fn prepare(package_zip: &[u8], entry: Option<&str>) -> Result<Prepared, PrepareError> {
    let mut archive = zip::ZipArchive::new(Cursor::new(package_zip))
        .map_err(|err| PrepareError::NotAZip(err.to_string()))?;
    let names = archive
        .file_names()
        .map(|name| name.map(|name| name.into_owned()))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|err| PrepareError::NotAZip(err.to_string()))?;
    let name = match entry {
        Some(entry) => names
            .iter()
            .find(|name| normalise(name) == normalise(entry))
            .ok_or_else(|| PrepareError::EntryNotFound(entry.to_string()))?,
        None => {
            let wasm: Vec<&String> = names
                .iter()
                .filter(|name| !name.ends_with('/') && name.to_ascii_lowercase().ends_with(".wasm"))
                .collect();
            match wasm.as_slice() {
                [] => return Err(PrepareError::NoWasm),
                [only] => *only,
                several => {
                    return Err(PrepareError::SeveralWasm(
                        several.iter().map(|name| name.to_string()).collect(),
                    ))
                }
            }
        }
    };
    let unreadable = |reason: String| PrepareError::UnreadableEntry {
        entry: name.clone(),
        reason,
    };
    let file = archive
        .by_name(name)
        .map_err(|err| unreadable(err.to_string()))?;
    // The header's size may lie: read at most one byte past the cap either way.
    if file.size() > MAX_ENTRY_BYTES {
        return Err(PrepareError::EntryTooLarge(name.clone()));
    }
    let mut wasm = Vec::with_capacity(file.size() as usize);
    file.take(MAX_ENTRY_BYTES + 1)
        .read_to_end(&mut wasm)
        .map_err(|err| unreadable(err.to_string()))?;
    if wasm.len() as u64 > MAX_ENTRY_BYTES {
        return Err(PrepareError::EntryTooLarge(name.clone()));
    }
    Prepared::from_wasm(normalise(name), wasm)
}

/// Zip paths and entries may or may not start with `./` or `/`; they name the same file.
fn normalise(path: &str) -> &str {
    path.trim_start_matches("./").trim_start_matches('/')
}

/// A function type as WebAssembly text writes it, e.g. `(i32, i32) -> i32`.
fn signature(ty: &FuncType) -> String {
    let list = |types: &[wasmi::ValType]| {
        types
            .iter()
            .map(|ty| format!("{ty:?}").to_ascii_lowercase())
            .collect::<Vec<_>>()
            .join(", ")
    };
    format!("({}) -> ({})", list(ty.params()), list(ty.results()))
}
