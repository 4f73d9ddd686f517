//! The real client: python-openstackclient with python-qinlingclient, pointed at the app
//! served over loopback by the test host: with `--os-auth-type none`, as against Qinling with
//! auth disabled, and with Keystone passwords, finding the app in Keystone's catalog.

use serde_json::Value as Json;
use spinling_api_tests::keystone::{start_app, Keystone};
use spinling_api_tests::{example_package, package, python_tool, Api};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

/// The `openstack` executable, installed on first use; `None` only when PyPI is unreachable.
fn openstack() -> Option<&'static Path> {
    static CLI: OnceLock<Option<PathBuf>> = OnceLock::new();
    CLI.get_or_init(|| {
        python_tool(
            "openstack-cli",
            &[
                "python-qinlingclient==5.1.1",
                "python-openstackclient==10.5.0",
            ],
            "openstack",
        )
    })
    .as_deref()
}

struct Cli<'a> {
    exe: &'a Path,
    /// How it logs in and finds the app.
    auth: Vec<String>,
    dir: tempfile::TempDir,
}

impl Cli<'_> {
    fn run(&self, args: &[&str]) -> String {
        let output = Command::new(self.exe)
            .args(&self.auth)
            .args(args)
            .current_dir(self.dir.path())
            .output()
            .expect("openstack runs");
        let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
        assert!(
            output.status.success(),
            "openstack {args:?} failed:\n{stdout}\n{}",
            String::from_utf8_lossy(&output.stderr)
        );
        stdout
    }

    fn json(&self, args: &[&str]) -> Json {
        let mut all = args.to_vec();
        all.extend(["-f", "json"]);
        let out = self.run(&all);
        serde_json::from_str(&out)
            .unwrap_or_else(|e| panic!("openstack {args:?}: not JSON ({e}): {out}"))
    }

    fn fails(&self, args: &[&str]) -> String {
        let output = Command::new(self.exe)
            .args(&self.auth)
            .args(args)
            .output()
            .expect("openstack runs");
        assert!(!output.status.success(), "openstack {args:?} should fail");
        String::from_utf8_lossy(&output.stderr).into_owned()
    }
}

fn with_cli(scenario: impl FnOnce(&Cli)) {
    let Some(exe) = openstack() else { return };
    let api = Api::start();
    let address = api.app.serve_in_background();
    let cli = Cli {
        exe,
        auth: [
            "--os-auth-type",
            "none",
            "--os-endpoint",
            &format!("http://{address}"),
        ]
        .map(String::from)
        .to_vec(),
        dir: tempfile::tempdir().unwrap(),
    };
    scenario(&cli);
}

#[test]
fn the_openstack_cli_works_with_keystone_tokens_and_projects() {
    let Some(exe) = openstack() else { return };
    let keystone = Keystone::shared();
    let api = start_app(&keystone.variables("300"));
    let address = api.app.serve_in_background();
    keystone.register_endpoint("function-engine", &format!("http://{address}"));
    let as_user = |user: &str| Cli {
        exe,
        auth: keystone.cli_options(user),
        dir: tempfile::tempdir().unwrap(),
    };
    let (admin, alpha, beta) = (
        as_user("admin"),
        as_user("alpha_member"),
        as_user("beta_member"),
    );

    let err = alpha.fails(&["runtime", "create", "spinling/wasm"]);
    assert!(err.contains("Operation not allowed"), "{err}");
    let runtime = admin.json(&["runtime", "create", "spinling/wasm", "--name", "wasm"]);
    let runtime_id = runtime["id"].as_str().unwrap();

    let zip = alpha.dir.path().join("hello.zip");
    std::fs::write(&zip, example_package("hello")).unwrap();
    let function = alpha.json(&[
        "function",
        "create",
        "--runtime",
        runtime_id,
        "--package",
        zip.to_str().unwrap(),
    ]);
    let fid = function["id"].as_str().unwrap();
    assert_eq!(function["project_id"], keystone.project_id("alpha"));
    let v1 = alpha.json(&["function", "version", "create", fid]);
    assert_eq!(v1["version_number"], 1);
    let execution = alpha.json(&[
        "function",
        "execution",
        "create",
        "--function",
        fid,
        "--function-version",
        "1",
    ]);
    assert_eq!(execution["status"], "success", "{execution}");

    assert!(beta
        .json(&["function", "list"])
        .as_array()
        .unwrap()
        .is_empty());
    let err = beta.fails(&["function", "version", "list", fid]);
    assert!(
        err.contains(&format!("Function not found [id={fid}]")),
        "{err}"
    );
    let err = beta.fails(&["function", "execution", "create", "--function", fid]);
    assert!(err.contains("Function not found"), "{err}");
}

