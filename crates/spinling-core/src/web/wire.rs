//! Typed JSON bodies as Qinling's WSME handlers validate them: unknown attributes, read-only
//! attributes, wrong types and over-long strings are 400s with WSME's messages, never 500s.

use crate::domain::json::JsonLimits;
use crate::domain::types::{NotAUuid, VersionRef};
use crate::error::{ApiError, ApiResult};
use crate::web::limits::MAX_TEXT;
use serde_json::{Map, Value as Json};

/// Integers are kept inside SQLite's and Python's comfortable range; larger is "absurd".
const MAX_INT: i64 = i32::MAX as i64;

#[derive(Debug, Clone, Copy)]
pub enum FieldType {
    Text(usize),
    Int {
        min: i64,
    },
    Bool,
    Uuid,
    /// A JSON object, checked by whoever reads it (`Body::object`).
    Object,
}

#[derive(Debug, Clone, Copy)]
pub struct Field {
    pub name: &'static str,
    pub ty: FieldType,
    pub read_only: bool,
}

impl Field {
    pub const fn text(name: &'static str) -> Field {
        Field {
            name,
            ty: FieldType::Text(MAX_TEXT),
            read_only: false,
        }
    }
    pub const fn int(name: &'static str, min: i64) -> Field {
        Field {
            name,
            ty: FieldType::Int { min },
            read_only: false,
        }
    }
    pub const fn boolean(name: &'static str) -> Field {
        Field {
            name,
            ty: FieldType::Bool,
            read_only: false,
        }
    }
    pub const fn uuid(name: &'static str) -> Field {
        Field {
            name,
            ty: FieldType::Uuid,
            read_only: false,
        }
    }
    pub const fn object(name: &'static str) -> Field {
        Field {
            name,
            ty: FieldType::Object,
            read_only: false,
        }
    }
    pub const fn read_only(self) -> Field {
        Field {
            read_only: true,
            ..self
        }
    }
}

/// Attributes every resource has and no client sets.
const COMMON_READ_ONLY: &[&str] = &["id", "project_id", "created_at", "updated_at"];

/// A validated body: every present attribute has the declared type; `null` means unset.
#[derive(Debug, Default)]
pub struct Body(Map<String, Json>);

impl Body {
    pub fn text(&self, name: &str) -> Option<String> {
        self.0.get(name).and_then(|v| v.as_str()).map(str::to_owned)
    }
    pub fn int(&self, name: &str) -> Option<i64> {
        self.0.get(name).and_then(Json::as_i64)
    }
    pub fn boolean(&self, name: &str) -> Option<bool> {
        self.0.get(name).and_then(Json::as_bool)
    }
    /// An `object` attribute: `None` when absent, `Some(None)` when `null`.
    pub fn object(&self, name: &str) -> Option<Option<&Map<String, Json>>> {
        self.0.get(name).map(Json::as_object)
    }
    pub fn has(&self, name: &str) -> bool {
        self.0.get(name).is_some_and(|v| !v.is_null())
    }
    /// A `uuid` attribute as the id type `parse` makes (WSME's message if it is none).
    pub fn id<T>(
        &self,
        name: &str,
        parse: impl Fn(&str) -> Result<T, NotAUuid>,
    ) -> ApiResult<Option<T>> {
        match self.text(name) {
            None => Ok(None),
            Some(text) => parse(&text)
                .map(Some)
                .map_err(|e| invalid(name, &Json::String(text), &e.to_string())),
        }
    }
    /// An attribute naming a function's code: `0` for its current code, else a version
    /// number (the field's minimum of 0 keeps anything else out).
    pub fn version_ref(&self, name: &str) -> Option<VersionRef> {
        self.int(name).and_then(VersionRef::from_wire)
    }
    /// Qinling's message for required attributes, listing those that are missing.
    pub fn require(&self, names: &[&str]) -> ApiResult<()> {
        let missing: Vec<String> = names
            .iter()
            .filter(|n| !self.has(n))
            .map(|n| format!("'{n}'"))
            .collect();
        if missing.is_empty() {
            Ok(())
        } else {
            Err(ApiError::bad_request(format!(
                "Required param is missing. Required: {{{}}}",
                missing.join(", ")
            )))
        }
    }
}

