//! The `spin-test-host` binary and load errors, as a developer meets them.

use crate::common;

use std::io::{BufRead, BufReader, Read, Write};
use std::process::{Command, Stdio};

use spin_test_host::{BlockingApp, HostOptions};

#[test]
fn the_binary_serves_the_app_with_variables_from_env_and_flags() {
    let state = tempfile::tempdir().unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_spin-test-host"))
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--variable",
            "token=from-flag",
        ])
        .arg("--manifest")
        .arg(common::manifest())
        .arg("--state-dir")
        .arg(state.path())
        .env("SPIN_VARIABLE_GREETING", "bonjour")
        .env("SPIN_VARIABLE_TOKEN", "from-env")
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut first = String::new();
    stdout.read_line(&mut first).unwrap();
    let mut listing = String::new();
    for _ in 0..3 {
        stdout.read_line(&mut listing).unwrap();
    }

    let addr = first
        .trim()
        .strip_prefix("Serving http://")
        .unwrap_or_else(|| panic!("{first}"))
        .to_owned();
    let mut stream = std::net::TcpStream::connect(&addr).unwrap();
    write!(
        stream,
        "GET /variables/message HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    child.kill().unwrap();
    child.wait().unwrap();

    assert!(!addr.ends_with(":0"), "{first}");
    assert!(
        listing.starts_with("Available Routes:\n  echo: http://"),
        "{listing}"
    );
    assert!(response.starts_with("HTTP/1.1 200 OK\r\n"), "{response}");
    assert!(
        response.contains("\r\nbonjour, from-flag!\r\n"),
        "{response}"
    );
}

#[test]
fn a_missing_wasm_file_is_a_load_error_naming_it_and_the_build_command() {
    let dir = tempfile::tempdir().unwrap();
    let manifest = dir.path().join("spin.toml");
    std::fs::write(
        &manifest,
        r#"spin_manifest_version = 2
[application]
name = "missing"
[[trigger.http]]
route = "/..."
component = "gone"
[component.gone]
source = "target/wasm32-wasip1/release/gone.wasm"
[component.gone.build]
command = "cargo build --target wasm32-wasip1 --release"
"#,
    )
    .unwrap();

    let err = BlockingApp::load(HostOptions::new(&manifest, dir.path().join(".spin")))
        .err()
        .expect("the load must fail");
    let output = Command::new(env!("CARGO_BIN_EXE_spin-test-host"))
        .arg("serve")
        .arg("--manifest")
        .arg(&manifest)
        .output()
        .unwrap();

    let message = format!("{err:#}");
    assert!(message.contains("gone.wasm does not exist"), "{message}");
    assert!(
        message.contains("`cargo build --target wasm32-wasip1 --release`"),
        "{message}"
    );
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("gone.wasm does not exist"));
}

#[test]
fn unsupported_manifest_features_are_rejected_at_load() {
    let dir = tempfile::tempdir().unwrap();
    let manifest = dir.path().join("spin.toml");
    let wasm = common::fixture_wasm("echo");
    for (extra, expected) in [
        (
            "[[trigger.redis]]\nchannel = \"c\"\ncomponent = \"echo\"\n",
            "trigger type \"redis\"",
        ),
        (
            "[component.echo.dependencies]\n\"a:b/c\" = \"1.0.0\"\n",
            "dependencies are not supported",
        ),
    ] {
        std::fs::write(
            &manifest,
            format!(
                "spin_manifest_version = 2\n[application]\nname = \"x\"\n[[trigger.http]]\nroute = \"/...\"\ncomponent = \"echo\"\n[component.echo]\nsource = \"{}\"\n{extra}",
                wasm.display()
            ),
        )
        .unwrap();

        let err = BlockingApp::load(HostOptions::new(&manifest, dir.path().join(".spin")))
            .err()
            .expect("the load must fail");

        assert!(format!("{err:#}").contains(expected), "{err:#}");
    }
}
