//! The checks: one contract clause each, named as a sentence.
//!
//! Each check's doc comment is its documentation (`docs/conformance.md` is generated from
//! it): the first line is the sentence, the rest says what is asserted. The bracketed word
//! before each check says which capability selects it; when that capability is off, the
//! check asserts the operation returns `Unsupported` instead of skipping.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use farm_core::{Command, ErrorKind, FarmError, JobFilter, JobId, JobState};
use futures::future::BoxFuture;
use uuid::Uuid;

use crate::harness::{Context, Harness, Verdict, read_probe, run_tag};
use crate::{CheckResult, ensure, fail};

/// One check of the suite.
#[derive(Clone, Copy)]
pub struct Check {
    /// Stable snake_case id (the Rust test name, `--only`/`--skip` value).
    pub id: &'static str,
    /// The doc comment: first line is the sentence, the rest the details.
    pub doc: &'static str,
    /// What selects it: `always`, a capability name, or `fault injection`.
    pub selected_by: &'static str,
    /// Runs the check.
    pub run: for<'a> fn(&'a Harness) -> BoxFuture<'a, CheckResult>,
}

impl std::fmt::Debug for Check {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Check").field("id", &self.id).finish()
    }
}

impl Check {
    /// The sentence naming the check (its doc comment's first line).
    pub fn sentence(&self) -> &'static str {
        self.doc
            .lines()
            .map(str::trim)
            .find(|l| !l.is_empty())
            .unwrap_or(self.id)
    }

    /// The doc comment after the sentence, unwrapped into one paragraph.
    pub fn details(&self) -> String {
        let mut lines = self.doc.lines().map(str::trim).skip_while(|l| l.is_empty());
        lines.next();
        lines
            .filter(|l| !l.is_empty())
            .collect::<Vec<_>>()
            .join(" ")
    }
}

/// Finds a check by id.
pub fn find(id: &str) -> Option<&'static Check> {
    CHECKS.iter().find(|c| c.id == id)
}

