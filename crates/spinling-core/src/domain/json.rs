//! JSON as Qinling reads and writes it. What a client sends is held to limits on nesting and on
//! values, checked by a flat scan before it is parsed, so hostile input costs one pass over the
//! bytes, never a deep recursion or a huge tree; JSON embedded in strings is written as
//! Python's `json.dumps` writes it.

use crate::error::{ApiError, ApiResult};
use serde_json::Value as Json;

/// The deepest `max_json_depth` may be: serde_json itself refuses 128 levels, and a text must
/// meet this module's limit (and its message) first.
pub const MAX_JSON_DEPTH: usize = 127;

/// How much JSON a client may send in one text (a body, a function's `code`, an execution's
/// `input`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct JsonLimits {
    /// How many arrays and objects may enclose one another.
    pub max_depth: usize,
    /// How many values (objects, arrays and scalars; keys are not values) it may hold in all.
    pub max_items: usize,
}

impl Default for JsonLimits {
    fn default() -> Self {
        JsonLimits {
            max_depth: 32,
            max_items: 10_000,
        }
    }
}

impl JsonLimits {
    /// Parses JSON a client sent, within the limits; `subject` names it in the errors
    /// ("Request body"). The outer error is a limit exceeded, a 400; the inner one says the text
    /// is not JSON, which each caller answers in its own way.
    pub fn parse(&self, text: &[u8], subject: &str) -> ApiResult<Result<Json, serde_json::Error>> {
        self.check(text, subject)?;
        Ok(serde_json::from_slice(text))
    }

    /// Counts nesting and values token by token, without building anything. Text that is not
    /// JSON is scanned all the same: serde_json refuses it afterwards.
    fn check(&self, text: &[u8], subject: &str) -> ApiResult<()> {
        // One entry per open container: whether it is an object.
        let mut open: Vec<bool> = Vec::new();
        let mut expect_key = false;
        let mut items = 0;
        let mut i = 0;
        while i < text.len() {
            let byte = text[i];
            match byte {
                b'{' | b'[' => {
                    items += 1;
                    open.push(byte == b'{');
                    if open.len() > self.max_depth {
                        return Err(ApiError::bad_request(format!(
                            "{subject} nests deeper than {} levels.",
                            self.max_depth
                        )));
                    }
                    expect_key = byte == b'{';
                }
                b'}' | b']' => {
                    open.pop();
                    expect_key = false;
                }
                b':' => expect_key = false,
                b',' => expect_key = open.last() == Some(&true),
                b'"' => {
                    i += 1;
                    while i < text.len() && text[i] != b'"' {
                        i += if text[i] == b'\\' { 2 } else { 1 };
                    }
                    if !expect_key {
                        items += 1;
                    }
                }
                _ if byte.is_ascii_whitespace() => {}
                _ => {
                    items += 1;
                    while i + 1 < text.len() && !ends_scalar(text[i + 1]) {
                        i += 1;
                    }
                }
            }
            if items > self.max_items {
                return Err(ApiError::bad_request(format!(
                    "{subject} has more than {} values.",
                    self.max_items
                )));
            }
            i += 1;
        }
        Ok(())
    }
}

/// Whether `byte` ends a number or a literal (`true`, `null`...).
fn ends_scalar(byte: u8) -> bool {
    byte.is_ascii_whitespace() || b",:[]{}\"".contains(&byte)
}

