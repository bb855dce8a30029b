//! The simulator's own reading of the submit language: an independent implementation of the
//! parts the adapter emits (macro expansion with the `$(DOLLAR)` pass, the new argument and
//! environment syntax, `queue` forms), strict about everything else so renderer drift fails
//! loudly instead of being "simulated".

use std::collections::BTreeMap;

/// One line of a custom attribute: `+Name = <ClassAd literal>`.
#[derive(Debug, Clone, PartialEq)]
pub enum Literal {
    Str(String),
    Int(i64),
    Bool(bool),
}

/// A parsed submit description, before per-proc expansion.
#[derive(Debug, Clone, Default)]
pub struct Description {
    /// Submit commands, lower-cased keys, raw values (last assignment wins).
    pub commands: BTreeMap<String, (String, usize)>,
    /// Custom attributes, raw values.
    pub custom: BTreeMap<String, (String, usize)>,
    /// Queue item variables and rows; no variables for `queue N`.
    pub queue_vars: Vec<String>,
    pub queue_rows: Vec<Vec<String>>,
}

/// Keys the simulator implements. Anything else is an error.
pub const KNOWN_KEYS: &[&str] = &[
    "universe",
    "executable",
    "transfer_executable",
    "arguments",
    "environment",
    "log",
    "output",
    "error",
    "notification",
    "batch_name",
    "priority",
    "request_cpus",
    "request_memory",
    "request_gpus",
    "allowed_execute_duration",
    "max_retries",
];

pub fn parse(text: &str, appended: &[String]) -> Result<Description, String> {
    let mut desc = Description::default();
    let mut lines: Vec<(usize, String)> = Vec::new();
    let mut pending = String::new();
    for (n, raw) in text.lines().enumerate() {
        let mut line = raw.to_owned();
        if let Some(stripped) = line.strip_suffix('\\') {
            pending.push_str(stripped);
            continue;
        }
        if !pending.is_empty() {
            line = std::mem::take(&mut pending) + &line;
        }
        lines.push((n + 1, line));
    }
    let mut i = 0;
    let mut queued = false;
    while i < lines.len() {
        let (n, line) = (&lines[i].0, lines[i].1.trim().to_owned());
        let n = *n;
        i += 1;
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let lower = line.to_ascii_lowercase();
        if lower == "queue" || lower.starts_with("queue ") {
            if queued {
                return Err(format!(
                    "on Line {n}: only one queue statement is simulated"
                ));
            }
            queued = true;
            for (k, extra) in appended.iter().enumerate() {
                assign(&mut desc, extra.trim(), 10_000 + k)?;
            }
            let args = line[5..].trim();
            if args.is_empty() {
                desc.queue_rows = vec![vec![]];
            } else if let Ok(count) = args.parse::<usize>() {
                desc.queue_rows = vec![vec![]; count];
            } else if let Some((vars, rest)) = args.split_once(" from ") {
                if rest.trim() != "(" {
                    return Err(format!(
                        "on Line {n}: only `queue VARS from (` tables are simulated"
                    ));
                }
                desc.queue_vars = vars
                    .split(',')
                    .map(|v| v.trim().to_ascii_lowercase())
                    .collect();
                loop {
                    let Some((_, row)) = lines.get(i) else {
                        return Err("Reached end of file without finding closing brace ')' for Queue command".into());
                    };
                    i += 1;
                    let row = row.trim();
                    if row == ")" {
                        break;
                    }
                    // Items split on commas and/or blanks; the last variable takes the rest.
                    let mut cells: Vec<String> = Vec::new();
                    let mut rest = row;
                    for k in 0..desc.queue_vars.len() {
                        if k + 1 == desc.queue_vars.len() {
                            cells.push(rest.trim().to_owned());
                        } else {
                            let cut = rest.find([',', ' ', '\t']).unwrap_or(rest.len());
                            cells.push(rest[..cut].to_owned());
                            rest = rest[cut..].trim_start_matches([',', ' ', '\t']);
                        }
                    }
                    desc.queue_rows.push(cells);
                }
            } else {
                return Err(format!("on Line {n}: unsupported queue statement {line:?}"));
            }
            continue;
        }
        if queued {
            return Err(format!(
                "on Line {n}: text after the queue statement is not simulated"
            ));
        }
        assign(&mut desc, &line, n)?;
    }
    if !queued {
        return Err("no queue statement".into());
    }
    Ok(desc)
}

