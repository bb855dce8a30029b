//! The only code that runs programs or touches job folders: detached `openjd run`s under a
//! data root (local transport) and the `deadline` CLI through a `CommandRunner`
//! (deadline-cloud transport).

use std::io::Write as _;
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use farm_core::{
    CommandOutput, CommandRunner, EpochMillis, FarmError, JobId, RenderedJob, Result, now_millis,
};
use nix::sys::signal::{Signal, kill, killpg};
use nix::unistd::Pid;
use serde::{Deserialize, Serialize};

use crate::parse::AttemptFacts;

/// The variable every process of a local run carries, so `stop` finds the action too
/// (openjd-sessions starts actions in a session of their own).
pub const RUN_MARK_VAR: &str = "FARM_OPENJD_RUN";

/// Runs `openjd run` on the bundle in `$3`, recording start and exit in `$1`.
const SUPERVISOR: &str = "cd \"$1\" || exit 97\n: > started\n\"$2\" run \"$3\" < /dev/null > log 2>&1\necho \"$?\" > exit.tmp && mv exit.tmp exit\n";

/// What a local job folder records about its job (`job.json`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JobRecord {
    /// The job's id (its folder name).
    pub id: String,
    /// The request's name.
    pub name: String,
    /// The request's render context.
    pub render_context: uuid::Uuid,
    /// The request's tags.
    #[serde(default)]
    pub tags: Vec<String>,
    /// When it was submitted.
    pub submitted_ms: EpochMillis,
    /// The current attempt, from 1.
    pub attempt: u32,
    /// Frames in the job.
    pub frames: usize,
}

/// Job folders under `<data root>/jobs`, each run by a detached `openjd run`.
#[derive(Debug, Clone)]
pub struct LocalRuns {
    root: PathBuf,
    openjd: String,
    grace: Duration,
}

fn io(context: String) -> impl FnOnce(std::io::Error) -> FarmError {
    move |e| FarmError::io(context, e)
}

fn mtime_ms(path: &Path) -> Option<EpochMillis> {
    let t = std::fs::metadata(path).ok()?.modified().ok()?;
    Some(t.duration_since(UNIX_EPOCH).ok()?.as_millis() as EpochMillis)
}

impl LocalRuns {
    /// Job folders under `root`; runs use the `openjd` program.
    pub fn new(root: PathBuf, openjd: String, grace: Duration) -> LocalRuns {
        LocalRuns {
            root,
            openjd,
            grace,
        }
    }

    /// A new folder for the bundle `check` validates (`<data root>/checks/<uuid>`, never
    /// a job folder); the caller removes it.
    pub fn check_dir(&self) -> PathBuf {
        self.root
            .join("checks")
            .join(uuid::Uuid::new_v4().simple().to_string())
    }

    /// Whether `id` could name a job folder (anything else names no job).
    pub fn valid_id(id: &str) -> bool {
        id.len() == 20 && id.starts_with("ojd-") && id[4..].bytes().all(|b| b.is_ascii_hexdigit())
    }

    /// The folder of job `id`.
    pub fn job_dir(&self, id: &str) -> PathBuf {
        self.root.join("jobs").join(id)
    }

    /// The folder of one attempt.
    pub fn attempt_dir(&self, id: &str, attempt: u32) -> PathBuf {
        self.job_dir(id).join(format!("attempt-{attempt}"))
    }

    /// The attempt's `openjd run` output.
    pub fn log_path(&self, id: &str, attempt: u32) -> PathBuf {
        self.attempt_dir(id, attempt).join("log")
    }

    /// Creates the job folder with its bundle and record, atomically (a folder is complete
    /// or absent).
    pub fn create(&self, record: &JobRecord, bundle: &RenderedJob) -> Result<()> {
        let jobs = self.root.join("jobs");
        std::fs::create_dir_all(&jobs).map_err(io(format!("cannot create {}", jobs.display())))?;
        let tmp = jobs.join(format!(".tmp-{}", record.id));
        let _ = std::fs::remove_dir_all(&tmp);
        write_bundle(&tmp.join("bundle"), bundle)?;
        write_file(
            &tmp.join("job.json"),
            &serde_json::to_vec_pretty(record).expect("serialisable"),
        )?;
        std::fs::rename(&tmp, self.job_dir(&record.id))
            .map_err(io(format!("cannot create job folder for {}", record.id)))
    }

