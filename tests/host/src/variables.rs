//! Spin variables: name rules, `{{ name }}` templates, and resolution of app variables from
//! defaults, `SPIN_VARIABLE_<NAME>` environment variables and explicit overrides.

use std::collections::{BTreeMap, HashMap};

use anyhow::{bail, Context, Result};

/// Spin's rule for variable names (`spin_expressions::Key`): lower-case ASCII letters, digits
/// and single underscores, starting with a letter and ending with a letter or digit.
pub(crate) fn validate_name(name: &str) -> Result<(), String> {
    let Some(first) = name.chars().next() else {
        return Err("must not be empty".to_owned());
    };
    if let Some(c) = name
        .chars()
        .find(|c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '_'))
    {
        return Err(format!(
            "invalid character {c:?}. Variable names may contain only lower-case letters, numbers, and underscores."
        ));
    }
    if !first.is_ascii_lowercase() {
        return Err("must start with a lowercase ASCII letter".to_owned());
    }
    if !name.ends_with(|c: char| c.is_ascii_alphanumeric()) {
        return Err("must end with a lowercase ASCII letter or digit".to_owned());
    }
    if name.contains("__") {
        return Err("must not contain multiple consecutive underscores".to_owned());
    }
    Ok(())
}

/// An app variable declared in `[variables]`.
#[derive(Clone, Debug)]
pub(crate) struct Declared {
    pub default: Option<String>,
    pub required: bool,
}

/// Resolves every app variable once, at load: an explicit override wins over the process
/// environment (`SPIN_VARIABLE_<NAME>`), which wins over the manifest default. A variable with
/// no value anywhere is an error only if it is `required`; otherwise (no default, not
/// required) Spin's manifest rules already rejected it.
pub(crate) fn resolve_app_variables(
    declared: &BTreeMap<String, Declared>,
    overrides: &HashMap<String, String>,
    env: impl Fn(&str) -> Option<String>,
) -> Result<HashMap<String, String>> {
    for name in overrides.keys() {
        if !declared.contains_key(name) {
            bail!("variable override {name:?} is not declared in the manifest's [variables]");
        }
    }
    let mut values = HashMap::new();
    let mut missing = Vec::new();
    for (name, var) in declared {
        let env_name = format!("SPIN_VARIABLE_{}", name.to_ascii_uppercase());
        let value = overrides
            .get(name)
            .cloned()
            .or_else(|| env(&env_name))
            .or_else(|| var.default.clone());
        match value {
            Some(value) => {
                values.insert(name.clone(), value);
            }
            None if var.required => missing.push(format!("{name} (set {env_name})")),
            None => {}
        }
    }
    if !missing.is_empty() {
        bail!("required variables have no value: {}", missing.join(", "));
    }
    Ok(values)
}

/// Renders a Spin template: literal text with `{{ name }}` references to app variables.
pub(crate) fn render(template: &str, values: &HashMap<String, String>) -> Result<String> {
    let mut out = String::new();
    let mut rest = template;
    while let Some(start) = rest.find("{{") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let end = after
            .find("}}")
            .with_context(|| format!("unclosed '{{{{' in template {template:?}"))?;
        let name = after[..end].trim();
        validate_name(name)
            .map_err(|e| anyhow::anyhow!("invalid variable name {name:?} in {template:?}: {e}"))?;
        let value = values.get(name).with_context(|| {
            format!("template {template:?} refers to unknown variable {name:?}")
        })?;
        out.push_str(value);
        rest = &after[end + 2..];
    }
    out.push_str(rest);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_spin_rules() {
        for good in ["a", "api_key", "v2", "a_b_c"] {
            assert!(validate_name(good).is_ok(), "{good}");
        }
        for bad in ["", "A", "1a", "_a", "a_", "a__b", "a-b", "a.b"] {
            assert!(validate_name(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn templates_render_with_or_without_spaces() {
        let values = HashMap::from([("host".to_owned(), "example.com".to_owned())]);
        assert_eq!(
            render("https://{{host}}/x", &values).unwrap(),
            "https://example.com/x"
        );
        assert_eq!(render("{{ host }}", &values).unwrap(), "example.com");
        assert_eq!(render("literal", &values).unwrap(), "literal");
        assert!(render("{{ nope }}", &values).is_err());
        assert!(render("{{ host", &values).is_err());
    }

    #[test]
    fn overrides_beat_the_environment_which_beats_defaults() {
        let declared = BTreeMap::from([
            (
                "a".to_owned(),
                Declared {
                    default: Some("default".into()),
                    required: false,
                },
            ),
            (
                "b".to_owned(),
                Declared {
                    default: Some("default".into()),
                    required: false,
                },
            ),
            (
                "c".to_owned(),
                Declared {
                    default: Some("default".into()),
                    required: false,
                },
            ),
        ]);
        let env = |name: &str| {
            matches!(name, "SPIN_VARIABLE_B" | "SPIN_VARIABLE_C").then(|| "env".to_owned())
        };
        let overrides = HashMap::from([("c".to_owned(), "override".to_owned())]);
        let values = resolve_app_variables(&declared, &overrides, env).unwrap();
        assert_eq!(values["a"], "default");
        assert_eq!(values["b"], "env");
        assert_eq!(values["c"], "override");
    }

    #[test]
    fn a_required_variable_without_value_fails() {
        let declared = BTreeMap::from([(
            "required".to_owned(),
            Declared {
                default: None,
                required: true,
            },
        )]);
        let err = resolve_app_variables(&declared, &HashMap::new(), |_| None).unwrap_err();
        assert!(err.to_string().contains("SPIN_VARIABLE_REQUIRED"), "{err}");
    }
}
