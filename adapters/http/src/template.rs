//! Templates in profiles: request fields and per-frame values are injected as JSON values.
//!
//! A template is YAML. A string that is exactly `${path}` is replaced by the JSON value at
//! `path` in the [`Scope`] (a list stays a list, a map stays a map, a missing value is
//! `null`). Object members whose value is `null` are left out, so optional request fields
//! disappear instead of being sent as `null`. `{$join: [LIST, SEP]}` joins a list of
//! scalars into one string, for APIs that want `a,b,c`. In a body, a placeholder inside a
//! longer string is refused: building JSON by concatenating text is exactly how injection
//! bugs happen. In paths, queries and headers, text and placeholders may mix: the values
//! are percent-encoded (paths) or passed as separate query values by the HTTP client.

use std::collections::BTreeMap;
use std::fmt;

use serde::Deserialize;
use serde::de::{self, Deserializer};
use serde_json::Value;

/// Where a template is used, which decides what it may contain.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Site {
    /// A JSON request body: placeholders only as whole values.
    Body,
    /// A path, query value or header: text and placeholders may mix.
    Text,
}

/// The variables a template may name, by root. Request fields are checked exactly so a typo
/// (`${request.nmae}`) is a load-time error, not a silently missing field.
pub const REQUEST_FIELDS: &[&str] = &[
    "name",
    "render_context",
    "render_type",
    "commands",
    "frames",
    "chunk_size",
    "repeat",
    "environment",
    "working_directory",
    "resources",
    "priority",
    "tags",
    "depends_on",
    "log_directory",
    "native",
];

/// Fields of `resources`.
pub const RESOURCE_FIELDS: &[&str] = &["cpus", "memory", "gpus", "time_limit"];

/// Values computed from the request (`${derived.X}`).
pub const DERIVED_FIELDS: &[&str] = &[
    "frames",
    "frame_list",
    "frame_count",
    "first_frame",
    "last_frame",
    "task_count",
    "tasks",
    "priority_percent",
    "shell_program",
    "shell_command",
];

/// Fields of a list filter (`${filter.X}`).
pub const FILTER_FIELDS: &[&str] = &["states", "native_states", "name", "tag", "since"];

/// Roots usable in a template, and which operations provide them.
pub const ROOTS: &[&str] = &[
    "request", "derived", "native", "id", "offset", "cursor", "filter",
];

/// A dotted variable path such as `request.resources.cpus`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VarPath(pub Vec<String>);

impl VarPath {
    /// Parses and checks a path against the known roots and fields.
    pub fn parse(text: &str) -> Result<VarPath, String> {
        let parts: Vec<String> = text.split('.').map(str::to_owned).collect();
        if parts.iter().any(|p| p.is_empty()) {
            return Err(format!(
                "`${{{text}}}` is not a variable path (empty segment)"
            ));
        }
        let root = parts[0].as_str();
        let field = parts.get(1).map(String::as_str);
        let known = |list: &[&str], what: &str, f: Option<&str>| -> Result<(), String> {
            match f {
                Some(f) if !list.contains(&f) => Err(format!(
                    "`${{{text}}}` names an unknown {what} field `{f}`; known: {}",
                    list.join(", ")
                )),
                _ => Ok(()),
            }
        };
        match root {
            "request" => {
                known(REQUEST_FIELDS, "request", field)?;
                match (field, parts.get(2).map(String::as_str)) {
                    (Some("resources"), sub) => known(RESOURCE_FIELDS, "resources", sub)?,
                    (Some("environment" | "native"), _) => {}
                    (Some(_), Some(_)) => {
                        return Err(format!(
                            "`${{{text}}}`: request.{} has no fields",
                            field.unwrap_or_default()
                        ));
                    }
                    _ => {}
                }
                if parts.len() > 3 && field != Some("native") {
                    return Err(format!("`${{{text}}}` is too deep"));
                }
            }
            "derived" => {
                if field.is_none() {
                    return Err(format!(
                        "`${{{text}}}`: name a derived value ({})",
                        DERIVED_FIELDS.join(", ")
                    ));
                }
                known(DERIVED_FIELDS, "derived", field)?;
            }
            "filter" => {
                if field.is_none() {
                    return Err(format!(
                        "`${{{text}}}`: name a filter field ({})",
                        FILTER_FIELDS.join(", ")
                    ));
                }
                known(FILTER_FIELDS, "filter", field)?;
            }
            "native" => {}
            "id" | "offset" | "cursor" => {
                if parts.len() > 1 {
                    return Err(format!("`${{{text}}}`: {root} has no fields"));
                }
            }
            other => {
                return Err(format!(
                    "`${{{text}}}` names an unknown variable `{other}`; known: {}",
                    ROOTS.join(", ")
                ));
            }
        }
        Ok(VarPath(parts))
    }