fn invalid(field: &str, value: &Json, why: &str) -> ApiError {
    let shown = match value {
        Json::String(s) => s.clone(),
        other => other.to_string(),
    };
    ApiError::bad_request(format!(
        "Invalid input for field/attribute {field}. Value: '{shown}'. {why}"
    ))
}

fn type_name(value: &Json) -> &'static str {
    match value {
        Json::Null => "NoneType",
        Json::Bool(_) => "bool",
        Json::Number(n) if n.is_f64() => "float",
        Json::Number(_) => "int",
        Json::String(_) => "str",
        Json::Array(_) => "list",
        Json::Object(_) => "dict",
    }
}

/// Checks one attribute value and returns it normalised (numeric strings become integers).
pub fn check_value(field: &Field, value: &Json) -> ApiResult<Json> {
    if value.is_null() {
        return Ok(Json::Null);
    }
    let wrong = |expected: &str| {
        invalid(
            field.name,
            value,
            &format!(
                "Wrong type. Expected '{expected}', got '{}'",
                type_name(value)
            ),
        )
    };
    match field.ty {
        FieldType::Text(max) => {
            let s = value.as_str().ok_or_else(|| wrong("str"))?;
            if s.chars().count() > max {
                return Err(invalid(
                    field.name,
                    value,
                    &format!("Value should have a maximum character requirement of {max}"),
                ));
            }
            Ok(value.clone())
        }
        FieldType::Uuid => {
            let s = value.as_str().ok_or_else(|| wrong("uuid"))?;
            if !crate::id::is_uuid(s) {
                return Err(invalid(
                    field.name,
                    value,
                    &format!("Expected a uuid but received {s}."),
                ));
            }
            Ok(value.clone())
        }
        FieldType::Object => match value {
            Json::Object(_) => Ok(value.clone()),
            _ => Err(wrong("dict")),
        },
        FieldType::Bool => match value {
            Json::Bool(_) => Ok(value.clone()),
            Json::String(s) => crate::web::http::parse_bool(s)
                .map(Json::Bool)
                .ok_or_else(|| wrong("bool")),
            _ => Err(wrong("bool")),
        },
        FieldType::Int { min } => {
            let n = match value {
                Json::Number(n) => n.as_i64().ok_or_else(|| wrong("int"))?,
                Json::String(s) => s.trim().parse::<i64>().map_err(|_| wrong("int"))?,
                _ => return Err(wrong("int")),
            };
            if n < min {
                return Err(invalid(
                    field.name,
                    value,
                    &format!("Value should be greater or equal to {min}"),
                ));
            }
            if n > MAX_INT {
                return Err(invalid(
                    field.name,
                    value,
                    &format!("Value should be lower or equal to {MAX_INT}"),
                ));
            }
            Ok(Json::from(n))
        }
    }
}

/// Parses a WSME-typed JSON body within `limits`. `argument` names it in "Missing argument"
/// errors.
pub fn parse_body(
    bytes: &[u8],
    limits: &JsonLimits,
    argument: &str,
    fields: &[Field],
) -> ApiResult<Body> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(ApiError::bad_request(format!(
            "Missing argument: \"{argument}\""
        )));
    }
    let json = limits
        .parse(bytes, "Request body")?
        .map_err(|_| ApiError::bad_request("Request is not in valid JSON format"))?;
    let Json::Object(object) = json else {
        return Err(invalid(argument, &json, "Wrong type. Expected an object."));
    };
    let declared = |k: &str| fields.iter().find(|f| f.name == k);
    let mut unknown: Vec<&str> = object
        .keys()
        .map(String::as_str)
        .filter(|k| declared(k).is_none() && !COMMON_READ_ONLY.contains(k))
        .collect();
    if !unknown.is_empty() {
        unknown.sort_unstable();
        return Err(ApiError::bad_request(format!(
            "Unknown attribute for argument {argument}: {}",
            unknown.join(", ")
        )));
    }
    let mut out = Map::new();
    for (key, value) in &object {
        let field = declared(key);
        if field.is_none_or(|f| f.read_only) && !value.is_null() {
            return Err(invalid(key, value, "Cannot set read only field."));
        }
        if let Some(field) = field {
            out.insert(key.clone(), check_value(field, value)?);
        }
    }
    Ok(Body(out))
}

