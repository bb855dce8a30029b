//! Writing values into HTCondor's submit language so they come out exactly.
//!
//! Four traps, each found and verified with HTCondor's own submit parser (the
//! `htcondor==24.0.24` wheel's `Submit.jobs()`, see `tools/htcondor/check_submit.py`):
//!
//! - **Macro expansion.** `$(NAME)`, `$ENV(X)`, `$INT(...)` and friends are expanded at submit
//!   time in every value, and an undefined `$(X)` silently becomes empty. A literal `$` is
//!   written `$(DOLLAR)`, so every `$` that could start a macro is escaped — only those, and
//!   with the parity of `$` runs in mind, because HTCondor skips `$$` pairs: a naive "every
//!   `$` becomes `$(DOLLAR)`" turns `$$x` into `$$(DOLLAR)x`.
//! - **The `$(DOLLAR)` pass.** `$(DOLLAR)` is replaced in a last pass over the whole value
//!   that re-reads its own output and skips other macro-shaped text up to its first `)`. So
//!   a literal `$(DOLLAR)` cannot be written at all, and an escaped `$` followed by `(...`
//!   can hide a later `$(DOLLAR)` — even one in the next argument: `$(t:_$())` came back as
//!   `$(t:_$(DOLLAR)())`. [`Line`] therefore emulates that pass on every line it writes and
//!   refuses a line that would not come out exactly.
//! - **Match-time substitution.** `$$(X)` left in a job attribute is replaced when the job is
//!   matched to a machine, so a value containing `$$(` cannot reach the job unchanged.
//! - **Argument quoting.** `arguments` and `environment` use the "new" syntax: the whole
//!   value in double quotes, `"` written `""`, items split on blanks, an item holding blanks
//!   or quotes in single quotes with `'` written `''`. Without the outer quotes HTCondor
//!   falls back to the old syntax (the job attribute `Args`), where quotes are literal.
//!
//! A value refused here goes through the adapter's wrapper script instead, where it is bash
//! text and none of this applies.

use std::fmt::Write as _;

/// One piece of an item: literal text, or a macro the adapter itself emits (`Process`,
/// `ClusterId`, a queue variable). Macro values are digits, so they never need quoting.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Piece {
    /// Text that must arrive exactly.
    Text(String),
    /// `$(name)`, expanded per proc by HTCondor.
    Macro(&'static str),
}

impl Piece {
    /// Literal text.
    pub fn text(value: impl Into<String>) -> Piece {
        Piece::Text(value.into())
    }
}

/// Why a line cannot be written exactly.
pub type Refusal = &'static str;

/// Why a value, whatever surrounds it, cannot be written into a submit file exactly.
pub fn check_value(value: &str) -> Result<(), Refusal> {
    if value.contains(['\n', '\r']) {
        return Err("contains a line break, which a submit description cannot carry");
    }
    if value.contains('\0') {
        return Err("contains a NUL byte");
    }
    if value.contains("$$(") {
        return Err("contains `$$(`, which HTCondor replaces when the job is matched to a machine");
    }
    if contains_dollar_macro(value) {
        return Err("contains `$(DOLLAR)`, which the submit language cannot write literally");
    }
    Ok(())
}

fn contains_dollar_macro(value: &str) -> bool {
    value.as_bytes().windows(9).any(|w| {
        w[0] == b'$' && w[1] == b'(' && w[2..8].eq_ignore_ascii_case(b"DOLLAR") && w[8] == b')'
    })
}

/// One submit-file value being written, kept three ways: the text for the file, the text
/// after HTCondor's main macro pass (our macros stand for digits, `$(DOLLAR)` is still
/// there), and the intended result. [`Line::finish`] runs the `$(DOLLAR)` pass on the
/// second and insists on the third.
#[derive(Debug, Default, Clone)]
pub struct Line {
    text: String,
    after_main: String,
    intended: String,
}

impl Line {
    /// An empty line value.
    pub fn new() -> Line {
        Line::default()
    }

    fn raw(&mut self, s: &str) {
        self.text.push_str(s);
        self.after_main.push_str(s);
        self.intended.push_str(s);
    }

    fn dollar(&mut self) {
        self.text.push_str("$(DOLLAR)");
        self.after_main.push_str("$(DOLLAR)");
        self.intended.push('$');
    }

