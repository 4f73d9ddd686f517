//! Test helpers shared by the core's unit tests, the runner's tests and the black-box tests.

use std::io::Write;

pub mod hostile;
pub mod rig;

/// A zip archive holding `files`, as a user's `zip` would make it (deflated).
pub fn zip_of(files: &[(&str, &[u8])]) -> Vec<u8> {
    let mut buffer = std::io::Cursor::new(Vec::new());
    let mut writer = zip::ZipWriter::new(&mut buffer);
    for (name, content) in files {
        writer
            .start_file(*name, zip::write::SimpleFileOptions::default())
            .expect("an in-memory zip accepts any entry");
        writer
            .write_all(content)
            .expect("an in-memory zip accepts any content");
    }
    writer.finish().expect("an in-memory zip finishes");
    buffer.into_inner()
}

/// `len` bytes that do not compress (xorshift), different for each `seed`: a zip of them is
/// as large as they are.
pub fn incompressible(seed: u64, len: usize) -> Vec<u8> {
    let mut state = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state >> 24) as u8
        })
        .collect()
}

/// A package holding a module written in WAT, as `main.wasm`.
pub fn wat_package(wat: &str) -> Vec<u8> {
    zip_of(&[("main.wasm", &wat::parse_str(wat).unwrap())])
}

/// Fails when a `.rs` file directly in `tests_dir` (a crate's `tests/`) is not declared as a
/// module of `tests_dir/main.rs`. Each test crate builds one test binary from `main.rs`
/// (`autotests = false`, so that wasmtime and the app are linked once, not once per file):
/// without this check, a new test file nobody declares would never be compiled or run.
pub fn assert_every_test_file_is_a_module(tests_dir: &std::path::Path) {
    let main = std::fs::read_to_string(tests_dir.join("main.rs"))
        .unwrap_or_else(|e| panic!("{}/main.rs: {e}", tests_dir.display()));
    let declared: Vec<&str> = main
        .lines()
        .filter_map(|line| line.trim().strip_prefix("mod "))
        .filter_map(|rest| rest.strip_suffix(';'))
        .collect();
    let mut undeclared = Vec::new();
    for entry in std::fs::read_dir(tests_dir).unwrap() {
        let path = entry.unwrap().path();
        let Some(stem) = path.file_stem().and_then(|s| s.to_str()) else {
            continue;
        };
        let is_rust = path.extension().is_some_and(|e| e == "rs");
        if is_rust && stem != "main" && !declared.contains(&stem) {
            undeclared.push(stem.to_string());
        }
    }
    assert!(
        undeclared.is_empty(),
        "declare {undeclared:?} in {}/main.rs (`mod <name>;`), or they never run",
        tests_dir.display()
    );
}

/// A multipart/form-data body with text fields and an optional `package` file part.
pub fn multipart(fields: &[(&str, &str)], package: Option<&[u8]>) -> (String, Vec<u8>) {
    let boundary = "spinling-test-boundary-7MA4YWxkTrZu0gW";
    let mut body = Vec::new();
    for (name, value) in fields {
        write!(
            body,
            "--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n{value}\r\n"
        )
        .unwrap();
    }
    if let Some(package) = package {
        write!(
            body,
            "--{boundary}\r\nContent-Disposition: form-data; name=\"package\"; filename=\"package.zip\"\r\nContent-Type: application/zip\r\n\r\n"
        )
        .unwrap();
        body.extend_from_slice(package);
        body.extend_from_slice(b"\r\n");
    }
    write!(body, "--{boundary}--\r\n").unwrap();
    (format!("multipart/form-data; boundary={boundary}"), body)
}
