//! What a job receives: environment values, argv elements, the working directory and
//! frames arrive exactly.

use farm_core::{Command, JobState};

use crate::harness::{Harness, Verdict, read_probe};
use crate::{CheckResult, ensure};

/// Environment values reach the job exactly.
///
/// Values with quotes, runs of spaces and tabs, `$`, `$()`, backticks, newlines,
/// `#SBATCH`, backslashes, glob characters, Unicode and the empty string arrive
/// byte for byte; nothing in them is executed.
pub async fn environment_values_arrive_exactly(h: &Harness) -> CheckResult {
    let dir = h.path("env");
    std::fs::create_dir_all(&dir).map_err(|e| Verdict::Fail(format!("scratch: {e}")))?;
    let script: String = NASTY_VALUES
        .iter()
        .map(|(k, _)| format!("printf '%s' \"${k}\" > \"$1/{k}\"; "))
        .collect();
    let mut req = h.request(
        "env",
        vec![Harness::sh(&script, &[&dir.display().to_string()])],
    );
    for (k, v) in NASTY_VALUES {
        req.environment.insert((*k).into(), (*v).into());
    }
    let id = h.submit(&req).await?;
    h.expect_end(&id, JobState::Completed).await?;
    for (k, v) in NASTY_VALUES {
        let got = std::fs::read_to_string(dir.join(k))
            .map_err(|e| Verdict::Fail(format!("{k} was not written: {e}")))?;
        ensure!(got == *v, "{k} arrived as {got:?}, sent {v:?}");
    }
    Ok(())
}

/// Argument vectors reach the program exactly.
///
/// Empty strings, spaces, quotes, `$()` and backticks, newlines followed by `#SBATCH`,
/// option-like words, `%1` and a literal `{frame}` arrive as the same argv elements,
/// and nothing in them is executed.
pub async fn argv_elements_arrive_exactly(h: &Harness) -> CheckResult {
    let out = h.path("argv");
    let args = nasty_args(h.scratch());
    let mut argv = vec![
        "/bin/sh".to_owned(),
        "-c".to_owned(),
        "out=\"$1\"; shift; for a in \"$@\"; do printf '%s\\0' \"$a\"; done > \"$out\"".to_owned(),
        "sh".to_owned(),
        out.display().to_string(),
    ];
    argv.extend(args.iter().map(|(sent, _)| sent.clone()));
    let id = h
        .submit(&h.request("argv", vec![Command::Argv(argv)]))
        .await?;
    h.expect_end(&id, JobState::Completed).await?;
    let raw =
        std::fs::read(&out).map_err(|e| Verdict::Fail(format!("the probe wrote nothing: {e}")))?;
    let text = String::from_utf8_lossy(&raw);
    let got: Vec<&str> = text.split_terminator('\0').collect();
    let want: Vec<&str> = args.iter().map(|(_, w)| w.as_str()).collect();
    ensure!(got == want, "argv arrived as {got:?}, sent {want:?}");
    ensure!(
        !h.path("pwned").exists(),
        "an argument was executed as a command"
    );
    Ok(())
}

/// The working directory is honoured.
///
/// A job started in a directory whose name has spaces, quotes and `$` reports that
/// directory as its current directory.
pub async fn the_working_directory_is_honoured(h: &Harness) -> CheckResult {
    let wd = h.path("dir with 'quotes' and $dollar");
    std::fs::create_dir_all(&wd).map_err(|e| Verdict::Fail(format!("scratch: {e}")))?;
    let out = h.path("pwd");
    let mut req = h.request(
        "cwd",
        vec![Harness::sh(
            "pwd -P > \"$1\"",
            &[&out.display().to_string()],
        )],
    );
    req.working_directory = Some(wd.display().to_string());
    let id = h.submit(&req).await?;
    h.expect_end(&id, JobState::Completed).await?;
    let want = std::fs::canonicalize(&wd)
        .unwrap_or(wd)
        .display()
        .to_string();
    let got = read_probe(&out);
    ensure!(
        got.trim_end_matches('\n') == want,
        "the job ran in {got:?}, asked for {want:?}"
    );
    Ok(())
}

