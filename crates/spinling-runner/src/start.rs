//! Lifts a module's start section out, so the start function runs as a sliced, resumable call
//! like `_start` instead of unmetered inside instantiation.
//!
//! wasmi 2.0 runs a start function inside `instantiate_and_start`, with no way to pause it
//! (no pre-instance, no resumable start). So [`lift`] rewrites the module's bytes before they
//! are compiled: the start section is dropped and its function is exported under a name of
//! its own; [`Prepared`](crate::Prepared) compiles the result on an engine that refuses start
//! sections (so nothing can run unmetered even if this rewrite missed one), and the run calls
//! that export first, exactly where the start function would have run: after the instance's
//! memories and tables are initialised, before anything else.

/// The export name the lifted start function gets (made unique against the module's own).
const LIFTED_NAME: &str = "spinling:start";

const MAGIC_AND_VERSION: &[u8] = b"\0asm\x01\0\0\0";
const EXPORT_SECTION: u8 = 7;
const START_SECTION: u8 = 8;
const EXPORT_KIND_FUNC: u8 = 0;

/// The module with its start section lifted out: its bytes, and the export name of the start
/// function, if it had one.
pub(crate) struct Lifted {
    pub(crate) wasm: Vec<u8>,
    pub(crate) start_export: Option<String>,
}

/// Rewrites a module with a start section as described in the module docs. A module without
/// one, or bytes that are not a well-formed core module at the section level, come back
/// unchanged (the compiler then reports what is wrong, and refuses any start section).
pub(crate) fn lift(wasm: &[u8]) -> Lifted {
    lift_sections(wasm).unwrap_or_else(|| Lifted {
        wasm: wasm.to_vec(),
        start_export: None,
    })
}

/// One section: its id and its contents.
struct Section<'a> {
    id: u8,
    contents: &'a [u8],
}

fn lift_sections(wasm: &[u8]) -> Option<Lifted> {
    let mut rest = wasm.strip_prefix(MAGIC_AND_VERSION)?;
    let mut sections = Vec::new();
    while !rest.is_empty() {
        let (&id, after_id) = rest.split_first()?;
        let (size, after_size) = read_u32(after_id)?;
        let contents = after_size.get(..size as usize)?;
        rest = &after_size[size as usize..];
        sections.push(Section { id, contents });
    }
    let starts: Vec<&Section> = sections.iter().filter(|s| s.id == START_SECTION).collect();
    let [start] = starts.as_slice() else {
        // None: nothing to lift. Several: malformed, left for the compiler to refuse.
        return None;
    };
    let (start_func, trailing) = read_u32(start.contents)?;
    if !trailing.is_empty() {
        return None;
    }
    let names = match sections.iter().find(|s| s.id == EXPORT_SECTION) {
        Some(exports) => export_names(exports.contents)?,
        None => Vec::new(),
    };
    let mut name = LIFTED_NAME.to_string();
    while names.contains(&name.as_bytes()) {
        name.push('_');
    }
    let mut entry = Vec::new();
    write_u32(&mut entry, name.len() as u32);
    entry.extend_from_slice(name.as_bytes());
    entry.push(EXPORT_KIND_FUNC);
    write_u32(&mut entry, start_func);

    let has_exports = sections.iter().any(|s| s.id == EXPORT_SECTION);
    let mut out = MAGIC_AND_VERSION.to_vec();
    for section in &sections {
        match section.id {
            EXPORT_SECTION => {
                let (count, entries) = read_u32(section.contents)?;
                let mut contents = Vec::new();
                write_u32(&mut contents, count.checked_add(1)?);
                contents.extend_from_slice(entries);
                contents.extend_from_slice(&entry);
                push_section(&mut out, EXPORT_SECTION, &contents);
            }
            // The export section comes right before the start section in a module's
            // order, so a module without one gets it where its start section was.
            START_SECTION if !has_exports => {
                let mut contents = Vec::new();
                write_u32(&mut contents, 1);
                contents.extend_from_slice(&entry);
                push_section(&mut out, EXPORT_SECTION, &contents);
            }
            START_SECTION => {}
            id => push_section(&mut out, id, section.contents),
        }
    }
    Some(Lifted {
        wasm: out,
        start_export: Some(name),
    })
}

