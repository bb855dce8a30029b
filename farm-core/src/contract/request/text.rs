//! Every problem of a request file in one pass. Serde stops at the first value of the wrong
//! type, so a file with seven problems would otherwise take seven rounds: the text is read
//! as a YAML tree first, each field (and each element of a list or map field) is
//! deserialised on its own beside placeholders for the required fields, and the fields that
//! parse are then validated together.

use serde_yaml::{Mapping, Value};

use super::{JobRequest, deserialize_error};
use crate::error::FarmError;

/// Required fields and the placeholders that stand in for them while another field is
/// checked alone.
fn placeholders() -> Mapping {
    let mut base = Mapping::new();
    base.insert("name".into(), "placeholder".into());
    base.insert(
        "commands".into(),
        Value::Sequence(vec![Value::Sequence(vec!["true".into()])]),
    );
    base
}

/// The first deserialisation problem of `doc` as a request, if any.
fn first_problem(doc: Mapping) -> Option<(String, String)> {
    match serde_path_to_error::deserialize::<_, JobRequest>(Value::Mapping(doc)) {
        Ok(_) => None,
        Err(err) => match deserialize_error(&err) {
            FarmError::InvalidRequest { field, problem } => Some((field, problem)),
            other => Some(("(document)".into(), other.to_string())),
        },
    }
}

/// `doc` with `key` set to `value` on top of the placeholders.
fn alone(key: &Value, value: Value) -> Mapping {
    let mut doc = placeholders();
    doc.insert(key.clone(), value);
    doc
}

/// Every problem of `key: value`: one per bad element of a list or entry of a map, else the
/// field's own; and for a map, its good entries, so that they are still validated.
fn field_problems(
    key: &Value,
    name: &str,
    value: &Value,
) -> (Vec<(String, String)>, Option<Value>) {
    let Some(whole) = first_problem(alone(key, value.clone())) else {
        return (Vec::new(), None);
    };
    let mut out = Vec::new();
    let mut salvaged = None;
    // Look inside only when the problem is inside: `name: [a, b]` is one problem.
    let inside = |sep: char| whole.0.starts_with(&format!("{name}{sep}"));
    match value {
        Value::Sequence(items) if items.len() > 1 && inside('[') => {
            let first = format!("{name}[0]");
            for (i, item) in items.iter().enumerate() {
                if let Some((field, problem)) =
                    first_problem(alone(key, Value::Sequence(vec![item.clone()])))
                {
                    // Checked alone, the element is number 0: give it back its index.
                    let field = match field.strip_prefix(&first) {
                        Some(rest) => format!("{name}[{i}]{rest}"),
                        None => field,
                    };
                    out.push((field, problem));
                }
            }
        }
        Value::Mapping(entries) if entries.len() > 1 && inside('.') => {
            let mut good = Mapping::new();
            for (k, v) in entries {
                let mut one = Mapping::new();
                one.insert(k.clone(), v.clone());
                match first_problem(alone(key, Value::Mapping(one))) {
                    Some(problem) => out.push(problem),
                    None => {
                        good.insert(k.clone(), v.clone());
                    }
                }
            }
            salvaged = Some(Value::Mapping(good));
        }
        _ => {}
    }
    if out.is_empty() {
        out.push(whole);
        salvaged = None;
    }
    (out, salvaged)
}