    /// The job's record; `None` for an unknown id.
    pub fn record(&self, id: &str) -> Option<JobRecord> {
        if !LocalRuns::valid_id(id) {
            return None;
        }
        let text = std::fs::read(self.job_dir(id).join("job.json")).ok()?;
        serde_json::from_slice(&text).ok()
    }

    /// Replaces the job's record.
    pub fn save(&self, record: &JobRecord) -> Result<()> {
        let dir = self.job_dir(&record.id);
        let tmp = dir.join("job.json.tmp");
        write_file(
            &tmp,
            &serde_json::to_vec_pretty(record).expect("serialisable"),
        )?;
        std::fs::rename(&tmp, dir.join("job.json"))
            .map_err(io(format!("cannot update {}", dir.display())))
    }

    /// Every job id, in id order.
    pub fn ids(&self) -> Vec<String> {
        let mut ids: Vec<String> = std::fs::read_dir(self.root.join("jobs"))
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|e| e.file_name().into_string().ok())
            .filter(|n| LocalRuns::valid_id(n))
            .collect();
        ids.sort();
        ids
    }

    /// Starts attempt `attempt` of job `id`: a detached process group running `openjd run`,
    /// which outlives this process.
    pub fn launch(&self, id: &str, attempt: u32) -> Result<()> {
        let dir = self.attempt_dir(id, attempt);
        std::fs::create_dir_all(&dir).map_err(io(format!("cannot create {}", dir.display())))?;
        write_file(&dir.join("spawned"), b"")?;
        let template = self.job_dir(id).join("bundle").join("template.yaml");
        let mut command = std::process::Command::new("/bin/sh");
        for name in farm_core::secret::credential_variables_present() {
            command.env_remove(name);
        }
        command
            .arg("-c")
            .arg(SUPERVISOR)
            .arg("farm-openjd-run")
            .arg(&dir)
            .arg(&self.openjd)
            .arg(&template)
            .env("PYTHONUNBUFFERED", "1")
            .env(RUN_MARK_VAR, format!("{id}.{attempt}"))
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .process_group(0);
        let mut child = command
            .spawn()
            .map_err(io(format!("cannot start a run of job {id}")))?;
        write_file(&dir.join("pid"), child.id().to_string().as_bytes())?;
        // Reap it when it ends, so a long-lived caller does not keep zombies.
        std::thread::spawn(move || {
            let _ = child.wait();
        });
        Ok(())
    }

    fn pid(&self, id: &str, attempt: u32) -> Option<i32> {
        std::fs::read_to_string(self.attempt_dir(id, attempt).join("pid"))
            .ok()?
            .trim()
            .parse()
            .ok()
    }

    /// What the attempt's files and processes say.
    pub fn facts(&self, id: &str, attempt: u32) -> AttemptFacts {
        let dir = self.attempt_dir(id, attempt);
        let exit = std::fs::read_to_string(dir.join("exit"))
            .ok()
            .and_then(|t| t.trim().parse::<i32>().ok())
            .and_then(|code| Some((code, mtime_ms(&dir.join("exit"))?)));
        let alive = match self.pid(id, attempt) {
            // Launched a moment ago: the pid is being written.
            None => dir.join("spawned").exists() && !dir.join("exit").exists(),
            Some(pid) => {
                killpg(Pid::from_raw(pid), None).is_ok() || !self.marked(id, attempt).is_empty()
            }
        };
        AttemptFacts {
            spawned_ms: mtime_ms(&dir.join("spawned")),
            started_ms: mtime_ms(&dir.join("started")),
            exit,
            cancelled_ms: std::fs::read_to_string(dir.join("cancelled"))
                .ok()
                .and_then(|t| t.trim().parse().ok()),
            alive,
        }
    }

    /// Processes carrying the attempt's mark (the run, openjd, and the action's session).
    fn marked(&self, id: &str, attempt: u32) -> Vec<i32> {
        let needle = format!("{RUN_MARK_VAR}={id}.{attempt}\0");
        let mut out = Vec::new();
        for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
            let Ok(pid) = entry.file_name().to_string_lossy().parse::<i32>() else {
                continue;
            };
            if let Ok(env) = std::fs::read(entry.path().join("environ"))
                && env.windows(needle.len()).any(|w| w == needle.as_bytes())
            {
                out.push(pid);
            }
        }
        out
    }

    /// Cancels a running attempt: marks it cancelled, asks `openjd run` to cancel its
    /// session (SIGTERM to the run's group), then kills whatever is left after the grace.
    pub async fn stop(&self, id: &str, attempt: u32) -> Result<()> {
        let dir = self.attempt_dir(id, attempt);
        write_file(&dir.join("cancelled"), now_millis().to_string().as_bytes())?;
        if let Some(pid) = self.pid(id, attempt) {
            let _ = killpg(Pid::from_raw(pid), Signal::SIGTERM);
        }
        let deadline = tokio::time::Instant::now() + self.grace;
        loop {
            let left = self.marked(id, attempt);
            if left.is_empty() {
                return Ok(());
            }
            if tokio::time::Instant::now() >= deadline {
                for pid in left {
                    let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
                }
                if let Some(pid) = self.pid(id, attempt) {
                    let _ = killpg(Pid::from_raw(pid), Signal::SIGKILL);
                }
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// Writes a rendered bundle into `dir` (created), each file atomically.
pub fn write_bundle(dir: &Path, bundle: &RenderedJob) -> Result<()> {
    std::fs::create_dir_all(dir).map_err(io(format!("cannot create {}", dir.display())))?;
    for file in &bundle.files {
        let tmp = dir.join(format!(".{}.tmp", file.name));
        write_file(&tmp, file.contents.as_bytes())?;
        std::fs::rename(&tmp, dir.join(&file.name)).map_err(io(format!(
            "cannot write {}",
            dir.join(&file.name).display()
        )))?;
    }
    Ok(())
}

fn write_file(path: &Path, bytes: &[u8]) -> Result<()> {
    let mut f =
        std::fs::File::create(path).map_err(io(format!("cannot write {}", path.display())))?;
    f.write_all(bytes)
        .map_err(io(format!("cannot write {}", path.display())))
}

/// A new local job id: `ojd-` and 16 hex digits.
pub fn new_local_id() -> String {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    let random = uuid::Uuid::new_v4().as_u128();
    format!("ojd-{:016x}", (random ^ nanos) as u64)
}

/// The `deadline` CLI, run through a `CommandRunner`.
#[derive(Debug, Clone)]
pub struct DeadlineCli {
    runner: Arc<dyn CommandRunner>,
    program: String,
    common: Vec<String>,
}

impl DeadlineCli {
    /// `program` with `--farm-id`/`--queue-id`/`--profile`/`--region` when set.
    pub fn new(
        runner: Arc<dyn CommandRunner>,
        program: String,
        farm_id: Option<&str>,
        queue_id: Option<&str>,
        profile: Option<&str>,
        region: Option<&str>,
    ) -> DeadlineCli {
        let mut common = Vec::new();
        for (flag, value) in [
            ("--farm-id", farm_id),
            ("--queue-id", queue_id),
            ("--profile", profile),
            ("--region", region),
        ] {
            if let Some(v) = value {
                common.push(flag.to_owned());
                common.push(v.to_owned());
            }
        }
        DeadlineCli {
            runner,
            program,
            common,
        }
    }

    async fn run(&self, words: &[&str], job: Option<&JobId>) -> Result<String> {
        let mut argv: Vec<String> = vec![self.program.clone()];
        argv.extend(words.iter().map(|w| (*w).to_owned()));
        argv.extend(self.common.iter().cloned());
        if let Some(job) = job {
            argv.push("--job-id".into());
            argv.push(job.to_string());
        }
        let out = self.runner.run(&argv, None).await?;
        if out.success() {
            Ok(out.stdout)
        } else {
            Err(to_farm_error(&words.join(" "), &out, job))
        }
    }

    /// `deadline bundle submit --yes --priority P DIR`: the new job's id. The priority is
    /// passed explicitly: the CLI's `--priority` defaults to 50 and overrides the bundle's
    /// `deadline:priority` (seen with deadline 0.60.10 against the emulation).
    pub async fn submit(&self, bundle_dir: &Path, priority: u32) -> Result<String> {
        let dir = bundle_dir.display().to_string();
        let priority = priority.to_string();
        let out = self
            .run(
                &["bundle", "submit", "--yes", "--priority", &priority, &dir],
                None,
            )
            .await?;
        crate::parse::parse_submit_output(&out)
    }

    /// `deadline job get`.
    pub async fn get(&self, id: &JobId) -> Result<String> {
        self.run(&["job", "get"], Some(id)).await
    }

    /// `deadline job list`.
    pub async fn list(&self) -> Result<String> {
        self.run(&["job", "list"], None).await
    }

    /// `deadline job cancel --yes`.
    pub async fn cancel(&self, id: &JobId) -> Result<()> {
        self.run(&["job", "cancel", "--yes"], Some(id))
            .await
            .map(drop)
    }

    /// `deadline job requeue-tasks --yes` for failed, canceled and succeeded tasks.
    pub async fn requeue(&self, id: &JobId) -> Result<()> {
        self.run(
            &[
                "job",
                "requeue-tasks",
                "--yes",
                "--run-status",
                "failed",
                "--run-status",
                "canceled",
                "--run-status",
                "succeeded",
            ],
            Some(id),
        )
        .await
        .map(drop)
    }

    /// `deadline job logs --output json`: the newest session's last 10,000 lines (the
    /// most `GetLogEvents` returns at once), one per line; empty while the job has no
    /// session yet.
    pub async fn logs(&self, id: &JobId) -> Result<String> {
        match self
            .run(
                &["job", "logs", "--output", "json", "--limit", "10000"],
                Some(id),
            )
            .await
        {
            Ok(out) => crate::parse::parse_logs_output(&out),
            Err(e) if e.to_string().contains("No sessions found for job") => Ok(String::new()),
            Err(e) => Err(e),
        }
    }
}

/// The one place a failed `deadline` command becomes a `FarmError`, keeping its words.
pub fn to_farm_error(what: &str, out: &CommandOutput, job: Option<&JobId>) -> FarmError {
    let text = format!("{}{}", out.stderr, out.stdout);
    let message = format!(
        "deadline {what} failed ({}): {}",
        out.status.map_or("killed".into(), |s| format!("exit {s}")),
        text.trim()
    );
    if let Some(job) = job
        && text.contains("ResourceNotFoundException")
    {
        return FarmError::job_not_found(job.clone());
    }
    if [
        "AccessDenied",
        "ExpiredToken",
        "Unable to locate credentials",
        "UnauthorizedException",
    ]
    .iter()
    .any(|w| text.contains(w))
    {
        return FarmError::permission_denied(message);
    }
    if [
        "Throttling",
        "ServiceQuotaExceeded",
        "InternalServerError",
        "Could not connect",
        "EndpointConnectionError",
        "timed out",
    ]
    .iter()
    .any(|w| text.contains(w))
    {
        return FarmError::unavailable(message);
    }
    FarmError::scheduler(message)
}

/// The last `max` bytes of a run's log (lossily decoded), where a failed run's reason is
/// read from; empty when there is no log.
pub fn log_tail(path: &std::path::Path, max: u64) -> String {
    use std::io::{Read as _, Seek as _, SeekFrom};
    let Ok(mut f) = std::fs::File::open(path) else {
        return String::new();
    };
    let len = f.metadata().map(|m| m.len()).unwrap_or(0);
    let _ = f.seek(SeekFrom::Start(len.saturating_sub(max)));
    let mut bytes = Vec::new();
    let _ = f.read_to_end(&mut bytes);
    String::from_utf8_lossy(&bytes).into_owned()
}
