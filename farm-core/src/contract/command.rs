//! Commands: argv vectors with frame placeholders, or an explicit shell script.
//!
//! An argv element may contain placeholders that executors substitute per frame or per
//! chunk: `{frame}`, `{chunk_first}`, `{chunk_last}`, `{chunk_index}`, `{render_context}`.
//! A `{` directly followed by another `{` is a literal `{` (so `{{frame}` is the text
//! `{frame}`); any other brace is literal, except `{word}` where `word` is not a known
//! placeholder, which is rejected so that typos such as `{frames}` never reach a farm.

use std::fmt;

use serde::de::{self, MapAccess, SeqAccess, Visitor};
use serde::ser::SerializeMap;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// One step of a job.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// A program and its arguments, run without a shell: every element reaches the program
    /// exactly, whatever it contains.
    Argv(Vec<String>),
    /// A script for `/bin/sh -c`, for users who really want pipes and globbing. Placeholders
    /// are not substituted here; use the `FARM_*` environment variables instead.
    Shell(String),
}

impl Command {
    /// The argv an executor runs (a shell command becomes `/bin/sh -c SCRIPT`), before
    /// placeholder substitution.
    pub fn program_argv(&self) -> Vec<String> {
        match self {
            Command::Argv(argv) => argv.clone(),
            Command::Shell(script) => vec!["/bin/sh".into(), "-c".into(), script.clone()],
        }
    }

    /// Each argv element split into literal text and placeholders. A shell command has one
    /// literal segment per element.
    pub fn templates(&self) -> Result<Vec<Vec<Segment>>, PlaceholderError> {
        match self {
            Command::Argv(argv) => argv.iter().map(|arg| parse_template(arg)).collect(),
            Command::Shell(_) => Ok(self
                .program_argv()
                .into_iter()
                .map(|s| vec![Segment::Literal(s)])
                .collect()),
        }
    }
}

impl Serialize for Command {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            Command::Argv(argv) => argv.serialize(serializer),
            Command::Shell(script) => {
                let mut map = serializer.serialize_map(Some(1))?;
                map.serialize_entry("shell", script)?;
                map.end()
            }
        }
    }
}

impl<'de> Deserialize<'de> for Command {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct CommandVisitor;
        impl<'de> Visitor<'de> for CommandVisitor {
            type Value = Command;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(
                    "an argv list such as [\"renderboot\", \"--frame\", \"{frame}\"] \
                     or a map {shell: \"script\"}",
                )
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Command, E> {
                Err(E::custom(format!(
                    "commands are argv lists, not shell strings: write [{}] \
                     or {{shell: {v:?}}} if a shell is really wanted",
                    v.split_whitespace()
                        .map(|w| format!("{w:?}"))
                        .collect::<Vec<_>>()
                        .join(", ")
                )))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Command, A::Error> {
                let mut argv = Vec::new();
                while let Some(arg) = seq.next_element::<String>()? {
                    argv.push(arg);
                }
                Ok(Command::Argv(argv))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Command, A::Error> {
                let mut script = None;
                while let Some(key) = map.next_key::<String>()? {
                    if key != "shell" {
                        return Err(de::Error::unknown_field(&key, &["shell"]));
                    }
                    if script.is_some() {
                        return Err(de::Error::duplicate_field("shell"));
                    }
                    script = Some(map.next_value::<String>()?);
                }
                script
                    .map(Command::Shell)
                    .ok_or_else(|| de::Error::missing_field("shell"))
            }
        }
        deserializer.deserialize_any(CommandVisitor)
    }
}

/// A value executors substitute into argv elements at run time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Placeholder {
    /// `{frame}`: the frame being rendered (only when commands repeat per frame).
    Frame,
    /// `{chunk_first}`: the chunk's first frame.
    ChunkFirst,
    /// `{chunk_last}`: the chunk's last frame.
    ChunkLast,
    /// `{chunk_index}`: the chunk's position, from 0.
    ChunkIndex,
    /// `{render_context}`: the request's render context UUID.
    RenderContext,
}

impl Placeholder {
    /// Every placeholder.
    pub const ALL: [Placeholder; 5] = [
        Placeholder::Frame,
        Placeholder::ChunkFirst,
        Placeholder::ChunkLast,
        Placeholder::ChunkIndex,
        Placeholder::RenderContext,
    ];

    /// The word between the braces.
    pub fn name(self) -> &'static str {
        match self {
            Placeholder::Frame => "frame",
            Placeholder::ChunkFirst => "chunk_first",
            Placeholder::ChunkLast => "chunk_last",
            Placeholder::ChunkIndex => "chunk_index",
            Placeholder::RenderContext => "render_context",
        }
    }

    /// The environment variable every executor also sets to the same value, so `shell:`
    /// commands and wrapper scripts can read it.
    pub fn env_var(self) -> &'static str {
        match self {
            Placeholder::Frame => "FARM_FRAME",
            Placeholder::ChunkFirst => "FARM_CHUNK_FIRST",
            Placeholder::ChunkLast => "FARM_CHUNK_LAST",
            Placeholder::ChunkIndex => "FARM_CHUNK_INDEX",
            Placeholder::RenderContext => "FARM_RENDER_CONTEXT",
        }
    }

    /// Whether the value depends on frames (and so needs a frame set in the request).
    pub fn needs_frames(self) -> bool {
        !matches!(self, Placeholder::RenderContext)
    }

    fn from_name(name: &str) -> Option<Placeholder> {
        Placeholder::ALL.into_iter().find(|p| p.name() == name)
    }
}