/// Every frame of every chunk runs, with its chunk's variables.
///
/// Frames `1-7` in chunks of 3 each write a file holding `FARM_CHUNK_INDEX`,
/// `FARM_CHUNK_FIRST` and `FARM_CHUNK_LAST`; all seven appear with the right chunk.
pub async fn every_frame_runs_with_its_chunk(h: &Harness) -> CheckResult {
    let dir = h.path("frames");
    std::fs::create_dir_all(&dir).map_err(|e| Verdict::Fail(format!("scratch: {e}")))?;
    let script = "echo \"$FARM_CHUNK_INDEX $FARM_CHUNK_FIRST $FARM_CHUNK_LAST $FARM_FRAME\" > \"$1/frame-$2\"";
    let probe = Harness::sh(script, &[&dir.display().to_string(), "{frame}"]);
    let mut req = h.request("frames", vec![probe]);
    req.frames = Some("1-7".parse().expect("valid"));
    req.chunk_size = 3;
    let id = h.submit(&req).await?;
    h.expect_end(&id, JobState::Completed).await?;
    for frame in 1..=7u32 {
        let chunk = (frame - 1) / 3;
        let first = chunk * 3 + 1;
        let last = (first + 2).min(7);
        let want = format!("{chunk} {first} {last} {frame}\n");
        let got = read_probe(&dir.join(format!("frame-{frame}")));
        ensure!(
            got == want,
            "frame {frame} wrote {got:?}, expected {want:?}"
        );
    }
    Ok(())
}

/// One failed frame fails the job.
///
/// Frames `1-4` in chunks of 1, where only frame 2 exits non-zero: the job ends Failed
/// even though later chunks succeed.
pub async fn a_failed_frame_fails_the_job(h: &Harness) -> CheckResult {
    let done = h.path("done");
    std::fs::create_dir_all(&done).map_err(|e| Verdict::Fail(format!("scratch: {e}")))?;
    let mut req = h.request(
        "frame-fails",
        vec![Harness::sh(
            "touch \"$2/$1\"; [ \"$1\" != 2 ]",
            &["{frame}", &done.display().to_string()],
        )],
    );
    req.frames = Some("1-4".parse().expect("valid"));
    let id = h.submit(&req).await?;
    h.expect_end(&id, JobState::Failed).await?;
    ensure!(done.join("2").exists(), "frame 2 never ran");
    Ok(())
}

/// Values that break naive quoting in shells, submit files and JSON.
const NASTY_VALUES: &[(&str, &str)] = &[
    ("V_QUOTES", "it's \"double\" and 'single'"),
    ("V_SPACES", "  two  spaces  and\ttab "),
    ("V_DOLLAR", "$HOME ${HOME} $(id) `id` $$ $(DOLLAR)"),
    ("V_NEWLINES", "line one\nline two\n#SBATCH --wrap=oops\n"),
    ("V_UNICODE", "é漢字🎬 ünïcödé"),
    ("V_BACKSLASH", "a\\b\\\\c\\n"),
    ("V_GLOB", "* ? [a-z] ~ {a,b}"),
    ("V_EMPTY", ""),
    ("V_SEMICOLON", "x; rm -rf /tmp/nothing && echo | cat"),
];

/// Arguments that break naive quoting (a `{{` is a literal brace in requests).
fn nasty_args(scratch: &std::path::Path) -> Vec<(String, String)> {
    let pwned = scratch.join("pwned").display().to_string();
    [
        ("", ""),
        (" ", " "),
        ("'", "'"),
        ("\"", "\""),
        ("it's", "it's"),
        ("a b  c", "a b  c"),
        ("\\", "\\"),
        ("*", "*"),
        ("é漢🎬", "é漢🎬"),
        ("\n#SBATCH --wrap=oops", "\n#SBATCH --wrap=oops"),
        ("-n", "-n"),
        ("--", "--"),
        (";|&<>", ";|&<>"),
        ("%1", "%1"),
        ("{{frame}", "{frame}"),
        ("$(DOLLAR)", "$(DOLLAR)"),
    ]
    .into_iter()
    .map(|(a, b)| (a.to_owned(), b.to_owned()))
    .chain([
        (format!("$(touch {pwned})"), format!("$(touch {pwned})")),
        (format!("`touch {pwned}`"), format!("`touch {pwned}`")),
    ])
    .collect()
}