    fn our_macro(&mut self, name: &str) {
        let _ = write!(self.text, "$({name})");
        self.after_main.push('0');
        self.intended.push('0');
    }

    /// Appends pieces: text escaped (with `'` and `"` doubled when `quoting`), macros as
    /// they are.
    fn pieces(&mut self, pieces: &[Piece], quoting: bool) {
        for (i, piece) in pieces.iter().enumerate() {
            match piece {
                Piece::Macro(name) => self.our_macro(name),
                Piece::Text(text) => {
                    let next_is_macro = matches!(pieces.get(i + 1), Some(Piece::Macro(_)));
                    let text = if quoting {
                        text.replace('\'', "''").replace('"', "\"\"")
                    } else {
                        text.replace('"', "\"\"")
                    };
                    self.escaped(&text, next_is_macro);
                }
            }
        }
    }

    /// Appends text with every `$` that could start a macro escaped: a run of `$` followed
    /// by `(`, a letter, digit or `_` (or one of our macros) ends in `$(DOLLAR)` when the
    /// run is odd, since HTCondor skips `$$` pairs; an even run stays as it is.
    fn escaped(&mut self, text: &str, next_is_macro: bool) {
        let bytes = text.as_bytes();
        let mut i = 0;
        while i < bytes.len() {
            if bytes[i] != b'$' {
                let end = text[i..].find('$').map_or(text.len(), |p| i + p);
                self.raw(&text[i..end]);
                i = end;
                continue;
            }
            let start = i;
            while i < bytes.len() && bytes[i] == b'$' {
                i += 1;
            }
            let run = i - start;
            let dangerous = match bytes.get(i) {
                Some(c) => *c == b'(' || c.is_ascii_alphanumeric() || *c == b'_',
                None => next_is_macro,
            };
            if dangerous && run % 2 == 1 {
                self.raw(&"$".repeat(run - 1));
                self.dollar();
            } else {
                self.raw(&"$".repeat(run));
            }
        }
    }

    /// The value for the file, if HTCondor will read it back exactly.
    pub fn finish(self) -> Result<String, Refusal> {
        check_value(&self.intended)?;
        if dollar_pass(&self.after_main) != self.intended {
            return Err(
                "has a `$` followed by macro-like text that would hide a later `$(DOLLAR)` from \
                        HTCondor's final pass",
            );
        }
        Ok(self.text)
    }
}

/// HTCondor's final `$(DOLLAR)` pass: left to right, `$$` pairs skipped, a `$(...)` or
/// `$NAME(...)` that is not `$(DOLLAR)` skipped up to its first `)`, and `$(DOLLAR)`
/// replaced by `$` with scanning resumed at the `$` it produced.
pub fn dollar_pass(value: &str) -> String {
    let mut s = value.to_owned();
    let mut i = 0;
    while i < s.len() {
        let b = s.as_bytes();
        if b[i] != b'$' {
            i += 1;
            continue;
        }
        if b.get(i + 1) == Some(&b'$') {
            i += 2;
            continue;
        }
        let word = b[i + 1..]
            .iter()
            .take_while(|c| c.is_ascii_alphanumeric() || **c == b'_')
            .count();
        let open = i + 1 + word;
        if b.get(open) == Some(&b'(')
            && let Some(close) = s[open..].find(')').map(|p| open + p)
        {
            if word == 0 && s[open + 1..close].eq_ignore_ascii_case("DOLLAR") {
                s.replace_range(i..=close, "$");
                continue;
            }
            i = close + 1;
            continue;
        }
        i += 1;
    }
    s
}

/// Characters an item may hold without single quotes.
fn is_bare(c: char) -> bool {
    c.is_ascii_alphanumeric() || "_./:=@%+,-".contains(c)
}

fn needs_quotes(pieces: &[Piece]) -> bool {
    pieces
        .iter()
        .all(|p| matches!(p, Piece::Text(t) if t.is_empty()))
        || pieces
            .iter()
            .any(|p| matches!(p, Piece::Text(t) if !t.chars().all(is_bare)))
}

/// A whole new-syntax value (`"item item ..."`, for `arguments` and `environment`), if
/// HTCondor reads it back as exactly these items.
pub fn new_syntax(items: &[Vec<Piece>]) -> Result<String, Refusal> {
    let mut line = Line::new();
    line.raw("\"");
    for (i, item) in items.iter().enumerate() {
        if i > 0 {
            line.raw(" ");
        }
        if needs_quotes(item) {
            line.raw("'");
            line.pieces(item, true);
            line.raw("'");
        } else {
            line.pieces(item, false);
        }
    }
    line.raw("\"");
    line.finish()
}

