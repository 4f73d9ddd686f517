//! Reading a Spin manifest (`spin_manifest_version = 2`) into what the host needs.
//!
//! Only what Spinling uses is accepted; anything the host would otherwise silently ignore but
//! that changes behaviour (other trigger types, `files`, component dependencies, remote
//! sources, the Wagi executor) is an error at load, so that a test never passes by accident.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use anyhow::{bail, ensure, Context, Result};
use serde::Deserialize;

use crate::allowed_hosts::AllowedHosts;
use crate::variables::{self, Declared};

#[derive(Deserialize)]
struct RawManifest {
    spin_manifest_version: toml::Value,
    #[serde(default)]
    variables: BTreeMap<String, RawVariable>,
    #[serde(default)]
    trigger: BTreeMap<String, toml::Value>,
    #[serde(default)]
    component: BTreeMap<String, RawComponent>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawVariable {
    default: Option<String>,
    #[serde(default)]
    required: bool,
    /// Accepted as in Spin, where it only hides the value from logs.
    #[serde(default, rename = "secret")]
    _secret: bool,
}

#[derive(Deserialize)]
struct RawHttpTrigger {
    route: RawRoute,
    component: toml::Value,
    executor: Option<toml::Value>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum RawRoute {
    Path(String),
    Private { private: bool },
}

#[derive(Deserialize)]
struct RawComponent {
    source: toml::Value,
    #[serde(default)]
    key_value_stores: Vec<String>,
    #[serde(default)]
    sqlite_databases: Vec<String>,
    #[serde(default)]
    allowed_outbound_hosts: Vec<String>,
    #[serde(default)]
    allowed_http_hosts: Vec<String>,
    #[serde(default)]
    variables: BTreeMap<String, String>,
    #[serde(default)]
    environment: BTreeMap<String, String>,
    #[serde(default)]
    files: Vec<toml::Value>,
    #[serde(default)]
    dependencies: BTreeMap<String, toml::Value>,
    build: Option<RawBuild>,
}

#[derive(Deserialize)]
struct RawBuild {
    command: Option<toml::Value>,
    workdir: Option<String>,
}

/// A loaded manifest, with variables resolved and every path absolute.
pub(crate) struct Manifest {
    pub components: Vec<ComponentConfig>,
    /// `(component id, route)` for every public HTTP trigger, in manifest order.
    pub routes: Vec<(String, String)>,
}

pub(crate) struct ComponentConfig {
    pub id: String,
    pub source: PathBuf,
    pub key_value_stores: Vec<String>,
    pub sqlite_databases: Vec<String>,
    pub allowed_hosts: AllowedHosts,
    /// Component variable name → rendered value.
    pub variables: HashMap<String, String>,
    pub environment: Vec<(String, String)>,
}

impl Manifest {
    /// Reads and validates `path`, resolving variables with `overrides` and the process env.
    pub fn load(path: &Path, overrides: &HashMap<String, String>) -> Result<Self> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read Spin manifest {}", path.display()))?;
        let raw: RawManifest = toml::from_str(&text)
            .with_context(|| format!("invalid Spin manifest {}", path.display()))?;
        let base = path
            .parent()
            .map(|p| {
                if p.as_os_str().is_empty() {
                    Path::new(".")
                } else {
                    p
                }
            })
            .unwrap_or(Path::new("."));
        let base = std::path::absolute(base)?;
        Self::from_raw(raw, &base, overrides).with_context(|| format!("in {}", path.display()))
    }

