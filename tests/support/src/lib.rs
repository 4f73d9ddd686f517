//! Test helpers shared by the core's unit tests, the runner's tests and the black-box tests.

use std::io::Write;

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