/// A plain value (`executable`, `log`): macros escaped, nothing else touched. The value must
/// not start or end with blanks, which HTCondor trims.
pub fn plain(pieces: &[Piece]) -> Result<String, Refusal> {
    let mut line = Line::new();
    for (i, piece) in pieces.iter().enumerate() {
        match piece {
            Piece::Macro(name) => line.our_macro(name),
            Piece::Text(text) => {
                line.escaped(text, matches!(pieces.get(i + 1), Some(Piece::Macro(_))))
            }
        }
    }
    line.finish()
}

/// [`plain`] for plain text.
pub fn plain_text(value: &str) -> Result<String, Refusal> {
    plain(&[Piece::text(value)])
}

/// Encodes text for a custom string attribute (`+FarmName = "..."`). Inside a ClassAd string
/// in a submit file a backslash is literal except before `"`, so a value ending in `\` has no
/// exact spelling; percent-encoding `%`, `"`, `\`, `$` and control characters sidesteps both
/// that and macro expansion while leaving ordinary names readable in `condor_q`.
pub fn percent_encode(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        if c == '%' || c == '"' || c == '\\' || c == '$' || c.is_ascii_control() {
            let _ = write!(out, "%{:02X}", c as u32);
        } else {
            out.push(c);
        }
    }
    out
}

/// Reverses [`percent_encode`]. Malformed escapes are kept as they are.
pub fn percent_decode(value: &str) -> String {
    let bytes = value.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && let Some(hex) = value.get(i + 1..i + 3)
            && let Ok(b) = u8::from_str_radix(hex, 16)
        {
            out.push(b);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8(out).unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned())
}

/// The job name as `batch_name` shows it in `condor_q`: display only (the exact name travels
/// in `+FarmName`). Quotes, backslashes and control characters become `_`, and so does
/// every `$` when the name could not be written exactly with them.
pub fn display_name(name: &str) -> String {
    let shown: String = name
        .chars()
        .map(|c| {
            if c == '"' || c == '\\' || c.is_control() {
                '_'
            } else {
                c
            }
        })
        .collect();
    let trimmed = shown.trim();
    let shown = if trimmed.is_empty() {
        "farm-job".to_owned()
    } else {
        trimmed.to_owned()
    };
    if plain_text(&shown).is_ok() {
        shown
    } else {
        shown.replace('$', "_")
    }
}