#[test]
fn the_openstack_cli_manages_functions_versions_and_aliases() {
    with_cli(|cli| {
        let runtime = cli.json(&["runtime", "create", "spinling/wasm", "--name", "wasm"]);
        let runtime_id = runtime["id"].as_str().unwrap().to_string();
        assert_eq!(
            cli.json(&["runtime", "show", &runtime_id])["status"],
            "available"
        );

        let zip = cli.dir.path().join("hello.zip");
        std::fs::write(&zip, package("hello")).unwrap();
        let function = cli.json(&[
            "function",
            "create",
            "--runtime",
            &runtime_id,
            "--package",
            zip.to_str().unwrap(),
            "--name",
            "hello",
        ]);
        let fid = function["id"].as_str().unwrap().to_string();
        assert_eq!(cli.json(&["function", "show", &fid])["name"], "hello");
        let list = cli.json(&["function", "list"]);
        assert!(list
            .as_array()
            .unwrap()
            .iter()
            .any(|f| f["Id"] == fid.as_str()));

        // Versions: create, list, show, detach, delete.
        let v1 = cli.json(&[
            "function",
            "version",
            "create",
            &fid,
            "--description",
            "first",
        ]);
        assert_eq!(v1["version_number"], 1);
        assert_eq!(v1["description"], "first");
        let err = cli.fails(&["function", "version", "create", &fid]);
        assert!(
            err.contains("Function package not changed since the latest version 1."),
            "{err}"
        );

        let file = cli.dir.path().join("main.py");
        std::fs::write(&file, "def main(**kwargs):\n    return 'v2'\n").unwrap();
        cli.run(&["function", "update", &fid, "--file", file.to_str().unwrap()]);
        let v2 = cli.json(&["function", "version", "create", &fid]);
        assert_eq!(v2["version_number"], 2);

        let versions = cli.json(&["function", "version", "list", &fid]);
        let numbers: Vec<i64> = versions
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v["Version_number"].as_i64().unwrap())
            .collect();
        assert_eq!(numbers, vec![1, 2]);
        assert_eq!(
            cli.json(&["function", "version", "show", &fid, "2"])["version_number"],
            2
        );
        let detached = cli.run(&["function", "version", "detach", &fid, "1"]);
        assert!(detached.contains("has been accepted"), "{detached}");

        // Aliases.
        let alias = cli.json(&[
            "function",
            "alias",
            "create",
            "prod",
            "--function",
            &fid,
            "--function-version",
            "1",
        ]);
        assert_eq!(alias["function_version"], 1);
        let aliases = cli.json(&["function", "alias", "list"]);
        assert_eq!(aliases[0]["Name"], "prod");
        assert_eq!(
            cli.json(&["function", "alias", "show", "prod"])["function_id"],
            fid.as_str()
        );
        let err = cli.fails(&["function", "version", "delete", &fid, "1"]);
        assert!(
            err.contains("The function version is still associated with alias."),
            "{err}"
        );
        cli.run(&["function", "alias", "delete", "prod"]);

        cli.run(&["function", "version", "delete", &fid, "2"]);
        let versions = cli.json(&["function", "version", "list", &fid]);
        assert_eq!(versions.as_array().unwrap().len(), 1);

        cli.run(&["function", "delete", &fid]);
        assert!(cli
            .json(&["function", "list"])
            .as_array()
            .unwrap()
            .is_empty());
    });
}