/// A piece of an argv element.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Segment {
    /// Text passed through exactly.
    Literal(String),
    /// A value substituted at run time.
    Placeholder(Placeholder),
}

/// An argv element names a placeholder that does not exist.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "unknown placeholder {{{name}}}: the placeholders are {{frame}}, {{chunk_first}}, \
     {{chunk_last}}, {{chunk_index}} and {{render_context}}; write {{{{ for a literal {{"
)]
pub struct PlaceholderError {
    /// The word between the braces.
    pub name: String,
}

/// Splits one argv element into literal text and placeholders.
pub fn parse_template(arg: &str) -> Result<Vec<Segment>, PlaceholderError> {
    let mut segments = Vec::new();
    let mut literal = String::new();
    let mut rest = arg;
    while let Some(pos) = rest.find('{') {
        literal.push_str(&rest[..pos]);
        let after = &rest[pos + 1..];
        if let Some(stripped) = after.strip_prefix('{') {
            literal.push('{');
            rest = stripped;
            continue;
        }
        let word_len = after
            .bytes()
            .take_while(|b| b.is_ascii_alphanumeric() || *b == b'_')
            .count();
        if word_len > 0 && after.as_bytes().get(word_len) == Some(&b'}') {
            let name = &after[..word_len];
            let placeholder = Placeholder::from_name(name).ok_or_else(|| PlaceholderError {
                name: name.to_owned(),
            })?;
            if !literal.is_empty() {
                segments.push(Segment::Literal(std::mem::take(&mut literal)));
            }
            segments.push(Segment::Placeholder(placeholder));
            rest = &after[word_len + 1..];
        } else {
            literal.push('{');
            rest = after;
        }
    }
    literal.push_str(rest);
    if !literal.is_empty() || segments.is_empty() {
        segments.push(Segment::Literal(literal));
    }
    Ok(segments)
}

/// Substitutes placeholder values into a parsed template.
pub fn substitute(segments: &[Segment], value: impl Fn(Placeholder) -> String) -> String {
    let mut out = String::new();
    for segment in segments {
        match segment {
            Segment::Literal(text) => out.push_str(text),
            Segment::Placeholder(p) => out.push_str(&value(*p)),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn lit(s: &str) -> Segment {
        Segment::Literal(s.into())
    }

    #[test]
    fn placeholders_and_literal_braces() {
        assert_eq!(
            parse_template("out.{frame}.exr").unwrap(),
            [
                lit("out."),
                Segment::Placeholder(Placeholder::Frame),
                lit(".exr")
            ]
        );
        assert_eq!(parse_template("{{frame}").unwrap(), [lit("{frame}")]);
        assert_eq!(
            parse_template(r#"{"a":{"b":1}}"#).unwrap(),
            [lit(r#"{"a":{"b":1}}"#)]
        );
        assert_eq!(parse_template("").unwrap(), [lit("")]);
        assert_eq!(parse_template("{").unwrap(), [lit("{")]);
        assert_eq!(parse_template("{}").unwrap(), [lit("{}")]);
        assert_eq!(
            parse_template("{chunk_first}-{chunk_last}").unwrap(),
            [
                Segment::Placeholder(Placeholder::ChunkFirst),
                lit("-"),
                Segment::Placeholder(Placeholder::ChunkLast)
            ]
        );
        let err = parse_template("${HOME}/{frames}").unwrap_err();
        assert_eq!(err.name, "HOME");
        assert!(err.to_string().contains("unknown placeholder {HOME}"));
    }

    #[test]
    fn commands_deserialize_from_argv_lists_or_explicit_shell_maps() {
        let cmds: Vec<Command> =
            serde_yaml::from_str("- [echo, 'a b']\n- shell: 'echo $X | wc -c'\n").unwrap();
        assert_eq!(cmds[0], Command::Argv(vec!["echo".into(), "a b".into()]));
        assert_eq!(cmds[1], Command::Shell("echo $X | wc -c".into()));
        assert_eq!(
            serde_json::to_string(&cmds).unwrap(),
            r#"[["echo","a b"],{"shell":"echo $X | wc -c"}]"#
        );
        let err = serde_yaml::from_str::<Command>("echo hi")
            .unwrap_err()
            .to_string();
        assert!(err.contains("not shell strings"), "{err}");
        assert!(err.contains(r#"["echo", "hi"]"#), "{err}");
        let err = serde_yaml::from_str::<Command>("sh: x")
            .unwrap_err()
            .to_string();
        assert!(err.contains("unknown field `sh`"), "{err}");
    }

    proptest! {
        /// Text without `{` is always one literal, untouched.
        #[test]
        fn brace_free_text_is_literal(s in "[^{]*") {
            prop_assert_eq!(parse_template(&s).unwrap(), vec![lit(&s)]);
        }

        /// Doubling every `{` makes any text literal.
        #[test]
        fn doubled_braces_escape_anything(s in any::<String>()) {
            let escaped = s.replace('{', "{{");
            let segs = parse_template(&escaped).unwrap();
            prop_assert_eq!(substitute(&segs, |_| unreachable!()), s);
        }
    }
}
