//! A Spinling function that uses its input: the execution input (JSON) arrives on stdin, the
//! result (JSON) leaves on stdout, and stderr is the execution's log.
//!
//! `{"name": "x"}` gives `{"greeting": "Hello, x!"}`; no input or no `name` greets the world;
//! input that is not JSON fails the execution (exit code 1) with the reason in the log.

use std::io::Read;
use std::process::ExitCode;

fn main() -> ExitCode {
    let mut input = String::new();
    if let Err(err) = std::io::stdin().read_to_string(&mut input) {
        eprintln!("echo: cannot read the input: {err}");
        return ExitCode::FAILURE;
    }
    let input: serde_json::Value = if input.trim().is_empty() {
        serde_json::Value::Null
    } else {
        match serde_json::from_str(&input) {
            Ok(value) => value,
            Err(err) => {
                eprintln!("echo: the input is not JSON: {err}");
                return ExitCode::FAILURE;
            }
        }
    };
    let name = input
        .get("name")
        .and_then(serde_json::Value::as_str)
        .unwrap_or("World");
    eprintln!("echo: greeting {name}");
    println!(
        "{}",
        serde_json::json!({ "greeting": format!("Hello, {name}!") })
    );
    ExitCode::SUCCESS
}