    /// The first segment.
    pub fn root(&self) -> &str {
        &self.0[0]
    }
}

impl fmt::Display for VarPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "${{{}}}", self.0.join("."))
    }
}

/// One piece of a text template.
#[derive(Debug, Clone, PartialEq)]
pub enum Part {
    /// Literal text.
    Text(String),
    /// A variable.
    Var(VarPath),
}

/// A parsed template.
#[derive(Debug, Clone, PartialEq)]
pub enum Template {
    /// A JSON scalar or null, copied as is.
    Literal(Value),
    /// Text with placeholders (only in [`Site::Text`], or text without placeholders).
    Text(Vec<Part>),
    /// A whole value from the scope.
    Var(VarPath),
    /// A list of templates.
    Array(Vec<Template>),
    /// An object; `null` members are left out.
    Object(Vec<(String, Template)>),
    /// `{$join: [LIST, SEP]}`.
    Join(Box<Template>, String),
    /// `{$json: VALUE}`: the value as one line of JSON text, ASCII only (every non-ASCII
    /// character and control character escaped), for APIs and files that carry a structured
    /// value as a string.
    Json(Box<Template>),
    /// `{$merge: [OBJECT, ...]}`: the objects' members in one object, later ones winning.
    Merge(Vec<Template>),
}

/// Splits `text` into literal text and `${...}` placeholders. `$$` is a literal `$`.
pub fn parse_text(text: &str) -> Result<Vec<Part>, String> {
    let mut parts = Vec::new();
    let mut lit = String::new();
    let mut rest = text;
    while let Some(pos) = rest.find('$') {
        lit.push_str(&rest[..pos]);
        let after = &rest[pos + 1..];
        if let Some(stripped) = after.strip_prefix('$') {
            lit.push('$');
            rest = stripped;
        } else if let Some(inner) = after.strip_prefix('{') {
            let end = inner
                .find('}')
                .ok_or_else(|| format!("unclosed placeholder in {text:?}"))?;
            if !lit.is_empty() {
                parts.push(Part::Text(std::mem::take(&mut lit)));
            }
            parts.push(Part::Var(VarPath::parse(&inner[..end])?));
            rest = &inner[end + 1..];
        } else {
            lit.push('$');
            rest = after;
        }
    }
    lit.push_str(rest);
    if !lit.is_empty() || parts.is_empty() {
        parts.push(Part::Text(lit));
    }
    Ok(parts)
}

impl Template {
    /// Builds a template from a YAML value for `site`.
    pub fn from_yaml(value: &serde_yaml::Value, site: Site) -> Result<Template, String> {
        use serde_yaml::Value as Y;
        Ok(match value {
            Y::Null => Template::Literal(Value::Null),
            Y::Bool(b) => Template::Literal(Value::Bool(*b)),
            Y::Number(n) => {
                Template::Literal(serde_json::to_value(n).map_err(|e| format!("number {n}: {e}"))?)
            }
            Y::String(s) => {
                let parts = parse_text(s)?;
                match parts.as_slice() {
                    [Part::Var(v)] => Template::Var(v.clone()),
                    [Part::Text(t)] => Template::Literal(Value::String(t.clone())),
                    _ if site == Site::Body => {
                        return Err(format!(
                            "{s:?} mixes text and placeholders; in a body a placeholder must be the whole \
                             value (values are injected as JSON, never spliced into text); use {{$join: ...}}"
                        ));
                    }
                    _ => Template::Text(parts),
                }
            }
            Y::Sequence(items) => Template::Array(
                items
                    .iter()
                    .map(|i| Template::from_yaml(i, site))
                    .collect::<Result<_, _>>()?,
            ),
            Y::Mapping(map) => {
                if map.len() == 1
                    && let Some((Y::String(k), v)) = map.iter().next()
                    && k.starts_with('$')
                {
                    return match (k.as_str(), v) {
                        ("$join", Y::Sequence(args)) if args.len() == 2 => {
                            let sep = args[1].as_str().ok_or_else(|| {
                                "$join: the separator must be a string".to_owned()
                            })?;
                            Ok(Template::Join(
                                Box::new(Template::from_yaml(&args[0], site)?),
                                sep.to_owned(),
                            ))
                        }
                        ("$join", _) => Err("$join takes [LIST, SEPARATOR]".to_owned()),
                        ("$json", v) => Ok(Template::Json(Box::new(Template::from_yaml(v, site)?))),
                        ("$merge", Y::Sequence(args)) if !args.is_empty() => Ok(Template::Merge(
                            args.iter()
                                .map(|a| Template::from_yaml(a, site))
                                .collect::<Result<_, _>>()?,
                        )),
                        ("$merge", _) => Err("$merge takes a list of objects".to_owned()),
                        (other, _) => Err(format!(
                            "unknown template function {other} (known: $join, $json, $merge)"
                        )),
                    };
                }
                let mut members = Vec::new();
                for (k, v) in map {
                    let key = k
                        .as_str()
                        .ok_or_else(|| format!("object keys must be strings, found {k:?}"))?;
                    members.push((key.to_owned(), Template::from_yaml(v, site)?));
                }
                Template::Object(members)
            }
            Y::Tagged(t) => return Err(format!("YAML tags such as {} are not templates", t.tag)),
        })
    }