/// Serialises JSON as Python's `json.dumps` does (`", "` and `": "` separators): the form
/// in which Qinling embeds JSON in strings (a function's `code` in lists).
pub fn python_json(value: &Json) -> String {
    fn separator<W: ?Sized + std::io::Write>(w: &mut W, first: bool) -> std::io::Result<()> {
        if first {
            Ok(())
        } else {
            w.write_all(b", ")
        }
    }
    struct PythonStyle;
    impl serde_json::ser::Formatter for PythonStyle {
        fn begin_array_value<W: ?Sized + std::io::Write>(
            &mut self,
            w: &mut W,
            first: bool,
        ) -> std::io::Result<()> {
            separator(w, first)
        }
        fn begin_object_key<W: ?Sized + std::io::Write>(
            &mut self,
            w: &mut W,
            first: bool,
        ) -> std::io::Result<()> {
            separator(w, first)
        }
        fn begin_object_value<W: ?Sized + std::io::Write>(
            &mut self,
            w: &mut W,
        ) -> std::io::Result<()> {
            w.write_all(b": ")
        }
    }
    let mut out = Vec::new();
    let mut serializer = serde_json::Serializer::with_formatter(&mut out, PythonStyle);
    serde::Serialize::serialize(value, &mut serializer).expect("JSON values serialise");
    String::from_utf8(out).expect("serde_json writes UTF-8")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn limits(max_depth: usize, max_items: usize) -> JsonLimits {
        JsonLimits {
            max_depth,
            max_items,
        }
    }

    fn refusal(limits: JsonLimits, text: &str) -> String {
        limits
            .parse(text.as_bytes(), "Request body")
            .unwrap_err()
            .message
    }

    #[test]
    fn json_within_the_limits_is_parsed() {
        let parsed = limits(2, 5)
            .parse(br#"{"a": [1, "x"], "b": null}"#, "Request body")
            .unwrap()
            .unwrap();
        assert_eq!(parsed, json!({"a": [1, "x"], "b": null}));
    }

    #[test]
    fn nesting_beyond_the_depth_is_refused() {
        assert_eq!(
            refusal(limits(2, 100), r#"{"a": [{"b": 1}]}"#),
            "Request body nests deeper than 2 levels."
        );
        assert!(limits(3, 100)
            .parse(br#"{"a": [{"b": 1}]}"#, "Request body")
            .is_ok());
    }

    #[test]
    fn every_value_counts_and_keys_do_not() {
        // The object, the array, 1, "x", true, null and 2.5: seven values.
        let text = r#"{"k": [1, "x", true], "l": null, "m": 2.5}"#;
        assert!(limits(32, 7).parse(text.as_bytes(), "Body").is_ok());
        assert_eq!(
            refusal(limits(32, 6), text),
            "Request body has more than 6 values."
        );
    }

    #[test]
    fn brackets_and_quotes_inside_strings_are_not_structure() {
        let text = r#"["[[[{{{", "\"[[[", "\\"]"#;
        let parsed = limits(1, 4).parse(text.as_bytes(), "Body").unwrap();
        assert_eq!(parsed.unwrap().as_array().unwrap().len(), 3);
    }

    #[test]
    fn a_hundred_thousand_open_brackets_are_refused_without_recursion() {
        let text = "[".repeat(100_000);
        assert_eq!(
            refusal(JsonLimits::default(), &text),
            "Request body nests deeper than 32 levels."
        );
        let deepest = limits(MAX_JSON_DEPTH, usize::MAX);
        assert!(deepest.parse(text.as_bytes(), "Body").is_err());
        let within = format!(
            "{}{}",
            "[".repeat(MAX_JSON_DEPTH),
            "]".repeat(MAX_JSON_DEPTH)
        );
        assert!(deepest.parse(within.as_bytes(), "Body").unwrap().is_ok());
    }

    #[test]
    fn text_that_is_not_json_passes_the_scan_and_fails_to_parse() {
        let parsed = limits(32, 100)
            .parse(b"\xff\xfe\x00garbage {", "Body")
            .unwrap();
        assert!(parsed.is_err());
    }

    #[test]
    fn python_style_json_has_spaced_separators() {
        let v: Json = serde_json::from_str(r#"{"a": [1, 2], "b": {"c": null}}"#).unwrap();
        assert_eq!(python_json(&v), r#"{"a": [1, 2], "b": {"c": null}}"#);
    }
}