fn assign(desc: &mut Description, line: &str, n: usize) -> Result<(), String> {
    let Some((key, value)) = line.split_once('=') else {
        return Err(format!(
            "on Line {n}: Failed to parse command file (line {n})."
        ));
    };
    let key = key.trim();
    let value = value.trim().to_owned();
    if let Some(name) = key.strip_prefix('+').or_else(|| key.strip_prefix("MY.")) {
        desc.custom.insert(name.to_owned(), (value, n));
    } else {
        let lower = key.to_ascii_lowercase();
        if !KNOWN_KEYS.contains(&lower.as_str()) {
            return Err(format!(
                "on Line {n}: the simulator does not implement submit command `{key}`"
            ));
        }
        desc.commands.insert(lower, (value, n));
    }
    Ok(())
}

/// Submit-time macro expansion, as HTCondor does it: `$$` pairs are skipped, `$(name)` and
/// `$(name:default)` are replaced (undefined -> empty), `$(DOLLAR)` is left for a final pass
/// that replaces it repeatedly (skipping `$$` pairs).
pub fn expand(value: &str, vars: &BTreeMap<String, String>) -> Result<String, String> {
    let main = scan(value, |name| {
        let (name, default) = match name.split_once(':') {
            Some((n, d)) => (n, Some(d)),
            None => (name, None),
        };
        let key = name.to_ascii_lowercase();
        if key == "dollar" {
            return None;
        }
        Some(
            vars.get(&key)
                .cloned()
                .or(default.map(str::to_owned))
                .unwrap_or_default(),
        )
    });
    if let Some(bad) = find_function_macro(value) {
        return Err(format!(
            "the simulator does not implement the macro function {bad}"
        ));
    }
    let out = dollar_pass(&main);
    if out.contains("$$(") {
        return Err(format!(
            "match-time substitution ($$() is not simulated: {out:?}"
        ));
    }
    Ok(out)
}

/// The main pass: `$(name)` references (pairs `$$` skipped) replaced where `replace`
/// returns Some, copied otherwise; no rescan of substituted text.
fn scan(text: &str, mut replace: impl FnMut(&str) -> Option<String>) -> String {
    let bytes = text.as_bytes();
    let mut out = String::new();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'$' && bytes.get(i + 1) == Some(&b'$') {
            out.push_str("$$");
            i += 2;
            continue;
        }
        if bytes[i] == b'$'
            && bytes.get(i + 1) == Some(&b'(')
            && let Some(close) = text[i + 2..].find(')')
        {
            let name = &text[i + 2..i + 2 + close];
            let valid = name.split(':').next().is_some_and(|n| {
                !n.is_empty() && n.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
            });
            if valid {
                match replace(name) {
                    Some(value) => out.push_str(&value),
                    None => out.push_str(&text[i..i + 3 + close]),
                }
                i += 3 + close;
                continue;
            }
        }
        let ch = text[i..].chars().next().expect("in bounds");
        out.push(ch);
        i += ch.len_utf8();
    }
    out
}

/// The final pass, as observed with HTCondor 24.0.24: scanning left to right with `$$`
/// pairs skipped, macro-shaped text (`$(...)`, `$NAME(...)`) skipped up to its first `)`,
/// and `$(DOLLAR)` replaced by `$`, scanning again from that `$`.
fn dollar_pass(text: &str) -> String {
    let mut chars: Vec<char> = text.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        if chars[i] != '$' {
            i += 1;
            continue;
        }
        if chars.get(i + 1) == Some(&'$') {
            i += 2;
            continue;
        }
        let mut open = i + 1;
        while open < chars.len() && (chars[open].is_ascii_alphanumeric() || chars[open] == '_') {
            open += 1;
        }
        if chars.get(open) == Some(&'(')
            && let Some(close) = chars[open..]
                .iter()
                .position(|c| *c == ')')
                .map(|p| open + p)
        {
            let inner: String = chars[open + 1..close].iter().collect();
            if open == i + 1 && inner.eq_ignore_ascii_case("dollar") {
                chars.splice(i..=close, ['$']);
                continue;
            }
            i = close + 1;
            continue;
        }
        i += 1;
    }
    chars.into_iter().collect()
}