/// The names in an export section.
fn export_names(contents: &[u8]) -> Option<Vec<&[u8]>> {
    let (count, mut rest) = read_u32(contents)?;
    let mut names = Vec::new();
    for _ in 0..count {
        let (len, after_len) = read_u32(rest)?;
        names.push(after_len.get(..len as usize)?);
        let after_name = &after_len[len as usize..];
        let (_kind, after_kind) = after_name.split_first()?;
        let (_index, after_index) = read_u32(after_kind)?;
        rest = after_index;
    }
    Some(names)
}

fn push_section(out: &mut Vec<u8>, id: u8, contents: &[u8]) {
    out.push(id);
    write_u32(out, contents.len() as u32);
    out.extend_from_slice(contents);
}

/// An unsigned LEB128 `u32` (at most 5 bytes) and what follows it.
fn read_u32(bytes: &[u8]) -> Option<(u32, &[u8])> {
    let mut value: u64 = 0;
    for (i, byte) in bytes.iter().enumerate().take(5) {
        value |= u64::from(byte & 0x7f) << (7 * i);
        if byte & 0x80 == 0 {
            return Some((u32::try_from(value).ok()?, &bytes[i + 1..]));
        }
    }
    None
}

fn write_u32(out: &mut Vec<u8>, mut value: u32) {
    loop {
        let byte = (value & 0x7f) as u8;
        value >>= 7;
        if value == 0 {
            out.push(byte);
            return;
        }
        out.push(byte | 0x80);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wasm(wat: &str) -> Vec<u8> {
        wat::parse_str(wat).unwrap()
    }

    fn exports(wasm: &[u8]) -> Vec<String> {
        let engine = wasmi::Engine::default();
        let module = wasmi::Module::new(&engine, wasm).unwrap();
        module.exports().map(|e| e.name().to_string()).collect()
    }

    #[test]
    fn a_module_without_a_start_section_is_unchanged() {
        let original = wasm(r#"(module (func (export "_start")))"#);
        let lifted = lift(&original);
        assert_eq!(lifted.wasm, original);
        assert_eq!(lifted.start_export, None);
    }

    #[test]
    fn the_start_function_becomes_an_export_and_the_section_goes() {
        let original = wasm(
            r#"(module (func $init) (func (export "_start")) (start $init)
                 (memory (export "memory") 1))"#,
        );
        let lifted = lift(&original);
        assert_eq!(lifted.start_export.as_deref(), Some("spinling:start"));
        assert_eq!(
            exports(&lifted.wasm),
            ["_start", "memory", "spinling:start"]
        );
        let mut config = wasmi::Config::default();
        config.allow_start_fn(false);
        assert!(wasmi::Module::new(&wasmi::Engine::new(&config), &lifted.wasm).is_ok());
        assert!(wasmi::Module::new(&wasmi::Engine::new(&config), &original).is_err());
    }

    #[test]
    fn the_lifted_name_does_not_clash_with_the_module_s_exports() {
        let lifted = lift(&wasm(
            r#"(module (func $init) (func (export "_start")) (start $init)
                 (func (export "spinling:start")))"#,
        ));
        assert_eq!(lifted.start_export.as_deref(), Some("spinling:start_"));
        assert_eq!(
            exports(&lifted.wasm),
            ["_start", "spinling:start", "spinling:start_"]
        );
    }

    #[test]
    fn a_module_without_exports_gets_an_export_section() {
        let lifted = lift(&wasm(r#"(module (func $init) (start $init))"#));
        assert_eq!(exports(&lifted.wasm), ["spinling:start"]);
    }

    #[test]
    fn bytes_that_are_not_a_module_are_left_as_they_are() {
        let garbage = b"\0asm\x01\0\0\0\x08\xff".to_vec();
        assert_eq!(lift(&garbage).wasm, garbage);
        assert_eq!(lift(b"nope").start_export, None);
    }
}
