//! Measures wasmi's fuel rate on this machine with a real function, to check
//! `FUEL_PER_SECOND`:
//!
//! ```sh
//! cargo run --release -p spinling-runner --example fuel_rate -- path/to/function.wasm [INPUT]
//! ```
//!
//! The module runs five times with a generous limit; the rate is fuel burned per second of
//! run time (instantiation included, so use a function that computes for a while).

use spinling_runner::{run, Prepared, RunLimits, FUEL_PER_SECOND};

fn main() {
    let mut args = std::env::args().skip(1);
    let Some(path) = args.next() else {
        eprintln!("usage: fuel_rate FUNCTION.wasm [INPUT]");
        std::process::exit(2);
    };
    let input = args.next().unwrap_or_default();
    let wasm = std::fs::read(&path).unwrap_or_else(|err| panic!("cannot read {path}: {err}"));
    let prepared = Prepared::from_wasm(&path, wasm).unwrap_or_else(|err| panic!("{err}"));
    let limits = RunLimits {
        timeout_seconds: 60,
        memory_bytes: 1 << 30,
    };
    for _ in 0..5 {
        let outcome = run(&prepared, input.as_bytes(), &limits);
        let rate = outcome.fuel_consumed as f64 / outcome.duration.as_secs_f64();
        println!(
            "{:?}: {} fuel in {:?} = {:.0} million fuel/s (FUEL_PER_SECOND: {} million)",
            outcome.status,
            outcome.fuel_consumed,
            outcome.duration,
            rate / 1e6,
            FUEL_PER_SECOND / 1_000_000
        );
    }
}