/// `$NAME(` function macros (`$ENV(`, `$INT(`), which the simulator does not implement.
fn find_function_macro(text: &str) -> Option<String> {
    let bytes = text.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'$' && bytes.get(i + 1) == Some(&b'$') {
            i += 2;
            continue;
        }
        if bytes[i] == b'$' {
            let word: String = text[i + 1..]
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            if !word.is_empty() && text[i + 1 + word.len()..].starts_with('(') {
                return Some(format!("${word}("));
            }
        }
        i += 1;
    }
    None
}

/// Splits a new-syntax value (`"..."`) into items. Errors read like HTCondor's.
pub fn split_new_syntax(value: &str) -> Result<Vec<String>, String> {
    let inner = value
        .strip_prefix('"')
        .and_then(|v| v.strip_suffix('"'))
        .ok_or_else(|| {
            format!("old-syntax value (no outer double quotes) is not simulated: {value:?}")
        })?;
    // `""` is a literal `"`; a lone `"` ends the value early.
    let mut unquoted = String::new();
    let mut chars = inner.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '"' {
            if chars.peek() == Some(&'"') {
                chars.next();
                unquoted.push('"');
            } else {
                return Err(format!(
                    "Unexpected characters following double-quote.  Did you forget to escape the double-quote by repeating it?  Here is the quote and trailing characters: {}",
                    &inner[inner.find('"').unwrap_or(0)..]
                ));
            }
        } else {
            unquoted.push(c);
        }
    }
    split_v2_raw(&unquoted)
}

/// Splits the V2 raw form: blanks separate, `'...'` groups, `''` inside is a literal `'`.
pub fn split_v2_raw(text: &str) -> Result<Vec<String>, String> {
    let mut items = Vec::new();
    let mut current = String::new();
    let (mut quoted, mut started) = (false, false);
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        if quoted {
            if c == '\'' {
                if chars.peek() == Some(&'\'') {
                    chars.next();
                    current.push('\'');
                } else {
                    quoted = false;
                }
            } else {
                current.push(c);
            }
        } else if c == '\'' {
            quoted = true;
            started = true;
        } else if c == ' ' || c == '\t' {
            if started {
                items.push(std::mem::take(&mut current));
                started = false;
            }
        } else {
            current.push(c);
            started = true;
        }
    }
    if quoted {
        return Err(format!("Unbalanced quote starting here: {text}"));
    }
    if started {
        items.push(current);
    }
    Ok(items)
}