impl JobRequest {
    /// Every problem of a request given as text (JSON when `json`, else YAML), as
    /// `(field, problem)`: a syntax error alone (nothing else can be read), else every
    /// unknown field, missing field and value of the wrong type, each element of a list or
    /// map on its own, followed by what [`problems`](Self::problems) finds in the fields
    /// that did parse. Empty exactly when the text loads and validates.
    pub fn problems_in_text(text: &str, json: bool) -> Vec<(String, String)> {
        let parsed = if json {
            JobRequest::from_json_str(text)
        } else {
            JobRequest::from_yaml_str(text)
        };
        let first = match parsed {
            Ok(request) => return request.problems(),
            Err(FarmError::InvalidRequest { field, problem }) => (field, problem),
            Err(other) => return vec![("(document)".into(), other.to_string())],
        };
        let tree: Option<Value> = if json {
            serde_json::from_str::<serde_json::Value>(text)
                .ok()
                .and_then(|v| serde_yaml::to_value(v).ok())
        } else {
            serde_yaml::from_str(text).ok()
        };
        let Some(Value::Mapping(doc)) = tree else {
            return vec![first];
        };
        let mut out = Vec::new();
        let mut good = placeholders();
        let mut bad: Vec<String> = Vec::new();
        for required in ["name", "commands"] {
            if !doc.contains_key(required) {
                out.push((
                    required.to_owned(),
                    "is missing; every request needs it".into(),
                ));
                bad.push(required.to_owned());
            }
        }
        for (key, value) in &doc {
            let name = match key {
                Value::String(s) => s.clone(),
                other => serde_yaml::to_string(other)
                    .unwrap_or_default()
                    .trim()
                    .to_owned(),
            };
            match field_problems(key, &name, value) {
                (problems, _) if problems.is_empty() => {
                    good.insert(key.clone(), value.clone());
                }
                // A map with some bad entries: validate the good ones.
                (problems, Some(salvaged)) => {
                    good.insert(key.clone(), salvaged);
                    bad.extend(problems.iter().map(|(field, _)| field.clone()));
                    out.extend(problems);
                }
                (problems, None) => {
                    out.extend(problems);
                    bad.push(name);
                }
            }
        }
        // Validate what parsed; problems of placeholders (or caused by a field that did not
        // parse, such as frames) are not the file's.
        if let Ok(request) = serde_yaml::from_value::<JobRequest>(Value::Mapping(good)) {
            let about_bad = |field: &str, problem: &str| {
                bad.iter().any(|b| {
                    field == b
                        || field.starts_with(&format!("{b}["))
                        || field.starts_with(&format!("{b}."))
                        || (problem.contains("has no frames") && (b == "frames" || b == "repeat"))
                })
            };
            out.extend(
                request
                    .problems()
                    .into_iter()
                    .filter(|(field, problem)| !about_bad(field, problem)),
            );
        }
        if out.is_empty() {
            out.push(first);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields(text: &str) -> Vec<String> {
        JobRequest::problems_in_text(text, false)
            .into_iter()
            .map(|(f, _)| f)
            .collect()
    }

    #[test]
    fn every_type_error_of_a_file_is_reported_at_once() {
        let got = fields(
            "name: [not, a, string]\ncommands: [[echo, 1], [ok], {shell: [x]}]\nchunk_size: many\n\
             priority: high\nresources: {cpus: lots, gpus: some, memory: 1G}\ncolour: red\ntags: [a, [b]]\n",
        );
        for field in [
            "name",
            "commands[2].shell",
            "chunk_size",
            "priority",
            "resources.cpus",
            "colour",
            "tags[1]",
        ] {
            assert!(
                got.iter().any(|f| f == field),
                "{field} missing from {got:?}"
            );
        }
    }

    #[test]
    fn the_good_entries_of_a_map_with_a_bad_one_are_still_validated() {
        assert_eq!(
            fields("name: a\ncommands: [[a]]\nresources: {cpus: lots, gpus: 0}\n"),
            ["resources.cpus", "resources.gpus"]
        );
    }

    #[test]
    fn type_errors_and_validation_problems_come_together() {
        let got = fields("name: ''\ncommands: [[a, '{frame}']]\npriority: 5000\nchunk_size: x\n");
        assert!(got.contains(&"name".to_owned()), "{got:?}");
        assert!(got.contains(&"priority".to_owned()), "{got:?}");
        assert!(got.contains(&"chunk_size".to_owned()), "{got:?}");
        assert!(got.contains(&"commands[0][1]".to_owned()), "{got:?}");
    }

    #[test]
    fn missing_fields_syntax_errors_and_valid_files() {
        assert_eq!(fields("tags: [a]\n"), ["name", "commands"]);
        assert_eq!(fields("name: [unclosed\n").len(), 1);
        assert!(fields("name: ok\ncommands: [[true]]\n").is_empty());
        let json =
            JobRequest::problems_in_text(r#"{"name": 3, "commands": [["a"]], "x": 1}"#, true);
        assert_eq!(json.len(), 2, "{json:?}");
    }
}
