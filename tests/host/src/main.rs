//! `spin-test-host serve`: serves a Spin app on a loopback port, in place of `spin up`, so that
//! curl, real clients and load generators can be pointed at the real components.

use std::process::ExitCode;

use anyhow::{bail, Context, Result};
use spin_test_host::{HostOptions, SpinApp};
use tokio::net::TcpListener;

const USAGE: &str = "usage: spin-test-host serve [--manifest spin.toml] [--listen 127.0.0.1:3000] \
[--state-dir .spin] [--runtime-config-file F] [--variable name=value ...]";

struct Args {
    manifest: String,
    listen: String,
    state_dir: String,
    runtime_config: Option<String>,
    variables: Vec<(String, String)>,
}

fn parse(mut args: impl Iterator<Item = String>) -> Result<Args> {
    match args.next().as_deref() {
        Some("serve") => {}
        Some("-h" | "--help") | None => bail!("{USAGE}"),
        Some(other) => bail!("unknown command {other:?}\n{USAGE}"),
    }
    let mut parsed = Args {
        manifest: "spin.toml".to_owned(),
        listen: "127.0.0.1:3000".to_owned(),
        state_dir: ".spin".to_owned(),
        runtime_config: None,
        variables: Vec::new(),
    };
    while let Some(flag) = args.next() {
        let mut value = || {
            args.next()
                .with_context(|| format!("{flag} needs a value\n{USAGE}"))
        };
        match flag.as_str() {
            "--manifest" | "-f" => parsed.manifest = value()?,
            "--listen" => parsed.listen = value()?,
            "--state-dir" => parsed.state_dir = value()?,
            "--runtime-config-file" => parsed.runtime_config = Some(value()?),
            "--variable" => {
                let pair = value()?;
                let (name, value) = pair
                    .split_once('=')
                    .with_context(|| format!("--variable {pair:?} is not name=value"))?;
                parsed.variables.push((name.to_owned(), value.to_owned()));
            }
            other => bail!("unknown option {other:?}\n{USAGE}"),
        }
    }
    Ok(parsed)
}

async fn serve(args: Args) -> Result<()> {
    let mut opts = args.variables.iter().fold(
        HostOptions::new(&args.manifest, &args.state_dir),
        |opts, (name, value)| opts.variable(name, value),
    );
    if let Some(path) = &args.runtime_config {
        opts = opts.runtime_config(path);
    }
    let app = SpinApp::load(opts)
        .await
        .with_context(|| format!("cannot load {}", args.manifest))?;
    let listener = TcpListener::bind(&args.listen)
        .await
        .with_context(|| format!("cannot listen on {}", args.listen))?;
    let base = format!("http://{}", listener.local_addr()?);
    println!("Serving {base}");
    println!("Available Routes:");
    for (component, route) in app.routes() {
        println!("  {component}: {base}{route}");
    }
    app.serve(listener).await
}

#[tokio::main]
async fn main() -> ExitCode {
    let result = match parse(std::env::args().skip(1)) {
        Ok(args) => serve(args).await,
        Err(err) => Err(err),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("Error: {err:#}");
            ExitCode::FAILURE
        }
    }
}