/// The `batch_name` value for a name: `"` + [`display_name`], escaped, + `"`.
pub fn batch_name(name: &str) -> String {
    let shown = plain_text(&display_name(name)).expect("display names can always be written");
    format!("\"{shown}\"")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn escape(value: &str) -> String {
        let mut line = Line::new();
        line.escaped(value, false);
        line.text
    }

    #[test]
    fn dollar_runs_are_escaped_by_parity() {
        let cases = [
            ("plain", "plain"),
            ("$", "$"),
            ("$$", "$$"),
            ("$$$", "$$$"),
            ("cost $5", "cost $(DOLLAR)5"),
            ("$HOME", "$(DOLLAR)HOME"),
            ("$(id)", "$(DOLLAR)(id)"),
            ("$$x", "$$x"),
            ("$$$ENV(HOME)", "$$$(DOLLAR)ENV(HOME)"),
            ("${HOME}", "${HOME}"),
            ("a$ b", "a$ b"),
            ("é$é", "é$é"),
        ];
        for (input, want) in cases {
            assert_eq!(escape(input), want, "{input:?}");
            assert_eq!(plain_text(input).unwrap(), want, "{input:?}");
        }
    }

    #[test]
    fn a_dollar_run_before_our_own_macro_is_escaped() {
        assert_eq!(
            plain(&[Piece::text("a$"), Piece::Macro("Process")]).unwrap(),
            "a$(DOLLAR)$(Process)"
        );
        assert_eq!(
            plain(&[Piece::text("a$$"), Piece::Macro("Process")]).unwrap(),
            "a$$$(Process)"
        );
    }

    /// The pass as recorded from HTCondor 24.0.24 (fixtures/htcondor/jobads, and the cases
    /// the real-parser property test found).
    #[test]
    fn the_dollar_pass_matches_the_recorded_parser() {
        for (input, want) in [
            ("$(DOLLAR)", "$"),
            ("$(DOLLAR)$(DOLLAR)", "$$(DOLLAR)"),
            ("$(DOLLAR)(DOLLAR)", "$"),
            ("$(DOLLAR)(HOME)", "$(HOME)"),
            ("$$$(DOLLAR)", "$$$"),
            ("$(DOLLAR)x$(DOLLAR)", "$x$"),
            ("$(DOLLAR)$(DOLLAR)$(DOLLAR)", "$$(DOLLAR)$"),
            ("$(DOLLAR)(DOLLAR)$(DOLLAR)", "$$(DOLLAR)"),
            ("$(DOLLAR)(t:_$(DOLLAR)())", "$(t:_$(DOLLAR)())"),
            ("$(DOLLAR)F($(DOLLAR)(", "$F($(DOLLAR)("),
            ("$(dollar)", "$"),
        ] {
            assert_eq!(dollar_pass(input), want, "{input}");
        }
    }

    #[test]
    fn lines_the_submit_language_cannot_carry_are_refused() {
        assert!(plain_text("ok $ $$ $(x)").is_ok());
        assert!(plain_text("a\nb").unwrap_err().contains("line break"));
        assert!(plain_text("a\rb").unwrap_err().contains("line break"));
        assert!(plain_text("$$(Memory)").unwrap_err().contains("matched"));
        assert!(plain_text("x $(dollar) y").unwrap_err().contains("DOLLAR"));
        assert!(plain_text("$(DOLLAR").is_ok());
        for hiding in ["/opt/$(t:_$())", "$F($(", "$ENV(x$y)"] {
            assert!(plain_text(hiding).unwrap_err().contains("hide"), "{hiding}");
        }
        // Across items of one line: the first item's `$(` reaches into the second.
        let items = vec![vec![Piece::text("$(")], vec![Piece::text("$x)")]];
        assert!(new_syntax(&items).unwrap_err().contains("hide"));
        let items = vec![vec![Piece::text("$(a)")], vec![Piece::text("$x)")]];
        assert!(new_syntax(&items).is_ok());
        assert!(plain(&[Piece::text("$$"), Piece::Macro("Process")]).is_ok());
    }

    #[test]
    fn items_are_quoted_only_when_needed() {
        let one = |pieces: Vec<Piece>| new_syntax(&[pieces]).unwrap();
        assert_eq!(one(vec![Piece::text("--frame=7")]), "\"--frame=7\"");
        assert_eq!(one(vec![Piece::text("")]), "\"''\"");
        assert_eq!(one(vec![Piece::text("a b")]), "\"'a b'\"");
        assert_eq!(one(vec![Piece::text("it's")]), "\"'it''s'\"");
        assert_eq!(one(vec![Piece::text("say \"hi\"")]), "\"'say \"\"hi\"\"'\"");
        assert_eq!(
            one(vec![Piece::text("f"), Piece::Macro("farm_first")]),
            "\"f$(farm_first)\""
        );
        assert_eq!(
            new_syntax(&[vec![Piece::text("a b")], vec![Piece::text("c")]]).unwrap(),
            "\"'a b' c\""
        );
    }

    #[test]
    fn percent_encoding_round_trips_and_keeps_names_readable() {
        for name in [
            "shot010 beauty",
            "quote's \"test\" $(id) `id` #x",
            "100%\\",
            "tab\there é漢🎬",
            "%zz%4",
        ] {
            let encoded = percent_encode(name);
            assert!(!encoded.contains(['"', '\\', '$']), "{encoded}");
            assert_eq!(percent_decode(&encoded), name);
        }
        assert_eq!(percent_encode("shot010_beauty_v003"), "shot010_beauty_v003");
    }

    #[test]
    fn display_names_are_one_clean_line() {
        assert_eq!(display_name("  a \"b\" \\ c\t "), "a _b_ _ c_");
        assert_eq!(display_name("cost $5"), "cost $5");
        assert_eq!(display_name("$$(x)"), "__(x)");
        assert_eq!(display_name("$F($("), "_F(_(");
        assert_eq!(display_name("   "), "farm-job");
        assert_eq!(batch_name("cost $5"), "\"cost $(DOLLAR)5\"");
    }
}