    fn from_raw(
        raw: RawManifest,
        base: &Path,
        overrides: &HashMap<String, String>,
    ) -> Result<Self> {
        ensure!(
            raw.spin_manifest_version.as_integer() == Some(2),
            "only spin_manifest_version = 2 is supported"
        );

        let mut declared = BTreeMap::new();
        for (name, var) in raw.variables {
            variables::validate_name(&name)
                .map_err(|e| anyhow::anyhow!("variable {name:?}: {e}"))?;
            ensure!(
                var.default.is_some() != var.required,
                "variable {name:?} must have either a default or `required = true`"
            );
            declared.insert(
                name,
                Declared {
                    default: var.default,
                    required: var.required,
                },
            );
        }
        let app_values = variables::resolve_app_variables(&declared, overrides, |name| {
            std::env::var(name).ok()
        })?;

        let mut routes = Vec::new();
        let mut used = Vec::new();
        for (kind, triggers) in raw.trigger {
            ensure!(
                kind == "http",
                "trigger type {kind:?} is not supported by the Spinling test host"
            );
            let triggers: Vec<RawHttpTrigger> =
                triggers.try_into().context("invalid [[trigger.http]]")?;
            for trigger in triggers {
                let id = trigger
                    .component
                    .as_str()
                    .context("inline components are not supported by the Spinling test host; use `component = \"<id>\"`")?
                    .to_owned();
                ensure!(
                    raw.component.contains_key(&id),
                    "trigger refers to unknown component {id:?}"
                );
                if let Some(executor) = trigger.executor {
                    let kind = executor.get("type").and_then(|t| t.as_str());
                    ensure!(
                        kind.is_none_or(|k| k == "http" || k == "spin"),
                        "component {id:?}: only the default HTTP executor is supported"
                    );
                }
                match trigger.route {
                    RawRoute::Path(route) => routes.push((id.clone(), route)),
                    RawRoute::Private { private: true } => {}
                    RawRoute::Private { private: false } => {
                        bail!("route must be a string pattern or '{{ private = true }}': component {id:?} has {{ private = false }}")
                    }
                }
                used.push(id);
            }
        }

        let mut components = Vec::new();
        for (id, raw) in raw.component {
            if !used.contains(&id) {
                continue;
            }
            components.push(
                component(&id, raw, base, &app_values)
                    .with_context(|| format!("component {id:?}"))?,
            );
        }
        Ok(Self { components, routes })
    }
}

fn component(
    id: &str,
    raw: RawComponent,
    base: &Path,
    app_values: &HashMap<String, String>,
) -> Result<ComponentConfig> {
    let source = raw
        .source
        .as_str()
        .context("only a local file path is supported as `source` by the Spinling test host")?;
    ensure!(
        raw.files.is_empty(),
        "`files` is not supported by the Spinling test host"
    );
    ensure!(
        raw.dependencies.is_empty(),
        "component dependencies are not supported by the Spinling test host"
    );
    ensure!(
        raw.allowed_http_hosts.is_empty(),
        "`allowed_http_hosts` is obsolete; use `allowed_outbound_hosts`"
    );

    let source = base.join(source);
    if !source.is_file() {
        let build = match raw.build.and_then(|b| Some((b.command?, b.workdir))) {
            Some((command, workdir)) => {
                let command = match command {
                    toml::Value::String(s) => s,
                    toml::Value::Array(parts) => parts
                        .iter()
                        .filter_map(|p| p.as_str())
                        .collect::<Vec<_>>()
                        .join(" && "),
                    other => other.to_string(),
                };
                let dir = base.join(workdir.unwrap_or_default());
                format!("`{command}` in {}", dir.display())
            }
            None => "`cargo build --target wasm32-wasip1 --release -p <crate>`".to_owned(),
        };
        bail!(
            "wasm file {} does not exist: build it first with {build}",
            source.display()
        );
    }

    let mut variables = HashMap::new();
    for (name, template) in raw.variables {
        variables::validate_name(&name).map_err(|e| anyhow::anyhow!("variable {name:?}: {e}"))?;
        let value = variables::render(&template, app_values)
            .with_context(|| format!("variable {name:?}"))?;
        variables.insert(name, value);
    }
    let hosts = raw
        .allowed_outbound_hosts
        .iter()
        .map(|h| variables::render(h, app_values))
        .collect::<Result<Vec<_>>>()?;

    Ok(ComponentConfig {
        id: id.to_owned(),
        source,
        key_value_stores: raw.key_value_stores,
        sqlite_databases: raw.sqlite_databases,
        allowed_hosts: AllowedHosts::parse(&hosts)?,
        variables,
        environment: raw.environment.into_iter().collect(),
    })
}