/// WSME's check of a path id that must be a uuid.
pub fn require_uuid_path(value: &str) -> ApiResult<()> {
    if crate::id::is_uuid(value) {
        Ok(())
    } else {
        Err(invalid(
            "id",
            &Json::from(value),
            &format!("Expected a uuid but received {value}."),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FIELDS: &[Field] = &[
        Field::text("name"),
        Field::int("count", 0),
        Field::boolean("flag"),
        Field::uuid("function_id"),
        Field::text("status").read_only(),
    ];

    fn err(body: &str) -> String {
        parse_body(body.as_bytes(), &JsonLimits::default(), "body", FIELDS)
            .unwrap_err()
            .message
    }

    #[test]
    fn an_empty_body_is_a_missing_argument() {
        assert_eq!(err(""), "Missing argument: \"body\"");
    }

    #[test]
    fn malformed_json_is_reported_as_such() {
        assert_eq!(err("{"), "Request is not in valid JSON format");
    }

    #[test]
    fn unknown_attributes_are_refused() {
        assert_eq!(
            err(r#"{"foo": 1}"#),
            "Unknown attribute for argument body: foo"
        );
    }

    #[test]
    fn read_only_attributes_are_refused() {
        assert_eq!(
            err(r#"{"status": "x"}"#),
            "Invalid input for field/attribute status. Value: 'x'. Cannot set read only field."
        );
    }

    #[test]
    fn wrong_types_are_refused() {
        assert!(err(r#"{"name": 5}"#)
            .starts_with("Invalid input for field/attribute name. Value: '5'. Wrong type."));
        assert!(err(r#"{"count": "x"}"#).contains("Wrong type"));
        assert!(err(r#"{"count": 1.5}"#).contains("Wrong type"));
        assert!(err(r#"{"function_id": "nope"}"#).contains("Expected a uuid but received nope."));
    }

    #[test]
    fn over_long_strings_are_refused() {
        let long = "x".repeat(256);
        assert!(err(&format!(r#"{{"name": "{long}"}}"#))
            .contains("maximum character requirement of 255"));
    }

    #[test]
    fn numeric_strings_are_integers_and_absurd_numbers_are_refused() {
        let body =
            parse_body(br#"{"count": "7"}"#, &JsonLimits::default(), "body", FIELDS).unwrap();
        assert_eq!(body.int("count"), Some(7));
        assert!(err(r#"{"count": 99999999999999999999}"#).contains("Wrong type"));
        assert!(err(r#"{"count": 9999999999}"#).contains("lower or equal"));
        assert!(err(r#"{"count": -1}"#).contains("greater or equal to 0"));
    }

    #[test]
    fn a_body_beyond_the_json_limits_is_refused_before_it_is_parsed() {
        let deep = format!(r#"{{"name": {}}}"#, "[".repeat(100_000));
        assert_eq!(err(&deep), "Request body nests deeper than 32 levels.");
    }

    #[test]
    fn missing_required_attributes_are_listed() {
        let body = parse_body(b"{}", &JsonLimits::default(), "body", FIELDS).unwrap();
        assert_eq!(
            body.require(&["name", "function_id"]).unwrap_err().message,
            "Required param is missing. Required: {'name', 'function_id'}"
        );
    }
}
