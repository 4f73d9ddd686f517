//! What of an execution's result and log is stored: each capped, cut on a character with a
//! note saying so, so a runaway function cannot fill the database.

use serde_json::Value as Json;

/// The most of a result stored, in bytes of its JSON (`{"output": ..., "duration": ...}`):
/// the runtime's 1 MiB of stdout fits even if every byte escapes to two (quotes, newlines).
/// Output past it is cut, and ends with [`output_cut_note`].
pub const MAX_STORED_RESULT: usize = 2 * 1024 * 1024;

/// The most of a log stored, in bytes (stored as plain text, not escaped): the runtime's
/// 1 MiB of stderr with room for its closing notes. A longer log is cut and ends with
/// `[spinling] log was cut at N bytes.`
pub const MAX_STORED_LOG: usize = 1024 * 1024 + 4096;

fn output_cut_note() -> String {
    format!("\n[spinling] output was cut: a stored result holds at most {MAX_STORED_RESULT} bytes.")
}

/// The bytes `c` takes inside a JSON string as serde_json writes it.
fn escaped_len(c: char) -> usize {
    match c {
        '"' | '\\' | '\n' | '\r' | '\t' | '\u{8}' | '\u{c}' => 2,
        c if (c as u32) < 0x20 => 6,
        c => c.len_utf8(),
    }
}

/// A result read back: a text output stored in its own column goes back into it.
pub fn with_output(result: Option<Json>, output: Option<String>) -> Option<Json> {
    let Some(output) = output else {
        return result;
    };
    let mut result = match result {
        Some(Json::Object(fields)) => fields,
        _ => serde_json::Map::new(),
    };
    result.insert("output".into(), Json::String(output));
    Some(Json::Object(result))
}

/// The result as stored: a text output on its own, unescaped, at most [`MAX_STORED_RESULT`]
/// bytes (cut on a character, with [`output_cut_note`]), and the rest as JSON; any other
/// output inside the JSON, as [`stored_result`] keeps it.
pub fn stored_result_and_output(result: &Json) -> (String, Option<String>) {
    let Some(Json::String(text)) = result.get("output") else {
        return (stored_result(result), None);
    };
    let mut rest = result.clone();
    if let Some(fields) = rest.as_object_mut() {
        fields.remove("output");
    }
    let mut output = text.clone();
    if output.len() > MAX_STORED_RESULT {
        let note = output_cut_note();
        let mut end = MAX_STORED_RESULT - note.len();
        while !output.is_char_boundary(end) {
            end -= 1;
        }
        output.truncate(end);
        output.push_str(&note);
    }
    (rest.to_string(), Some(output))
}

/// The result as stored: its JSON text, at most [`MAX_STORED_RESULT`] bytes. Past that the
/// output becomes text (a JSON output its JSON text) cut to fit, with a note that says so.
pub fn stored_result(result: &Json) -> String {
    let whole = result.to_string();
    if whole.len() <= MAX_STORED_RESULT {
        return whole;
    }
    let text = match &result["output"] {
        Json::String(text) => text.clone(),
        other => other.to_string(),
    };
    let note = output_cut_note();
    let mut shell = result.clone();
    shell["output"] = Json::String(String::new());
    let overhead = shell.to_string().len() + note.chars().map(escaped_len).sum::<usize>();
    let mut budget = MAX_STORED_RESULT.saturating_sub(overhead);
    let mut end = 0;
    for (i, c) in text.char_indices() {
        let cost = escaped_len(c);
        if cost > budget {
            break;
        }
        budget -= cost;
        end = i + c.len_utf8();
    }
    shell["output"] = Json::String(format!("{}{note}", &text[..end]));
    shell.to_string()
}

/// The log as stored: plain text of at most [`MAX_STORED_LOG`] bytes, cut (on a character
/// boundary) with a closing note when longer.
pub fn stored_log(mut logs: String) -> String {
    if logs.len() <= MAX_STORED_LOG {
        return logs;
    }
    let mut end = MAX_STORED_LOG - 64;
    while !logs.is_char_boundary(end) {
        end -= 1;
    }
    logs.truncate(end);
    logs.push_str(&format!("\n[spinling] log was cut at {end} bytes.\n"));
    logs
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_text_output_is_stored_unescaped_and_read_back_whole() {
        let output = "\u{1}".repeat(1 << 20);
        let result = json!({"output": output, "duration": 0.5});
        let (rest, stored) = stored_result_and_output(&result);
        assert_eq!(stored.as_deref(), Some(output.as_str()));
        assert_eq!(rest, r#"{"duration":0.5}"#);
        let back = with_output(serde_json::from_str(&rest).ok(), stored);
        assert_eq!(back, Some(result));
    }

    #[test]
    fn a_text_output_past_the_cap_is_cut_on_a_character_and_says_so() {
        let result = json!({"output": "é".repeat(MAX_STORED_RESULT), "duration": 0.5});
        let (_, stored) = stored_result_and_output(&result);
        let stored = stored.unwrap();
        assert!(stored.len() <= MAX_STORED_RESULT);
        assert!(stored.ends_with(&output_cut_note()));
    }

    #[test]
    fn a_json_output_stays_inside_the_result() {
        let result = json!({"output": {"a": 1}, "duration": 0.5});
        assert_eq!(
            stored_result_and_output(&result),
            (result.to_string(), None)
        );
    }

    #[test]
    fn a_result_within_the_cap_is_stored_whole() {
        let result = json!({"output": "a\u{1}b", "duration": 0.5});
        assert_eq!(stored_result(&result), result.to_string());
    }

    #[test]
    fn control_bytes_are_cut_after_encoding_so_a_stored_result_stays_within_its_cap() {
        let result = json!({"output": "\u{1}".repeat(1 << 20), "duration": 0.5});
        let stored = stored_result(&result);
        assert!(stored.len() <= MAX_STORED_RESULT, "{}", stored.len());
        assert!(stored.len() > MAX_STORED_RESULT - 16, "{}", stored.len());
        let back: Json = serde_json::from_str(&stored).unwrap();
        assert_eq!(back["duration"], 0.5);
        let output = back["output"].as_str().unwrap();
        assert!(output.starts_with('\u{1}'));
        assert!(output.ends_with(&output_cut_note()));
    }

    #[test]
    fn a_json_output_past_the_cap_becomes_its_cut_text() {
        let big: Vec<Json> = (0..400_000).map(|i| json!({"i": i})).collect();
        let stored = stored_result(&json!({"output": big, "duration": 1.0}));
        assert!(stored.len() <= MAX_STORED_RESULT);
        let back: Json = serde_json::from_str(&stored).unwrap();
        assert!(back["output"].as_str().unwrap().starts_with("[{\"i\":0}"));
    }

    #[test]
    fn a_log_past_the_cap_is_cut_on_a_character_and_says_where() {
        assert_eq!(stored_log("short".into()), "short");
        let log = stored_log("é".repeat(MAX_STORED_LOG));
        assert!(log.len() <= MAX_STORED_LOG);
        let (kept, note) = log.split_once('\n').unwrap();
        assert!(kept.chars().all(|c| c == 'é'));
        assert_eq!(
            note,
            format!("[spinling] log was cut at {} bytes.\n", kept.len())
        );
    }
}
