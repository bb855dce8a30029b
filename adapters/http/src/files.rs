//! Extra files a profile renders beside the submit body (`files:`), for farms that also
//! accept a job as files: Deadline's `job_info.job` / `plugin_info.job` pair for
//! `deadlinecommand -SubmitJob`.
//!
//! A file is a template evaluated in the submit scope (`request`, `derived`, `native`) and
//! written in one of two formats:
//! - `key_value`: one `Key=Value` line per object member, in profile order (`null` members
//!   left out). Keys are literals checked when the profile loads. A value is one line, always:
//!   lists and objects are written as one line of ASCII JSON, and every line break or other
//!   control character in text becomes a space, so no value can start a line of its own and
//!   inject a key. Use `{$json: ...}` for values that must arrive intact.
//! - `json`: the value as pretty-printed JSON.

use serde::Deserialize;
use serde_json::Value;

use crate::template::{BodyTemplate, Scope, Template, ascii_json, scalar_text};

/// How an extra file is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FileFormat {
    /// `Key=Value` lines.
    KeyValue,
    /// Pretty-printed JSON.
    Json,
}

/// One extra file of a profile.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExtraFile {
    /// The file name (`job_info.job`).
    pub name: String,
    /// How it is written.
    pub format: FileFormat,
    /// What it holds; for `key_value`, an object.
    pub body: BodyTemplate,
}

/// Checks a profile's files: safe names, `key_value` bodies are objects with plain keys.
/// Errors are `(path, text to find, message)` as in `Profile::check`.
pub fn check(files: &[ExtraFile]) -> Result<(), (String, Option<String>, String)> {
    for (i, file) in files.iter().enumerate() {
        let path = format!("files[{i}]");
        let bad_name = file.name.is_empty()
            || file.name.starts_with('.')
            || file
                .name
                .chars()
                .any(|c| !(c.is_ascii_alphanumeric() || "._-".contains(c)));
        if bad_name || file.name == crate::render::BODY_FILE {
            return Err((
                path,
                Some(file.name.clone()),
                format!(
                    "files: {:?} is not a usable file name (letters, digits, `.`, `_`, `-`; not {})",
                    file.name,
                    crate::render::BODY_FILE
                ),
            ));
        }
        if file.format != FileFormat::KeyValue {
            continue;
        }
        let Template::Object(members) = &file.body.0 else {
            return Err((
                path,
                None,
                format!(
                    "files: {} is key_value, so its body must be an object",
                    file.name
                ),
            ));
        };
        for (key, _) in members {
            if key.is_empty()
                || key.trim() != key
                || key.contains('=')
                || key.chars().any(char::is_control)
            {
                return Err((
                    path,
                    Some(key.clone()),
                    format!(
                        "files: {}: {key:?} cannot be a key (no `=`, no control characters, no surrounding spaces)",
                        file.name
                    ),
                ));
            }
        }
    }
    Ok(())
}

/// Renders one file in `scope`.
pub fn render(file: &ExtraFile, scope: &Scope) -> String {
    let value = file.body.0.eval(scope);
    match file.format {
        FileFormat::Json => {
            let mut text = serde_json::to_string_pretty(&value).expect("JSON values serialise");
            text.push('\n');
            text
        }
        FileFormat::KeyValue => {
            let mut text = String::new();
            if let Value::Object(members) = value {
                // serde_json's map is sorted; the profile's order is the template's.
                let Template::Object(order) = &file.body.0 else {
                    unreachable!("checked when the profile loaded")
                };
                for (key, _) in order {
                    if let Some(v) = members.get(key).filter(|v| !v.is_null()) {
                        text.push_str(key);
                        text.push('=');
                        text.push_str(&one_line(v));
                        text.push('\n');
                    }
                }
            }
            text
        }
    }
}

/// A value as one inert line.
fn one_line(value: &Value) -> String {
    match value {
        Value::Array(_) | Value::Object(_) => ascii_json(value),
        other => scalar_text(other)
            .chars()
            .map(|c| {
                if c.is_control() || c == '\u{2028}' || c == '\u{2029}' {
                    ' '
                } else {
                    c
                }
            })
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn file(yaml: &str) -> ExtraFile {
        serde_yaml::from_str(yaml).unwrap()
    }

    #[test]
    fn key_value_lines_are_inert_against_line_breaks() {
        let f = file(
            "{name: job_info.job, format: key_value, body: {Name: '${request.name}', Missing: '${request.working_directory}', Env: '${request.environment}', Request: {$json: '${request}'}}}",
        );
        let request = json!({"name": "a\nPlugin=Evil\r\u{2028}b", "environment": {"K": "v\nw=x"}});
        let text = render(&f, &Scope::new().with("request", request.clone()));
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 3, "{text}");
        assert_eq!(lines[0], "Name=a Plugin=Evil  b");
        assert!(lines[1].starts_with("Env={"), "{}", lines[1]);
        let carried = lines[2].strip_prefix("Request=").unwrap();
        assert_eq!(serde_json::from_str::<Value>(carried).unwrap(), request);
        assert!(!text.contains('\r'));
    }

    #[test]
    fn bad_names_and_keys_are_refused() {
        for (yaml, needle) in [
            ("{name: ../x, format: json, body: 1}", "file name"),
            ("{name: request.json, format: json, body: 1}", "file name"),
            (
                "{name: a.job, format: key_value, body: [1]}",
                "must be an object",
            ),
            (
                "{name: a.job, format: key_value, body: {'a=b': 1}}",
                "cannot be a key",
            ),
        ] {
            let err = check(&[file(yaml)]).unwrap_err();
            assert!(err.2.contains(needle), "{yaml}: {}", err.2);
        }
    }
}
