//! sbatch's `#SBATCH` directive parser, ported line by line from Slurm 22.05
//! (`src/sbatch/opt.c`: `_opt_batch_script` and `_get_argument`), so the simulator reads
//! scripts the way the real sbatch does. The real-Slurm tests check the same scripts
//! against the real sbatch.

/// C's `isspace` for the bytes sbatch sees.
fn is_space(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\n' | '\u{0b}' | '\u{0c}' | '\r')
}

/// `_get_argument`: the next argument of a directive line and how many chars it used.
fn get_argument(line: &[char]) -> Option<(String, usize)> {
    let mut i = 0;
    while i < line.len() && is_space(line[i]) {
        i += 1;
    }
    if i == line.len() {
        return None;
    }
    let mut arg = String::new();
    let mut escape = false;
    let mut quoted = false;
    let mut quote = '\0';
    while i < line.len() && (quoted || !is_space(line[i])) && line[i] != '\n' {
        let c = line[i];
        if escape {
            escape = false;
        } else if c == '\\' {
            escape = true;
            i += 1;
            continue;
        } else if quoted {
            if c == quote {
                quoted = false;
                i += 1;
                continue;
            }
        } else if c == '"' || c == '\'' {
            quoted = true;
            quote = c;
            i += 1;
            continue;
        } else if c == '#' {
            break;
        }
        arg.push(c);
        i += 1;
    }
    if arg.is_empty() { None } else { Some((arg, i)) }
}

/// The options a script's `#SBATCH` lines give, in order. Parsing stops at the first line
/// that is neither blank nor a comment, as sbatch does.
pub fn directives(script: &str) -> Vec<String> {
    let mut out = Vec::new();
    for line in script.lines() {
        if let Some(rest) = line.strip_prefix("#SBATCH") {
            let chars: Vec<char> = rest.chars().collect();
            let mut pos = 0;
            while let Some((arg, used)) = get_argument(&chars[pos..]) {
                out.push(arg);
                pos += used;
            }
        } else if line.chars().any(|c| !is_space(c)) && !line.starts_with('#') {
            break;
        }
    }
    out
}

/// `--name=value` options as `(name, value)`; flags get an empty value.
pub fn options(args: &[String]) -> Result<Vec<(String, String)>, String> {
    args.iter()
        .map(|a| {
            let body = a.strip_prefix("--").ok_or_else(|| {
                format!("sbatch: error: the simulator only reads --long options, got {a:?}")
            })?;
            Ok(match body.split_once('=') {
                Some((k, v)) => (k.to_owned(), v.to_owned()),
                None => (body.to_owned(), String::new()),
            })
        })
        .collect()
}