macro_rules! define_checks {
    ($( $(#[doc = $doc:literal])* [$sel:literal] async fn $id:ident($h:ident) $body:block )*) => {
        $(
            $(#[doc = $doc])*
            pub async fn $id($h: &Harness) -> CheckResult $body
        )*
        /// Every check, in documentation order.
        pub static CHECKS: &[Check] = &[
            $( Check {
                id: stringify!($id),
                doc: concat!($($doc, "\n"),*),
                selected_by: $sel,
                run: |h| Box::pin($id(h)),
            }, )*
        ];
    };
}

/// Ids the farm never issued: one numeric, one textual. Adapters must answer `JobNotFound`
/// for both (a malformed id names no job either).
fn unknown_ids() -> [JobId; 2] {
    [
        JobId::new("987654321"),
        JobId::new("farm-conformance-no-such-job"),
    ]
}

fn expect_kind<T: std::fmt::Debug>(
    what: &str,
    result: Result<T, FarmError>,
    kind: ErrorKind,
) -> CheckResult {
    match result {
        Err(e) if e.kind() == kind => Ok(()),
        Err(e) => fail!(
            "{what}: expected a {kind} error, got {} error: {e}",
            e.kind()
        ),
        Ok(v) => fail!("{what}: expected a {kind} error, got Ok({v:?})"),
    }
}

/// A probe job that waits (up to 10 minutes) until the file `go` exists, after writing
/// `started` and optional extra commands.
fn wait_for_go(started: &std::path::Path, go: &std::path::Path) -> Command {
    Harness::sh(
        "echo \"$$\" >> \"$1\"; n=0; while [ ! -e \"$2\" ] && [ \"$n\" -lt 6000 ]; do sleep 0.1; n=$((n+1)); done; [ -e \"$2\" ]",
        &[&started.display().to_string(), &go.display().to_string()],
    )
}

fn touch(path: &std::path::Path) {
    let _ = std::fs::write(path, b"go");
}

/// Where a state lies on a job's way: a later observation never goes back.
fn lifecycle_rank(state: JobState) -> u8 {
    match state {
        JobState::Waiting => 0,
        JobState::Running => 1,
        JobState::Completed | JobState::Cancelled | JobState::Failed => 2,
    }
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

define_checks! {
    /// A submitted job is visible at once in one of the five states.
    ///
    /// Right after `submit` returns, `job(id)` succeeds and `job_state(id)` is that state or
    /// a later one; once the job is finished, `job_state(id)` equals `job(id).state`.
    ["always"]
    async fn a_submitted_job_is_visible_at_once(h) {
        let id = h.submit(&h.request("visible", vec![Harness::sh("true", &[])])).await?;
        let job = h.farm().job(&id).await.context("job right after submit")?;
        ensure!(job.id == id, "job() returned id {} for {id}", job.id);
        let state = h.farm().job_state(&id).await.context("job_state right after submit")?;
        ensure!(
            lifecycle_rank(state) >= lifecycle_rank(job.state),
            "job_state says {state} just after job() said {}",
            job.state
        );
        let finished = h.wait_terminal(&id).await?;
        let state = h.farm().job_state(&id).await.context("job_state of a finished job")?;
        ensure!(state == finished.state, "job_state says {state} but job() says {}", finished.state);
        Ok(())
    }

    /// A job whose commands exit 0 ends Completed.
    ///
    /// A one-command job that writes a marker goes through Waiting/Running and ends
    /// Completed; the marker proves the command really ran.
    ["always"]
    async fn a_successful_job_completes(h) {
        let marker = h.path("ran");
        let id = h.submit(&h.request("ok", vec![Harness::sh("echo ok > \"$1\"", &[&marker.display().to_string()])])).await?;
        h.expect_end(&id, JobState::Completed).await?;
        ensure!(read_probe(&marker) == "ok\n", "the command did not run (marker {:?})", read_probe(&marker));
        Ok(())
    }

    /// A non-zero exit fails the job with the exit code in the reason.
    ///
    /// A command exiting 3 ends the job Failed, and `reason` contains `exit code 3`.
    ["always"]
    async fn a_nonzero_exit_fails_with_the_exit_code_in_the_reason(h) {
        let id = h.submit(&h.request("exit3", vec![Harness::sh("exit 3", &[])])).await?;
        let job = h.expect_end(&id, JobState::Failed).await?;
        let reason = job.reason.unwrap_or_default();
        ensure!(reason.contains("exit code 3"), "reason {reason:?} does not contain \"exit code 3\"");
        Ok(())
    }

    /// Commands run in the order given.
    ///
    /// Three commands append 0, 1 and 2 to one file; it reads `0 1 2`.
    ["always"]
    async fn commands_run_in_order(h) {
        let out = h.path("order");
        let o = out.display().to_string();
        let cmds = (0..3).map(|i| Harness::sh("echo \"$1\" >> \"$2\"", &[&i.to_string(), &o])).collect();
        let id = h.submit(&h.request("order", cmds)).await?;
        h.expect_end(&id, JobState::Completed).await?;
        ensure!(read_probe(&out) == "0\n1\n2\n", "commands ran as {:?}", read_probe(&out));
        Ok(())
    }

    /// The first failing command stops the job.
    ///
    /// Of three commands, the second exits 4: the job fails with `exit code 4` and the third
    /// never runs.
    ["always"]
    async fn commands_stop_at_the_first_failure(h) {
        let first = h.path("first");
        let third = h.path("third");
        let cmds = vec![
            Harness::sh("touch \"$1\"", &[&first.display().to_string()]),
            Harness::sh("exit 4", &[]),
            Harness::sh("touch \"$1\"", &[&third.display().to_string()]),
        ];
        let id = h.submit(&h.request("stop-at-failure", cmds)).await?;
        let job = h.expect_end(&id, JobState::Failed).await?;
        ensure!(first.exists(), "the first command did not run");
        ensure!(!third.exists(), "the command after the failing one ran");
        let reason = job.reason.unwrap_or_default();
        ensure!(reason.contains("exit code 4"), "reason {reason:?} does not contain \"exit code 4\"");
        Ok(())
    }

    /// Environment values reach the job exactly.
    ///
    /// Values with quotes, runs of spaces and tabs, `$`, `$()`, backticks, newlines,
    /// `#SBATCH`, backslashes, glob characters, Unicode and the empty string arrive
    /// byte for byte; nothing in them is executed.
    ["always"]
    async fn environment_values_arrive_exactly(h) {
        let dir = h.path("env");
        std::fs::create_dir_all(&dir).map_err(|e| Verdict::Fail(format!("scratch: {e}")))?;
        let script: String = NASTY_VALUES
            .iter()
            .map(|(k, _)| format!("printf '%s' \"${k}\" > \"$1/{k}\"; "))
            .collect();
        let mut req = h.request("env", vec![Harness::sh(&script, &[&dir.display().to_string()])]);
        for (k, v) in NASTY_VALUES {
            req.environment.insert((*k).into(), (*v).into());
        }
        let id = h.submit(&req).await?;
        h.expect_end(&id, JobState::Completed).await?;
        for (k, v) in NASTY_VALUES {
            let got = std::fs::read_to_string(dir.join(k)).map_err(|e| Verdict::Fail(format!("{k} was not written: {e}")))?;
            ensure!(got == *v, "{k} arrived as {got:?}, sent {v:?}");
        }
        Ok(())
    }

    /// Argument vectors reach the program exactly.
    ///
    /// Empty strings, spaces, quotes, `$()` and backticks, newlines followed by `#SBATCH`,
    /// option-like words, `%1` and a literal `{frame}` arrive as the same argv elements,
    /// and nothing in them is executed.
    ["always"]
    async fn argv_elements_arrive_exactly(h) {
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
        let id = h.submit(&h.request("argv", vec![Command::Argv(argv)])).await?;
        h.expect_end(&id, JobState::Completed).await?;
        let raw = std::fs::read(&out).map_err(|e| Verdict::Fail(format!("the probe wrote nothing: {e}")))?;
        let text = String::from_utf8_lossy(&raw);
        let got: Vec<&str> = text.split_terminator('\0').collect();
        let want: Vec<&str> = args.iter().map(|(_, w)| w.as_str()).collect();
        ensure!(got == want, "argv arrived as {got:?}, sent {want:?}");
        ensure!(!h.path("pwned").exists(), "an argument was executed as a command");
        Ok(())
    }

    /// The working directory is honoured.
    ///
    /// A job started in a directory whose name has spaces, quotes and `$` reports that
    /// directory as its current directory.
    ["always"]
    async fn the_working_directory_is_honoured(h) {
        let wd = h.path("dir with 'quotes' and $dollar");
        std::fs::create_dir_all(&wd).map_err(|e| Verdict::Fail(format!("scratch: {e}")))?;
        let out = h.path("pwd");
        let mut req = h.request("cwd", vec![Harness::sh("pwd -P > \"$1\"", &[&out.display().to_string()])]);
        req.working_directory = Some(wd.display().to_string());
        let id = h.submit(&req).await?;
        h.expect_end(&id, JobState::Completed).await?;
        let want = std::fs::canonicalize(&wd).unwrap_or(wd).display().to_string();
        let got = read_probe(&out);
        ensure!(got.trim_end_matches('\n') == want, "the job ran in {got:?}, asked for {want:?}");
        Ok(())
    }

    /// Every frame of every chunk runs, with its chunk's variables.
    ///
    /// Frames `1-7` in chunks of 3 each write a file holding `FARM_CHUNK_INDEX`,
    /// `FARM_CHUNK_FIRST` and `FARM_CHUNK_LAST`; all seven appear with the right chunk.
    ["always"]
    async fn every_frame_runs_with_its_chunk(h) {
        let dir = h.path("frames");
        std::fs::create_dir_all(&dir).map_err(|e| Verdict::Fail(format!("scratch: {e}")))?;
        let mut req = h.request("frames", vec![Harness::sh(
            "echo \"$FARM_CHUNK_INDEX $FARM_CHUNK_FIRST $FARM_CHUNK_LAST $FARM_FRAME\" > \"$1/frame-$2\"",
            &[&dir.display().to_string(), "{frame}"],
        )]);
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
            ensure!(got == want, "frame {frame} wrote {got:?}, expected {want:?}");
        }
        Ok(())
    }

    /// One failed frame fails the job.
    ///
    /// Frames `1-4` in chunks of 1, where only frame 2 exits non-zero: the job ends Failed
    /// even though later chunks succeed.
    ["always"]
    async fn a_failed_frame_fails_the_job(h) {
        let done = h.path("done");
        std::fs::create_dir_all(&done).map_err(|e| Verdict::Fail(format!("scratch: {e}")))?;
        let mut req = h.request("frame-fails", vec![Harness::sh(
            "touch \"$2/$1\"; [ \"$1\" != 2 ]",
            &["{frame}", &done.display().to_string()],
        )]);
        req.frames = Some("1-4".parse().expect("valid"));
        let id = h.submit(&req).await?;
        h.expect_end(&id, JobState::Failed).await?;
        ensure!(done.join("2").exists(), "frame 2 never ran");
        Ok(())
    }

    /// Stopping a running job cancels it and its processes stop.
    ///
    /// A job appending a heartbeat every 0.1 s is stopped while Running: it ends Cancelled
    /// and the heartbeat stops growing.
    ["stop"]
    async fn stopping_a_running_job_cancels_it_and_kills_its_processes(h) {
        let beat = h.path("heartbeat");
        let req = h.request("heartbeat", vec![Harness::sh(
            "n=0; while [ \"$n\" -lt 6000 ]; do echo beat >> \"$1\"; sleep 0.1; n=$((n+1)); done",
            &[&beat.display().to_string()],
        )]);
        let id = h.submit(&req).await?;
        if !h.caps().stop {
            let result = h.farm().stop(&id).await;
            return expect_kind("stop without the stop capability", result, ErrorKind::Unsupported);
        }
        h.wait_file(&beat).await?;
        h.farm().stop(&id).await.context("stop")?;
        h.expect_end(&id, JobState::Cancelled).await?;
        let mut last = std::fs::metadata(&beat).map(|m| m.len()).unwrap_or(0);
        let mut stable_since = tokio::time::Instant::now();
        h.wait_for("the heartbeat to stop after Cancelled", || {
            let now_len = std::fs::metadata(&beat).map(|m| m.len()).unwrap_or(0);
            let moved = now_len != last;
            last = now_len;
            if moved {
                stable_since = tokio::time::Instant::now();
            }
            let quiet = stable_since.elapsed();
            async move {
                if quiet >= Duration::from_millis(1500) { Ok(Some(())) } else { Err(format!("still beating ({now_len} bytes)")) }
            }
        })
        .await
    }

    /// Stopping a waiting job cancels it before it runs.
    ///
    /// A job held Waiting behind an unfinished dependency is stopped: it ends Cancelled and
    /// its command never runs, even after the dependency finishes.
    ["stop, dependencies"]
    async fn stopping_a_waiting_job_cancels_it_before_it_runs(h) {
        let caps = h.caps();
        if !caps.dependencies {
            return Err(Verdict::NotApplicable("needs dependencies to hold a job in Waiting".into()));
        }
        let (started, go) = (h.path("blocker-started"), h.path("go"));
        let blocker = h.submit(&h.request("blocker", vec![wait_for_go(&started, &go)])).await?;
        let marker = h.path("dependent-ran");
        let mut dep = h.request("dependent", vec![Harness::sh("touch \"$1\"", &[&marker.display().to_string()])]);
        dep.depends_on = vec![blocker.clone()];
        let dependent = h.submit(&dep).await?;
        if !caps.stop {
            let result = h.farm().stop(&dependent).await;
            touch(&go);
            return expect_kind("stop without the stop capability", result, ErrorKind::Unsupported);
        }
        let state = h.farm().job_state(&dependent).await.context("job_state")?;
        ensure!(state == JobState::Waiting, "the dependent job is {state} while its dependency runs");
        h.farm().stop(&dependent).await.context("stop of a waiting job")?;
        h.expect_end(&dependent, JobState::Cancelled).await?;
        touch(&go);
        h.expect_end(&blocker, JobState::Completed).await?;
        ensure!(!marker.exists(), "the stopped job ran anyway");
        Ok(())
    }

    /// Stopping a finished job is a no-op.
    ///
    /// `stop` on a Completed job and on a Failed job succeeds and both keep their state.
    ["stop"]
    async fn stopping_a_finished_job_is_a_no_op(h) {
        let ok = h.submit(&h.request("done-ok", vec![Harness::sh("true", &[])])).await?;
        let bad = h.submit(&h.request("done-bad", vec![Harness::sh("exit 5", &[])])).await?;
        h.expect_end(&ok, JobState::Completed).await?;
        h.expect_end(&bad, JobState::Failed).await?;
        if !h.caps().stop {
            return expect_kind("stop without the stop capability", h.farm().stop(&ok).await, ErrorKind::Unsupported);
        }
        for (id, state) in [(&ok, JobState::Completed), (&bad, JobState::Failed)] {
            h.farm().stop(id).await.context("stop of a finished job")?;
            let after = h.farm().job(id).await.context("job after stop")?;
            ensure!(after.state == state, "stop turned a {state} job into {}", after.state);
        }
        Ok(())
    }

    /// Starting a failed job runs it again as a new attempt.
    ///
    /// A job that fails on its first run and succeeds on its second is started again: its
    /// `attempt` grows and it ends Completed.
    ["start"]
    async fn starting_a_failed_job_runs_a_new_attempt(h) {
        let flag = h.path("second-time");
        let id = h.submit(&h.request("retry", vec![Harness::sh(
            "if [ -e \"$1\" ]; then exit 0; fi; touch \"$1\"; exit 3",
            &[&flag.display().to_string()],
        )])).await?;
        let first = h.expect_end(&id, JobState::Failed).await?;
        if !h.caps().start {
            return expect_kind("start without the start capability", h.farm().start(&id).await, ErrorKind::Unsupported);
        }
        let new_id = h.farm().start(&id).await.context("start of a failed job")?;
        let second = h.wait_for("the restarted job to complete", || async {
            match h.farm().job(&new_id).await {
                Ok(j) if j.state == JobState::Completed => Ok(Some(j)),
                Ok(j) => Err(format!("{} attempt {}", j.state, j.attempt)),
                Err(e) => Err(e.to_string()),
            }
        }).await?;
        ensure!(second.attempt > first.attempt, "attempt went from {} to {}", first.attempt, second.attempt);
        Ok(())
    }

    /// Starting a cancelled job runs it again.
    ///
    /// A job stopped while Running is started again: it runs a new attempt and completes.
    ["start, stop"]
    async fn starting_a_cancelled_job_runs_it_again(h) {
        let caps = h.caps();
        if !caps.stop {
            return Err(Verdict::NotApplicable("needs stop to make a cancelled job".into()));
        }
        let (started, go) = (h.path("started"), h.path("go"));
        let id = h.submit(&h.request("cancel-then-start", vec![wait_for_go(&started, &go)])).await?;
        h.wait_file(&started).await?;
        h.farm().stop(&id).await.context("stop")?;
        let first = h.expect_end(&id, JobState::Cancelled).await?;
        if !caps.start {
            return expect_kind("start without the start capability", h.farm().start(&id).await, ErrorKind::Unsupported);
        }
        touch(&go);
        let new_id = h.farm().start(&id).await.context("start of a cancelled job")?;
        let second = h.expect_end(&new_id, JobState::Completed).await?;
        ensure!(second.attempt > first.attempt, "attempt went from {} to {}", first.attempt, second.attempt);
        Ok(())
    }

    /// Starting a running job changes nothing.
    ///
    /// `start` on a Running job keeps its id and attempt, and its command runs only once.
    ["start"]
    async fn starting_a_running_job_changes_nothing(h) {
        let (started, go) = (h.path("started"), h.path("go"));
        let id = h.submit(&h.request("start-running", vec![wait_for_go(&started, &go)])).await?;
        h.wait_file(&started).await?;
        let before = h.wait_state(&id, JobState::Running).await?;
        if !h.caps().start {
            touch(&go);
            return expect_kind("start without the start capability", h.farm().start(&id).await, ErrorKind::Unsupported);
        }
        let again = h.farm().start(&id).await.context("start of a running job")?;
        ensure!(again == id, "start of a running job returned a new id {again}");
        let after = h.farm().job(&id).await.context("job")?;
        ensure!(after.attempt == before.attempt, "attempt changed from {} to {}", before.attempt, after.attempt);
        touch(&go);
        h.expect_end(&id, JobState::Completed).await?;
        let runs = read_probe(&started).lines().count();
        ensure!(runs == 1, "the command ran {runs} times");
        Ok(())
    }

    /// An unknown id gives JobNotFound from job and job_state.
    ///
    /// Both a numeric and a textual id the farm never issued.
    ["always"]
    async fn an_unknown_id_gives_job_not_found_from_job(h) {
        for id in unknown_ids() {
            expect_kind(&format!("job({id})"), h.farm().job(&id).await, ErrorKind::JobNotFound)?;
            expect_kind(&format!("job_state({id})"), h.farm().job_state(&id).await, ErrorKind::JobNotFound)?;
        }
        Ok(())
    }

    /// An unknown id gives JobNotFound from stop.
    ///
    /// Without the stop capability, `Unsupported` instead.
    ["stop"]
    async fn an_unknown_id_gives_job_not_found_from_stop(h) {
        let kind = if h.caps().stop { ErrorKind::JobNotFound } else { ErrorKind::Unsupported };
        for id in unknown_ids() {
            expect_kind(&format!("stop({id})"), h.farm().stop(&id).await, kind)?;
        }
        Ok(())
    }

    /// An unknown id gives JobNotFound from start.
    ///
    /// Without the start capability, `Unsupported` instead.
    ["start"]
    async fn an_unknown_id_gives_job_not_found_from_start(h) {
        let kind = if h.caps().start { ErrorKind::JobNotFound } else { ErrorKind::Unsupported };
        for id in unknown_ids() {
            expect_kind(&format!("start({id})"), h.farm().start(&id).await, kind)?;
        }
        Ok(())
    }

    /// An unknown id gives JobNotFound from render_log_filename.
    ///
    /// Without the render_log capability, `Unsupported` instead.
    ["render_log"]
    async fn an_unknown_id_gives_job_not_found_from_render_log_filename(h) {
        let kind = if h.caps().render_log { ErrorKind::JobNotFound } else { ErrorKind::Unsupported };
        for id in unknown_ids() {
            expect_kind(&format!("render_log_filename({id})"), h.farm().render_log_filename(&id).await, kind)?;
        }
        Ok(())
    }

    /// An unknown id gives JobNotFound from read_log.
    ///
    /// Without the read_log capability, `Unsupported` instead.
    ["read_log"]
    async fn an_unknown_id_gives_job_not_found_from_read_log(h) {
        let kind = if h.caps().read_log { ErrorKind::JobNotFound } else { ErrorKind::Unsupported };
        for id in unknown_ids() {
            expect_kind(&format!("read_log({id})"), h.farm().read_log(&id, 0).await, kind)?;
        }
        Ok(())
    }

    /// A listed job includes one just submitted.
    ///
    /// Listing by the run's tag returns the job while it is unfinished, with its name and
    /// tags.
    ["list_jobs"]
    async fn listing_includes_a_job_just_submitted(h) {
        let (started, go) = (h.path("started"), h.path("go"));
        let req = h.request("listed", vec![wait_for_go(&started, &go)]);
        let id = h.submit(&req).await?;
        let filter = JobFilter { tag: Some(run_tag(h.run_id())), ..Default::default() };
        if !h.caps().list_jobs {
            touch(&go);
            return expect_kind("list_jobs without the capability", h.farm().list_jobs(&filter).await, ErrorKind::Unsupported);
        }
        let jobs = h.farm().list_jobs(&filter).await.context("list_jobs")?;
        touch(&go);
        let Some(job) = jobs.iter().find(|j| j.id == id) else {
            fail!("job {id} is missing from list_jobs(tag) ({} jobs listed)", jobs.len());
        };
        ensure!(job.name == req.name, "listed name {:?}, submitted {:?}", job.name, req.name);
        ensure!(job.tags.contains(&run_tag(h.run_id())), "listed tags {:?} lack the run tag", job.tags);
        h.wait_terminal(&id).await?;
        Ok(())
    }

    /// Listing filters by state.
    ///
    /// With one Completed and one Failed job of the run, a Failed filter returns the failed
    /// one and not the other, and every returned job is Failed.
    ["list_jobs"]
    async fn listing_filters_by_state(h) {
        let ok = h.submit(&h.request("state-ok", vec![Harness::sh("true", &[])])).await?;
        let bad = h.submit(&h.request("state-bad", vec![Harness::sh("exit 1", &[])])).await?;
        h.expect_end(&ok, JobState::Completed).await?;
        h.expect_end(&bad, JobState::Failed).await?;
        let filter = JobFilter { states: vec![JobState::Failed], tag: Some(run_tag(h.run_id())), ..Default::default() };
        if !h.caps().list_jobs {
            return expect_kind("list_jobs without the capability", h.farm().list_jobs(&filter).await, ErrorKind::Unsupported);
        }
        let jobs = h.farm().list_jobs(&filter).await.context("list_jobs(state=Failed)")?;
        ensure!(jobs.iter().any(|j| j.id == bad), "the failed job is missing");
        ensure!(!jobs.iter().any(|j| j.id == ok), "the completed job was returned for state=Failed");
        ensure!(jobs.iter().all(|j| j.state == JobState::Failed), "a non-Failed job was returned");
        Ok(())
    }

    /// Listing filters by exact name.
    ///
    /// Of two jobs named `...-alpha` and `...-alphabet` (one a prefix of the other), a name
    /// filter for the first returns only it.
    ["list_jobs"]
    async fn listing_filters_by_name(h) {
        let a = h.request("alpha", vec![Harness::sh("true", &[])]);
        let b = h.request("alphabet", vec![Harness::sh("true", &[])]);
        let ida = h.submit(&a).await?;
        let idb = h.submit(&b).await?;
        let filter = JobFilter { name: Some(a.name.clone()), ..Default::default() };
        if !h.caps().list_jobs {
            return expect_kind("list_jobs without the capability", h.farm().list_jobs(&filter).await, ErrorKind::Unsupported);
        }
        h.wait_terminal(&ida).await?;
        h.wait_terminal(&idb).await?;
        let jobs = h.farm().list_jobs(&filter).await.context("list_jobs(name)")?;
        ensure!(jobs.iter().any(|j| j.id == ida), "the named job is missing");
        ensure!(jobs.iter().all(|j| j.name == a.name), "other names returned: {:?}", jobs.iter().map(|j| &j.name).collect::<Vec<_>>());
        Ok(())
    }

    /// Listing filters by tag.
    ///
    /// Of two jobs of the run, only one carries an extra tag; filtering by it returns that
    /// one only.
    ["list_jobs"]
    async fn listing_filters_by_tag(h) {
        let special = format!("conformance-pick:{}", Uuid::new_v4().simple());
        let mut tagged = h.request("tagged", vec![Harness::sh("true", &[])]);
        tagged.tags.push(special.clone());
        let plain = h.request("untagged", vec![Harness::sh("true", &[])]);
        let idt = h.submit(&tagged).await?;
        let idp = h.submit(&plain).await?;
        let filter = JobFilter { tag: Some(special.clone()), ..Default::default() };
        if !h.caps().list_jobs {
            return expect_kind("list_jobs without the capability", h.farm().list_jobs(&filter).await, ErrorKind::Unsupported);
        }
        h.wait_terminal(&idt).await?;
        h.wait_terminal(&idp).await?;
        let jobs = h.farm().list_jobs(&filter).await.context("list_jobs(tag)")?;
        let ids: Vec<_> = jobs.iter().map(|j| j.id.clone()).collect();
        ensure!(ids == vec![idt.clone()], "tag filter returned {ids:?}, expected [{idt}]");
        Ok(())
    }

    /// The render log holds the job's output.
    ///
    /// After a job printing a token to stdout and another to stderr completes, the render
    /// log (the named file, and `read_log` from offset 0) contains both.
    ["render_log, read_log"]
    async fn the_render_log_holds_the_output(h) {
        let (out_token, err_token) = (format!("stdout-{}", Uuid::new_v4().simple()), format!("stderr-{}", Uuid::new_v4().simple()));
        let id = h.submit(&h.request("log", vec![Harness::sh("echo \"$1\"; echo \"$2\" >&2", &[&out_token, &err_token])])).await?;
        h.expect_end(&id, JobState::Completed).await?;
        let caps = h.caps();
        if caps.render_log {
            let text = h.wait_for("the render log file to hold the output", || async {
                match h.farm().render_log_filename(&id).await {
                    Ok(Some(path)) => {
                        let text = std::fs::read_to_string(&path).map_err(|e| format!("{path}: {e}"))?;
                        if text.contains(&out_token) && text.contains(&err_token) { Ok(Some(text)) } else { Err(format!("{path} holds {text:?}")) }
                    }
                    Ok(None) => Err("render_log_filename returned None after the job ran".into()),
                    Err(e) => Err(e.to_string()),
                }
            }).await?;
            let _ = text;
        } else {
            expect_kind("render_log_filename without the capability", h.farm().render_log_filename(&id).await, ErrorKind::Unsupported)?;
        }
        if caps.read_log {
            h.wait_for("read_log(0) to hold the output", || async {
                match h.farm().read_log(&id, 0).await {
                    Ok(chunk) if chunk.data.contains(&out_token) && chunk.data.contains(&err_token) => Ok(Some(())),
                    Ok(chunk) => Err(format!("read_log returned {:?}", chunk.data)),
                    Err(e) => Err(e.to_string()),
                }
            }).await?;
        } else {
            expect_kind("read_log without the capability", h.farm().read_log(&id, 0).await, ErrorKind::Unsupported)?;
        }
        Ok(())
    }

    /// The render log grows while the job runs and can be tailed.
    ///
    /// A job prints one token, waits, then prints another: the first is readable while the
    /// job is Running (with `complete` false), and reading from `next_offset` afterwards
    /// returns the second but not the first, ending with `complete` true.
    ["read_log"]
    async fn the_render_log_grows_while_running(h) {
        let (t1, t2) = (format!("first-{}", Uuid::new_v4().simple()), format!("second-{}", Uuid::new_v4().simple()));
        let go = h.path("go");
        let id = h.submit(&h.request("tail", vec![Harness::sh(
            "echo \"$1\"; n=0; while [ ! -e \"$3\" ] && [ \"$n\" -lt 6000 ]; do sleep 0.1; n=$((n+1)); done; echo \"$2\"",
            &[&t1, &t2, &go.display().to_string()],
        )])).await?;
        if !h.caps().read_log {
            touch(&go);
            return expect_kind("read_log without the capability", h.farm().read_log(&id, 0).await, ErrorKind::Unsupported);
        }
        let first = h.wait_for("the first token in the log while running", || async {
            match h.farm().read_log(&id, 0).await {
                Ok(chunk) if chunk.data.contains(&t1) => Ok(Some(chunk)),
                Ok(chunk) => Err(format!("log so far {:?}", chunk.data)),
                Err(e) => Err(e.to_string()),
            }
        }).await?;
        let state = h.farm().job_state(&id).await.context("job_state")?;
        ensure!(state == JobState::Running, "the job is {state} before it was released");
        ensure!(!first.complete, "read_log said complete while the job runs");
        ensure!(!first.data.contains(&t2), "the second token appeared early");
        touch(&go);
        h.expect_end(&id, JobState::Completed).await?;
        // Tail from where the first read stopped until the adapter says the log is complete.
        let deadline = tokio::time::Instant::now() + h.settings().job_timeout;
        let mut offset = first.next_offset;
        let mut rest = String::new();
        loop {
            let chunk = h.farm().read_log(&id, offset).await.context("read_log from next_offset")?;
            ensure!(chunk.next_offset >= offset, "next_offset went back from {offset} to {}", chunk.next_offset);
            rest.push_str(&chunk.data);
            offset = chunk.next_offset;
            if chunk.complete {
                break;
            }
            ensure!(tokio::time::Instant::now() < deadline, "read_log never reported complete; read {rest:?}");
            tokio::time::sleep(h.settings().poll_interval).await;
        }
        ensure!(rest.contains(&t2), "reading from next_offset {} missed the second token: {rest:?}", first.next_offset);
        ensure!(!rest.contains(&t1), "reading from next_offset returned the first token again: {rest:?}");
        Ok(())
    }

    /// The temporary directory is the same for one render context.
    ///
    /// `create_temp_directory` twice for one context returns one path, an existing
    /// directory; another context gets another path.
    ["stage_files"]
    async fn the_temp_directory_is_stable_per_render_context(h) {
        let ctx = Uuid::new_v4();
        if !h.caps().stage_files {
            return expect_kind("create_temp_directory without stage_files", h.farm().create_temp_directory(ctx).await, ErrorKind::Unsupported);
        }
        let a = h.farm().create_temp_directory(ctx).await.context("create_temp_directory")?;
        let b = h.farm().create_temp_directory(ctx).await.context("create_temp_directory again")?;
        ensure!(a == b, "two calls gave {a:?} and {b:?}");
        ensure!(std::path::Path::new(&a).is_dir(), "{a} is not a directory on this host");
        let other = h.farm().create_temp_directory(Uuid::new_v4()).await.context("create_temp_directory (other context)")?;
        ensure!(other != a, "two render contexts share {a}");
        Ok(())
    }

    /// Copied render files are complete and readable by jobs.
    ///
    /// Two files (one with every byte value) are copied; each copy has the source's bytes,
    /// and a job can read the copy.
    ["stage_files"]
    async fn copied_render_files_are_readable(h) {
        let ctx = Uuid::new_v4();
        let text_file = h.path("scene.optree");
        let binary_file = h.path("blob.bin");
        let binary: Vec<u8> = (0..=255u8).cycle().take(70_000).collect();
        std::fs::write(&text_file, b"optree for conformance\n").map_err(|e| Verdict::Fail(e.to_string()))?;
        std::fs::write(&binary_file, &binary).map_err(|e| Verdict::Fail(e.to_string()))?;
        let files = vec![text_file.clone(), binary_file.clone()];
        if !h.caps().stage_files {
            return expect_kind("copy_render_files without stage_files", h.farm().copy_render_files(&files, ctx).await, ErrorKind::Unsupported);
        }
        let map: BTreeMap<PathBuf, String> = h.farm().copy_render_files(&files, ctx).await.context("copy_render_files")?;
        ensure!(map.len() == 2, "got {} copies for 2 files", map.len());
        for source in &files {
            let Some(copy) = map.get(source) else { fail!("no copy listed for {}", source.display()) };
            let want = std::fs::read(source).map_err(|e| Verdict::Fail(e.to_string()))?;
            let got = std::fs::read(copy).map_err(|e| Verdict::Fail(format!("copy {copy}: {e}")))?;
            ensure!(got == want, "copy {copy} differs from {} ({} vs {} bytes)", source.display(), got.len(), want.len());
        }
        let echoed = h.path("echoed");
        let id = h.submit(&h.request("read-copy", vec![Harness::sh("cat \"$1\" > \"$2\"", &[&map[&text_file], &echoed.display().to_string()])])).await?;
        h.expect_end(&id, JobState::Completed).await?;
        ensure!(read_probe(&echoed) == "optree for conformance\n", "the job read {:?} from the copy", read_probe(&echoed));
        Ok(())
    }

    /// Copying a missing file is a clear error.
    ///
    /// `copy_render_files` with one existing and one missing file fails with
    /// `InvalidRequest` whose message names the missing file.
    ["stage_files"]
    async fn copying_a_missing_file_is_a_clear_error(h) {
        let ctx = Uuid::new_v4();
        let present = h.path("present.txt");
        std::fs::write(&present, b"here").map_err(|e| Verdict::Fail(e.to_string()))?;
        let missing = h.path("missing-render-file.optree");
        let files = vec![present, missing];
        let result = h.farm().copy_render_files(&files, ctx).await;
        if !h.caps().stage_files {
            return expect_kind("copy_render_files without stage_files", result, ErrorKind::Unsupported);
        }
        match result {
            Err(e) if e.kind() == ErrorKind::InvalidRequest => {
                ensure!(e.to_string().contains("missing-render-file.optree"), "the error does not name the missing file: {e}");
                Ok(())
            }
            Err(e) => fail!("expected InvalidRequest naming the file, got {} error: {e}", e.kind()),
            Ok(map) => fail!("copying a missing file succeeded: {map:?}"),
        }
    }

    /// Submitting the same render context twice gives one job.
    ///
    /// The second `submit` of an identical request returns the first job's id, and only
    /// one job with that name exists.
    ["idempotent_submit"]
    async fn submitting_a_render_context_twice_gives_one_job(h) {
        if !h.caps().idempotent_submit {
            return Err(Verdict::NotApplicable("the adapter does not claim idempotent_submit".into()));
        }
        let counter = h.path("runs");
        let req = h.request("idempotent", vec![Harness::sh("echo run >> \"$1\"", &[&counter.display().to_string()])]);
        let first = h.submit(&req).await?;
        let second = h.submit(&req).await?;
        ensure!(first == second, "the same render context gave jobs {first} and {second}");
        h.expect_end(&first, JobState::Completed).await?;
        let runs = read_probe(&counter).lines().count();
        ensure!(runs == 1, "the command ran {runs} times");
        if h.caps().list_jobs {
            let jobs = h.farm().list_jobs(&JobFilter { name: Some(req.name.clone()), ..Default::default() }).await.context("list_jobs")?;
            ensure!(jobs.len() == 1, "{} jobs carry the name", jobs.len());
        }
        Ok(())
    }

    /// A job the scheduler forgets still ends, as Failed and lost.
    ///
    /// When the scheduler loses every record of a running job, the adapter reports it
    /// Failed with a reason mentioning `lost`, never Completed and never Running forever.
    ["fault injection"]
    async fn a_job_the_scheduler_forgets_ends_failed_as_lost(h) {
        let control = h.control()?;
        let (started, go) = (h.path("started"), h.path("go"));
        let id = h.submit(&h.request("forgotten", vec![wait_for_go(&started, &go)])).await?;
        h.wait_file(&started).await?;
        h.wait_state(&id, JobState::Running).await?;
        control.forget(&id).await;
        touch(&go);
        let job = h.wait_terminal(&id).await?;
        ensure!(job.state == JobState::Failed, "a forgotten job ended {}", job.state);
        let reason = job.reason.unwrap_or_default();
        ensure!(reason.contains("lost"), "reason {reason:?} does not say the job was lost");
        Ok(())
    }

    /// Garbage from the scheduler is an error, never a state.
    ///
    /// When the scheduler's next reply is unparseable, `job` returns a `Scheduler` or
    /// `Unavailable` error; the following call works again.
    ["fault injection"]
    async fn garbage_from_the_scheduler_is_an_error_not_a_state(h) {
        let control = h.control()?;
        let id = h.submit(&h.request("garbage", vec![Harness::sh("true", &[])])).await?;
        h.wait_terminal(&id).await?;
        control.garble_replies(1).await;
        match h.farm().job(&id).await {
            Err(e) if matches!(e.kind(), ErrorKind::Scheduler | ErrorKind::Unavailable) => {}
            Err(e) => fail!("garbage gave a {} error: {e}", e.kind()),
            Ok(job) => fail!("garbage was read as a job in state {}", job.state),
        }
        h.farm().job(&id).await.context("job after the garbage")?;
        Ok(())
    }

    /// A scheduler that does not answer gives Unavailable.
    ///
    /// When the scheduler's next reply never comes, `job` returns `Unavailable` (a
    /// retryable error) within the check's deadline.
    ["fault injection"]
    async fn a_silent_scheduler_gives_unavailable(h) {
        let control = h.control()?;
        let id = h.submit(&h.request("silent", vec![Harness::sh("true", &[])])).await?;
        h.wait_terminal(&id).await?;
        control.stall_replies(1).await;
        let result = tokio::time::timeout(h.settings().job_timeout, h.farm().job(&id)).await;
        match result {
            Err(_) => fail!("job() hung for {:?} on a silent scheduler", h.settings().job_timeout),
            Ok(r) => expect_kind("job() on a silent scheduler", r, ErrorKind::Unavailable),
        }
    }

    /// A dependent job waits for its dependency to complete.
    ///
    /// A job depending on a running one stays Waiting until that completes, then runs and
    /// sees the dependency's output. Without the capability, submitting a dependency is
    /// `Unsupported`.
    ["dependencies"]
    async fn a_dependent_job_waits_for_its_dependency(h) {
        let (started, go, out) = (h.path("started"), h.path("go"), h.path("blocker-done"));
        let blocker_cmds = vec![wait_for_go(&started, &go), Harness::sh("touch \"$1\"", &[&out.display().to_string()])];
        let blocker = h.submit(&h.request("blocker", blocker_cmds)).await?;
        let mut dep = h.request("dependent", vec![Harness::sh("[ -e \"$1\" ]", &[&out.display().to_string()])]);
        dep.depends_on = vec![blocker.clone()];
        if !h.caps().dependencies {
            touch(&go);
            let result = h.farm().submit(&dep).await;
            return expect_kind("submit with depends_on without the capability", result, ErrorKind::Unsupported);
        }
        let dependent = h.submit(&dep).await?;
        h.wait_file(&started).await?;
        let state = h.farm().job_state(&dependent).await.context("job_state of the dependent")?;
        ensure!(state == JobState::Waiting, "the dependent is {state} while its dependency runs");
        touch(&go);
        h.expect_end(&blocker, JobState::Completed).await?;
        h.expect_end(&dependent, JobState::Completed).await?;
        Ok(())
    }

    /// A job depending on a failed job never runs.
    ///
    /// The dependent ends Cancelled or Failed without running its command.
    ["dependencies"]
    async fn a_job_depending_on_a_failed_job_never_runs(h) {
        if !h.caps().dependencies {
            return Err(Verdict::NotApplicable("covered by the Unsupported case of a_dependent_job_waits_for_its_dependency".into()));
        }
        let blocker = h.submit(&h.request("failing-dependency", vec![Harness::sh("exit 3", &[])])).await?;
        let marker = h.path("dependent-ran");
        let mut dep = h.request("dependent", vec![Harness::sh("touch \"$1\"", &[&marker.display().to_string()])]);
        dep.depends_on = vec![blocker.clone()];
        let dependent = h.submit(&dep).await?;
        h.expect_end(&blocker, JobState::Failed).await?;
        let job = h.wait_terminal(&dependent).await?;
        ensure!(matches!(job.state, JobState::Cancelled | JobState::Failed), "the dependent ended {}", job.state);
        ensure!(!marker.exists(), "the dependent ran although its dependency failed");
        Ok(())
    }

    /// Rendering is deterministic.
    ///
    /// Rendering one request (with frames, environment and resources) twice, and a clone of
    /// it, gives identical files.
    ["always"]
    async fn rendering_is_deterministic(h) {
        let mut req = h.request("render", vec![Harness::sh("echo \"$1\"", &["{frame}"])]);
        req.frames = Some("1-10x3".parse().expect("valid"));
        req.chunk_size = 2;
        req.environment.insert("SCENE".into(), "shot 010 'hero'".into());
        req.resources.cpus = Some(2);
        let a = h.farm().render(&req).await.context("render")?;
        let b = h.farm().render(&req).await.context("render again")?;
        let c = h.farm().render(&req.clone()).await.context("render a clone")?;
        ensure!(a == b && b == c, "render output differs between calls");
        ensure!(!a.files.is_empty() && !a.main().contents.is_empty(), "render returned no content");
        Ok(())
    }

    /// Rendering an invalid request names the field.
    ///
    /// `render` of a request with an empty argv fails with `InvalidRequest` for
    /// `commands[0]`.
    ["always"]
    async fn rendering_an_invalid_request_names_the_field(h) {
        let req = h.request("invalid-render", vec![Command::Argv(vec![])]);
        match h.farm().render(&req).await {
            Err(FarmError::InvalidRequest { field, .. }) => {
                ensure!(field == "commands[0]", "the error names {field:?}, not commands[0]");
                Ok(())
            }
            Err(e) => fail!("expected InvalidRequest, got {} error: {e}", e.kind()),
            Ok(_) => fail!("an empty argv rendered without error"),
        }
    }

    /// Invalid requests never reach the scheduler.
    ///
    /// `submit` with an invalid environment name fails with `InvalidRequest` naming
    /// `environment.1BAD`, and no job with that name appears.
    ["always"]
    async fn invalid_requests_never_reach_the_scheduler(h) {
        let mut req = h.request("invalid-submit", vec![Harness::sh("true", &[])]);
        req.environment.insert("1BAD".into(), "x".into());
        let before = match h.control() {
            Ok(c) => c.last_submission().await,
            Err(_) => None,
        };
        match h.farm().submit(&req).await {
            Err(FarmError::InvalidRequest { field, .. }) => {
                ensure!(field == "environment.1BAD", "the error names {field:?}");
            }
            Err(e) => fail!("expected InvalidRequest, got {} error: {e}", e.kind()),
            Ok(id) => fail!("an invalid request was submitted as job {id}"),
        }
        if let Ok(c) = h.control() {
            ensure!(c.last_submission().await == before, "the scheduler received the invalid request");
        }
        if h.caps().list_jobs {
            let jobs = h.farm().list_jobs(&JobFilter { name: Some(req.name.clone()), ..Default::default() }).await.context("list_jobs")?;
            ensure!(jobs.is_empty(), "a job named after the invalid request exists");
        }
        Ok(())
    }

    /// What submit sends is what render returns.
    ///
    /// The scheduler receives exactly the main file `render` produced for the request.
    ["fault injection"]
    async fn submit_sends_what_render_returns(h) {
        let control = h.control()?;
        let mut req = h.request("render-submit", vec![Harness::sh("true", &[])]);
        req.environment.insert("SCENE".into(), "a 'b' \"c\"".into());
        let rendered = h.farm().render(&req).await.context("render")?;
        let id = h.submit(&req).await?;
        let sent = control.last_submission().await;
        ensure!(sent.as_deref() == Some(rendered.main().contents.as_str()), "the scheduler received {sent:?}, render gave {:?}", rendered.main().contents);
        h.wait_terminal(&id).await?;
        Ok(())
    }

    /// Finished jobs carry ordered times.
    ///
    /// A Completed job has `start_time` and `end_time`, with start <= end and, when present,
    /// submit <= start (within one second: schedulers record whole seconds).
    ["always"]
    async fn finished_jobs_carry_ordered_times(h) {
        let id = h.submit(&h.request("times", vec![Harness::sh("sleep 0.2", &[])])).await?;
        let job = h.expect_end(&id, JobState::Completed).await?;
        let (Some(start), Some(end)) = (job.start_time, job.end_time) else {
            fail!("start_time {:?} / end_time {:?} missing on a completed job", job.start_time, job.end_time);
        };
        ensure!(start <= end, "start_time {start} is after end_time {end}");
        if let Some(submit) = job.submit_time {
            // Schedulers record times in whole seconds: allow a second of rounding.
            ensure!(submit <= start + 1000, "submit_time {submit} is after start_time {start}");
        }
        Ok(())
    }

    /// The installation metadata is configured or clearly missing.
    ///
    /// `installation_metadata` returns metadata with a renderboot command, or a `Config`
    /// error; `render_environment` returns a map.
    ["always"]
    async fn installation_metadata_is_resolved_or_clearly_missing(h) {
        match h.farm().installation_metadata().await {
            Ok(meta) => {
                ensure!(meta.renderboot_command.as_deref().is_some_and(|c| !c.is_empty()), "renderboot_command is not resolved: {meta:?}");
                ensure!(!meta.katana_root.is_empty(), "katana_root is empty");
            }
            Err(e) if e.kind() == ErrorKind::Config => {}
            Err(e) => fail!("installation_metadata gave a {} error: {e}", e.kind()),
        }
        h.farm().render_environment(Uuid::new_v4()).await.context("render_environment")?;
        Ok(())
    }
}