    /// Every variable the template uses.
    pub fn vars(&self) -> Vec<&VarPath> {
        let mut out = Vec::new();
        self.collect(&mut out);
        out
    }

    fn collect<'a>(&'a self, out: &mut Vec<&'a VarPath>) {
        match self {
            Template::Literal(_) => {}
            Template::Text(parts) => out.extend(parts.iter().filter_map(|p| match p {
                Part::Var(v) => Some(v),
                Part::Text(_) => None,
            })),
            Template::Var(v) => out.push(v),
            Template::Array(items) => items.iter().for_each(|i| i.collect(out)),
            Template::Object(members) => members.iter().for_each(|(_, t)| t.collect(out)),
            Template::Join(list, _) | Template::Json(list) => list.collect(out),
            Template::Merge(items) => items.iter().for_each(|i| i.collect(out)),
        }
    }

    /// Whether the template is exactly `${request}`.
    pub fn is_whole_request(&self) -> bool {
        matches!(self, Template::Var(v) if v.0 == ["request"])
    }

    /// Evaluates the template in `scope`.
    pub fn eval(&self, scope: &Scope) -> Value {
        match self {
            Template::Literal(v) => v.clone(),
            Template::Var(v) => scope.get(v),
            Template::Text(parts) => Value::String(
                parts
                    .iter()
                    .map(|p| match p {
                        Part::Text(t) => t.clone(),
                        Part::Var(v) => scalar_text(&scope.get(v)),
                    })
                    .collect(),
            ),
            Template::Array(items) => Value::Array(items.iter().map(|i| i.eval(scope)).collect()),
            Template::Object(members) => Value::Object(
                members
                    .iter()
                    .filter_map(|(k, t)| {
                        let v = t.eval(scope);
                        (!v.is_null()).then(|| (k.clone(), v))
                    })
                    .collect(),
            ),
            Template::Join(list, sep) => match list.eval(scope) {
                Value::Array(items) if items.is_empty() => Value::Null,
                Value::Array(items) => {
                    Value::String(items.iter().map(scalar_text).collect::<Vec<_>>().join(sep))
                }
                Value::Null => Value::Null,
                other => Value::String(scalar_text(&other)),
            },
            Template::Json(value) => match value.eval(scope) {
                Value::Null => Value::Null,
                v => Value::String(ascii_json(&v)),
            },
            Template::Merge(items) => {
                let mut merged = serde_json::Map::new();
                for item in items {
                    if let Value::Object(members) = item.eval(scope) {
                        merged.extend(members.into_iter().filter(|(_, v)| !v.is_null()));
                    }
                }
                Value::Object(merged)
            }
        }
    }

    /// Evaluates a path template: every placeholder value is percent-encoded as one path
    /// segment, so an id can never add a segment or a query.
    pub fn eval_path(&self, scope: &Scope) -> String {
        match self {
            Template::Text(parts) => parts
                .iter()
                .map(|p| match p {
                    Part::Text(t) => t.clone(),
                    Part::Var(v) => encode_segment(&scalar_text(&scope.get(v))),
                })
                .collect(),
            Template::Var(v) => encode_segment(&scalar_text(&scope.get(v))),
            other => scalar_text(&other.eval(scope)),
        }
    }
}

/// Text of a scalar (strings unquoted); other values as compact JSON.
pub fn scalar_text(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

/// Compact JSON with every character outside printable ASCII written as a `\\uXXXX` escape:
/// one line that survives any text channel (a `key=value` file, a header, a log).
pub fn ascii_json(value: &Value) -> String {
    let text = serde_json::to_string(value).expect("JSON values always serialise");
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if c.is_ascii() && !c.is_ascii_control() {
            out.push(c);
        } else {
            let mut units = [0u16; 2];
            for unit in c.encode_utf16(&mut units) {
                out.push_str(&format!("\\u{unit:04x}"));
            }
        }
    }
    out
}