/// The V2 raw form a job ad stores (the inverse of [`split_v2_raw`]).
pub fn join_v2_raw(items: &[String]) -> String {
    items
        .iter()
        .map(|item| {
            if item.is_empty() || item.contains([' ', '\t', '\'']) {
                format!("'{}'", item.replace('\'', "''"))
            } else {
                item.clone()
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// A custom attribute's value, read as the ClassAd literal the adapter writes.
pub fn literal(expr: &str) -> Result<Literal, String> {
    let expr = expr.trim();
    if let Some(inner) = expr.strip_prefix('"').and_then(|e| e.strip_suffix('"')) {
        // In a submit file a backslash is literal except before a double quote.
        let mut out = String::new();
        let mut chars = inner.chars().peekable();
        while let Some(c) = chars.next() {
            if c == '\\' && chars.peek() == Some(&'"') {
                chars.next();
                out.push('"');
            } else if c == '"' {
                return Err(format!("unescaped double quote in {expr:?}"));
            } else {
                out.push(c);
            }
        }
        return Ok(Literal::Str(out));
    }
    if let Ok(n) = expr.parse::<i64>() {
        return Ok(Literal::Int(n));
    }
    match expr.to_ascii_lowercase().as_str() {
        "true" => Ok(Literal::Bool(true)),
        "false" => Ok(Literal::Bool(false)),
        _ => Err(format!(
            "the simulator only reads string, integer and boolean attributes, not {expr:?}"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars() -> BTreeMap<String, String> {
        [("process", "3"), ("clusterid", "12")]
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .into_iter()
            .collect()
    }

    /// The cases recorded from HTCondor 24.0.24's parser (fixtures/htcondor/jobads and the
    /// adapter's syntax notes): the simulator expands them the same way.
    #[test]
    fn expansion_matches_the_recorded_parser_behaviour() {
        for (input, want) in [
            ("$(DOLLAR)", "$"),
            ("$(DOLLAR)(HOME)", "$(HOME)"),
            ("$(DOLLAR)(DOLLAR)", "$"),
            ("$$$(DOLLAR)", "$$$"),
            ("$(DOLLAR)x$(DOLLAR)", "$x$"),
            ("$(DOLLAR)$", "$$"),
            ("$(DOLLAR)(t:_$(DOLLAR)())", "$(t:_$(DOLLAR)())"),
            ("$(DOLLAR)F($(DOLLAR)(", "$F($(DOLLAR)("),
            ("$$x(y)", "$$x(y)"),
            ("$$$(Process)", "$$3"),
            ("$(Process) $(ClusterId)", "3 12"),
            ("$(foo:default)", "default"),
            ("$(undefined)x", "x"),
            ("x$", "x$"),
        ] {
            assert_eq!(expand(input, &vars()).unwrap(), want, "{input}");
        }
        assert!(
            expand("$(DOLLAR)$(DOLLAR)", &vars()).is_err(),
            "leaves $$(DOLLAR): match-time"
        );
        assert!(expand("$ENV(HOME)", &vars()).is_err());
    }

    #[test]
    fn new_syntax_splits_like_the_recorded_ads() {
        let items = split_new_syntax("\"'a b' c \"\"double\"\" 'it''s' '' last\"").unwrap();
        assert_eq!(items, ["a b", "c", "\"double\"", "it's", "", "last"]);
        assert_eq!(
            split_v2_raw("a' 'b c \"double\" it''''s '' last").unwrap(),
            items
        );
        assert_eq!(join_v2_raw(&items), "'a b' c \"double\" 'it''s' '' last");
        assert!(
            split_new_syntax("\"unterminated 'a b\"")
                .unwrap_err()
                .contains("Unbalanced quote")
        );
        assert!(
            split_new_syntax("\"say \"hi\" there\"")
                .unwrap_err()
                .contains("Unexpected characters")
        );
        assert!(split_new_syntax("a b").unwrap_err().contains("old-syntax"));
    }
}

/// What one proc of a description comes to: its job ad and how to launch it.
#[derive(Debug, Clone)]
pub struct ProcSpec {
    pub ad: BTreeMap<String, serde_json::Value>,
    pub cmd: String,
    pub argv: Vec<String>,
    pub env: Vec<(String, String)>,
    pub transfer_executable: bool,
    pub log: Option<String>,
    pub output: Option<String>,
    pub error: Option<String>,
    pub max_runtime: Option<u64>,
    pub max_retries: Option<i64>,
}

/// Expands a description into one [`ProcSpec`] per proc of cluster `cluster`.
pub fn build_procs(
    text: &str,
    appended: &[String],
    cluster: u32,
    iwd: &str,
    now: i64,
) -> Result<Vec<ProcSpec>, String> {
    use serde_json::json;
    let desc = parse(text, appended)?;
    let get = |key: &str| desc.commands.get(key).map(|(v, _)| v.as_str());
    if let Some(universe) = get("universe")
        && !universe.eq_ignore_ascii_case("vanilla")
    {
        return Err(format!(
            "the simulator only runs the vanilla universe, not {universe:?}"
        ));
    }
    if get("executable").is_none() {
        return Err("No 'executable' parameter was provided".into());
    }
    if desc.queue_rows.is_empty() {
        return Err("the queue statement makes no jobs".into());
    }
    let mut procs = Vec::new();
    for (proc_id, row) in desc.queue_rows.iter().enumerate() {
        let mut vars: BTreeMap<String, String> = BTreeMap::new();
        for (k, v) in [
            ("process", proc_id.to_string()),
            ("procid", proc_id.to_string()),
            ("cluster", cluster.to_string()),
            ("clusterid", cluster.to_string()),
            ("step", "0".into()),
            ("row", proc_id.to_string()),
            ("itemindex", proc_id.to_string()),
        ] {
            vars.insert(k.to_owned(), v);
        }
        for (name, value) in desc.queue_vars.iter().zip(row) {
            vars.insert(name.clone(), value.clone());
        }
        let value = |key: &str| -> Result<Option<String>, String> {
            match desc.commands.get(key) {
                Some((raw, line)) => expand(raw, &vars)
                    .map(Some)
                    .map_err(|e| format!("on Line {line}: {e}")),
                None => Ok(None),
            }
        };
        let int = |key: &str| -> Result<Option<i64>, String> {
            value(key)?
                .map(|v| {
                    v.parse::<i64>()
                        .map_err(|_| format!("{key} = {v} is not an integer"))
                })
                .transpose()
        };
        let cmd = value("executable")?.unwrap_or_default();
        let transfer_executable = value("transfer_executable")?
            .map(|v| !v.eq_ignore_ascii_case("false"))
            .unwrap_or(true);
        let argv = match value("arguments")? {
            Some(raw) => split_new_syntax(&raw)?,
            None => Vec::new(),
        };
        let mut env = Vec::new();
        if let Some(raw) = value("environment")? {
            for item in split_new_syntax(&raw)? {
                let (name, value) = item
                    .split_once('=')
                    .ok_or_else(|| format!("environment item {item:?} has no ="))?;
                if name.is_empty() {
                    return Err(format!("environment item {item:?} has no name"));
                }
                env.push((name.to_owned(), value.to_owned()));
            }
        }
        let log = value("log")?;
        let mut ad: BTreeMap<String, serde_json::Value> = BTreeMap::new();
        ad.insert("ClusterId".into(), json!(cluster));
        ad.insert("ProcId".into(), json!(proc_id));
        ad.insert("JobStatus".into(), json!(1));
        ad.insert("QDate".into(), json!(now));
        ad.insert("EnteredCurrentStatus".into(), json!(now));
        ad.insert("Cmd".into(), json!(cmd));
        ad.insert("Arguments".into(), json!(join_v2_raw(&argv)));
        let env_items: Vec<String> = env.iter().map(|(k, v)| format!("{k}={v}")).collect();
        ad.insert("Environment".into(), json!(join_v2_raw(&env_items)));
        ad.insert("Iwd".into(), json!(iwd));
        ad.insert("Owner".into(), json!("farm"));
        ad.insert("JobUniverse".into(), json!(5));
        ad.insert("NumJobStarts".into(), json!(0));
        ad.insert("JobPrio".into(), json!(int("priority")?.unwrap_or(0)));
        ad.insert(
            "RequestCpus".into(),
            json!(int("request_cpus")?.unwrap_or(1)),
        );
        if let Some(m) = int("request_memory")? {
            ad.insert("RequestMemory".into(), json!(m));
        }
        if let Some(g) = int("request_gpus")? {
            ad.insert("RequestGPUs".into(), json!(g));
        }
        if let Some(log) = &log {
            ad.insert("UserLog".into(), json!(log));
        }
        if let Some(name) = value("batch_name")? {
            let name = name.trim();
            let name = name
                .strip_prefix('"')
                .and_then(|n| n.strip_suffix('"'))
                .unwrap_or(name);
            ad.insert("JobBatchName".into(), json!(name.trim()));
        }
        for (name, (raw, line)) in &desc.custom {
            let expanded = expand(raw, &vars).map_err(|e| format!("on Line {line}: {e}"))?;
            let literal = literal(&expanded).map_err(|e| format!("on Line {line}: {e}"))?;
            ad.insert(
                name.clone(),
                match literal {
                    Literal::Str(s) => json!(s),
                    Literal::Int(n) => json!(n),
                    Literal::Bool(b) => json!(b),
                },
            );
        }
        procs.push(ProcSpec {
            ad,
            cmd,
            argv,
            env,
            transfer_executable,
            log,
            output: value("output")?,
            error: value("error")?,
            max_runtime: int("allowed_execute_duration")?.map(|s| s.max(0) as u64),
            max_retries: int("max_retries")?,
        });
    }
    Ok(procs)
}