fn encode_segment(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The values a template is evaluated against, by root.
#[derive(Debug, Clone, Default)]
pub struct Scope {
    roots: BTreeMap<&'static str, Value>,
}

impl Scope {
    /// An empty scope.
    pub fn new() -> Scope {
        Scope::default()
    }

    /// Sets a root.
    pub fn with(mut self, root: &'static str, value: Value) -> Scope {
        self.roots.insert(root, value);
        self
    }

    /// The value at a path, or `null`.
    pub fn get(&self, path: &VarPath) -> Value {
        let Some(mut value) = self.roots.get(path.root()) else {
            return Value::Null;
        };
        for key in &path.0[1..] {
            match value.get(key) {
                Some(v) => value = v,
                None => return Value::Null,
            }
        }
        value.clone()
    }
}

/// A template read from a profile, checked while deserializing so errors carry the line.
#[derive(Debug, Clone, PartialEq)]
pub struct BodyTemplate(pub Template);

impl<'de> Deserialize<'de> for BodyTemplate {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let value = serde_yaml::Value::deserialize(d)?;
        Template::from_yaml(&value, Site::Body)
            .map(BodyTemplate)
            .map_err(de::Error::custom)
    }
}

/// A text template (path, query value, header) read from a profile.
#[derive(Debug, Clone, PartialEq)]
pub struct TextTemplate(pub Template);

impl<'de> Deserialize<'de> for TextTemplate {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let value = serde_yaml::Value::deserialize(d)?;
        Template::from_yaml(&value, Site::Text)
            .map(TextTemplate)
            .map_err(de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn body(yaml: &str) -> Result<Template, String> {
        Template::from_yaml(&serde_yaml::from_str(yaml).unwrap(), Site::Body)
    }

    #[test]
    fn values_are_injected_as_json_values_and_nulls_are_dropped() {
        let t = body("{Name: '${request.name}', Env: '${request.environment}', Dir: '${request.working_directory}', Fixed: 3, Tags: {$join: ['${request.tags}', ',']}}").unwrap();
        let scope = Scope::new().with(
            "request",
            json!({"name": "a \"quoted\" ${name}", "environment": {"A": "x\ny"}, "tags": ["t1", "t2"]}),
        );
        assert_eq!(
            t.eval(&scope),
            json!({"Name": "a \"quoted\" ${name}", "Env": {"A": "x\ny"}, "Fixed": 3, "Tags": "t1,t2"})
        );
    }

    #[test]
    fn json_is_one_ascii_line_and_merge_joins_objects() {
        let t = body("{R: {$json: '${request}'}, E: {$merge: ['${request.environment}', {X: '${request.name}'}]}}").unwrap();
        let request =
            json!({"name": "n\u{2028}é😀\n\u{7f}", "environment": {"A": "1", "X": "old"}});
        let out = t.eval(&Scope::new().with("request", request.clone()));
        let text = out["R"].as_str().unwrap();
        assert!(text.bytes().all(|b| (0x20..0x7f).contains(&b)), "{text}");
        assert_eq!(serde_json::from_str::<Value>(text).unwrap(), request);
        assert_eq!(out["E"], json!({"A": "1", "X": "n\u{2028}é😀\n\u{7f}"}));
    }

    #[test]
    fn mixing_text_and_placeholders_in_a_body_is_refused() {
        let err = body("{Name: 'job ${request.name}'}").unwrap_err();
        assert!(err.contains("whole value"), "{err}");
    }

    #[test]
    fn unknown_variables_and_fields_are_refused() {
        for (yaml, needle) in [
            ("'${request.nmae}'", "unknown request field `nmae`"),
            ("'${requst.name}'", "unknown variable `requst`"),
            ("'${derived.framez}'", "unknown derived field"),
            (
                "'${request.resources.cpu}'",
                "unknown resources field `cpu`",
            ),
            ("'${request.name.first}'", "has no fields"),
            ("'${id.x}'", "has no fields"),
            ("'${request.}'", "empty segment"),
            ("'${request.name'", "unclosed"),
            ("{$concat: [a, b]}", "unknown template function"),
        ] {
            let err = body(yaml).unwrap_err();
            assert!(err.contains(needle), "{yaml}: {err}");
        }
    }

    #[test]
    fn paths_percent_encode_each_value_as_one_segment() {
        let t = Template::from_yaml(
            &serde_yaml::Value::String("/v1/jobs/${id}:stop".into()),
            Site::Text,
        )
        .unwrap();
        let scope = Scope::new().with("id", json!("a/b?c d"));
        assert_eq!(t.eval_path(&scope), "/v1/jobs/a%2Fb%3Fc%20d:stop");
        let t =
            Template::from_yaml(&serde_yaml::Value::String("cost $$5".into()), Site::Text).unwrap();
        assert_eq!(t.eval(&Scope::new()), json!("cost $5"));
    }
}
