//! The only code that runs Slurm commands or talks to slurmrestd. It returns Slurm's text;
//! `parse` reads it. Every failure becomes a `FarmError` in one place, [`to_farm_error`],
//! which keeps Slurm's own words.

use std::sync::Arc;
use std::time::Duration;

use farm_core::{CommandOutput, CommandRunner, FarmError, JobId, Result};
use reqwest::header::{HeaderMap, HeaderValue};
use secrecy::{ExposeSecret, SecretString};

use crate::parse::{self, SACCT_FORMAT};

/// A failure Slurm reported, before it becomes a `FarmError`.
#[derive(Debug)]
pub enum Failure<'a> {
    /// A command ran and exited non-zero (or was killed).
    Command {
        /// What ran, e.g. `sbatch`.
        program: &'a str,
        /// Its status and output.
        output: &'a CommandOutput,
    },
    /// slurmrestd answered with an error status or `errors[]`.
    Http {
        /// The HTTP status.
        status: u16,
        /// The body, verbatim.
        body: &'a str,
    },
    /// A job listing (`squeue --json`, slurmrestd's `GET jobs` or `GET job/{id}`) that
    /// listed `errors[]` and no job. Slurm 22.05's `squeue --json` reports a slurmctld it
    /// cannot reach this way, exiting 0.
    Listing {
        /// What listed, e.g. `squeue --json`.
        source: &'a str,
        /// Its `errors[]`.
        errors: &'a [parse::ApiError],
    },
}

fn join_errors(errors: &[parse::ApiError]) -> String {
    errors
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("; ")
}

/// Maps a failure of Slurm onto the error a caller can act on, keeping Slurm's message.
/// `id` is the job the call was about, for `JobNotFound`.
///
/// slurmctld being down or restarting is `Unavailable`, so callers that poll (`farm submit
/// --wait`) keep polling: squeue's and slurmrestd's "Unable to contact slurm controller",
/// and the `Unspecified error (error -1)` of `slurm_load_job(s)` that 22.05 reports in
/// `errors[]` instead (its description then even says "Unable to find JobId=N", which is
/// why only "Invalid job id" means a job is unknown).
pub fn to_farm_error(failure: Failure<'_>, id: Option<&JobId>) -> FarmError {
    let (message, status) = match &failure {
        Failure::Command { program, output } => {
            let text = if output.stderr.trim().is_empty() {
                output.stdout.trim()
            } else {
                output.stderr.trim()
            };
            let how = output.status.map_or_else(
                || "was killed by a signal".to_owned(),
                |s| format!("exited {s}"),
            );
            (format!("{program} {how}: {text}"), None)
        }
        Failure::Http { status, body } => {
            let detail = match parse::parse_errors(body) {
                Ok(errors) if !errors.is_empty() => join_errors(&errors),
                _ => body.trim().chars().take(500).collect(),
            };
            (
                format!("slurmrestd answered HTTP {status}: {detail}"),
                Some(*status),
            )
        }
        Failure::Listing { source, errors } => (
            format!("{source} listed no jobs: {}", join_errors(errors)),
            None,
        ),
    };
    let lower = message.to_ascii_lowercase();
    let has = |needles: &[&str]| needles.iter().any(|n| lower.contains(n));
    let controller_down = has(&[
        "unable to contact slurm controller",
        "socket timed out",
        "connection refused",
        "zero bytes were transmitted",
        "temporarily unable",
        "communication connection failure",
        "slurmctld is not responding",
    ]) || (has(&["slurm_load_job"]) && has(&["(error -1)"]));
    if controller_down {
        return FarmError::unavailable(message);
    }
    if has(&["invalid job id"])
        && let Some(id) = id
    {
        return FarmError::job_not_found(id.clone());
    }
    if has(&["job dependency problem", "invalid dependency"]) {
        return FarmError::invalid("depends_on", message);
    }
    if let Some((_, field)) = REFUSALS.iter().find(|(needle, _)| lower.contains(needle)) {
        return FarmError::invalid(*field, message);
    }
    if matches!(status, Some(401 | 403))
        || has(&[
            "access/permission denied",
            "access denied",
            "permission denied",
            "authentication failure",
            "not authorized",
            "invalid user",
        ])
    {
        return FarmError::permission_denied(message);
    }
    if status == Some(500) && has(&["slurmctld config is unable to load"]) {
        return FarmError::permission_denied(format!(
            "{message} (slurmrestd says this when the token is invalid or expired: mint one with `scontrol token`)"
        ));
    }
    if status == Some(404) {
        return FarmError::config(format!(
            "{message} (this slurmrestd does not serve that API: check settings.api_version and the -s plugins slurmrestd runs)"
        ));
    }
    if matches!(status, Some(502..=504)) {
        return FarmError::unavailable(message);
    }
    match &failure {
        // Killed: by our deadline or the runner's, so it may well work next time.
        Failure::Command { output, .. } if output.status.is_none() => {
            FarmError::unavailable(message)
        }
        // The shell (local, or the login node's over ssh) found no such program.
        Failure::Command { output, .. } if output.status == Some(127) => FarmError::config(
            format!("{message} (are Slurm's tools installed there? see settings.bin_dir)"),
        ),
        // A listing that failed without a recognised cause: slurmctld could not be read,
        // which an empty cluster never reports.
        Failure::Listing { .. } => FarmError::unavailable(message),
        _ => FarmError::scheduler(message),
    }
}

/// Slurm's refusals of a job it could never run (lower-cased, as `sbatch`, `sbatch
/// --test-only` and slurmrestd word them), and the request field each is about. They are
/// `InvalidRequest`, keeping Slurm's message: changing the request is what fixes them.
pub const REFUSALS: &[(&str, &str)] = &[
    ("requested node configuration is not available", "resources"),
    (
        "memory specification can not be satisfied",
        "resources.memory",
    ),
    ("more processors requested than permitted", "resources.cpus"),
    (
        "invalid generic resource (gres) specification",
        "resources.gpus",
    ),
    ("requested time limit is invalid", "resources.time_limit"),
    ("node count specification invalid", "resources"),
    ("invalid feature specification", "resources"),
    ("job violates accounting/qos policy", "resources"),
    ("invalid partition name specified", "partition"),
    (
        "invalid account or account/partition combination",
        "account",
    ),
    ("invalid qos specification", "qos"),
];

/// When a requeued job may start again (see [`CliClient::requeue`]).
pub const RELEASE_AT: &str = "starttime=now+2";

/// The command-line transport.
#[derive(Debug, Clone)]
pub struct CliClient {
    runner: Arc<dyn CommandRunner>,
    bin_dir: Option<String>,
    timeout: Duration,
}

/// The script `read_log` runs through the runner (so it works over ssh): the file's size,
/// then at most `$3` bytes from offset `$2`, base64-encoded so every byte survives.
const READ_LOG_SCRIPT: &str = r#"f=$1; o=$2; m=$3
[ -e "$f" ] || { echo missing; exit 0; }
s=$(($(wc -c < "$f"))) || exit 1
echo "size $s"
n=$((s - o)); [ "$n" -gt "$m" ] && n=$m
if [ "$n" -gt 0 ]; then tail -c +"$((o + 1))" -- "$f" | head -c "$n" | base64 -w 0; fi
echo"#;

impl CliClient {
    /// Runs Slurm's commands through `runner`, found in `bin_dir` when given.
    pub fn new(
        runner: Arc<dyn CommandRunner>,
        bin_dir: Option<String>,
        timeout: Duration,
    ) -> CliClient {
        CliClient {
            runner,
            bin_dir,
            timeout,
        }
    }

    fn program(&self, name: &str) -> String {
        match &self.bin_dir {
            Some(dir) => format!("{}/{name}", dir.trim_end_matches('/')),
            None => name.to_owned(),
        }
    }

    /// Runs one command with the adapter's own deadline on top of the runner's, so a runner
    /// that never returns still ends in `Unavailable`.
    async fn run(&self, argv: Vec<String>, stdin: Option<&[u8]>) -> Result<CommandOutput> {
        match tokio::time::timeout(self.timeout, self.runner.run(&argv, stdin)).await {
            Ok(result) => result,
            Err(_) => Err(FarmError::unavailable(format!(
                "{} did not answer within {}",
                argv[0],
                humantime::format_duration(self.timeout)
            ))),
        }
    }

    async fn slurm(
        &self,
        name: &str,
        args: &[&str],
        stdin: Option<&[u8]>,
        id: Option<&JobId>,
    ) -> Result<CommandOutput> {
        let mut argv = vec![self.program(name)];
        argv.extend(args.iter().map(|a| (*a).to_owned()));
        let output = self.run(argv, stdin).await?;
        if output.success() {
            Ok(output)
        } else {
            Err(to_farm_error(
                Failure::Command {
                    program: name,
                    output: &output,
                },
                id,
            ))
        }
    }

    /// `sbatch --test-only` with the script on standard input: Slurm checks the job and says
    /// when and where it would start, creating nothing. Returns what it printed (stderr).
    pub async fn sbatch_test_only(&self, script: &str) -> Result<String> {
        let output = self
            .slurm("sbatch", &["--test-only"], Some(script.as_bytes()), None)
            .await?;
        Ok(format!("{}{}", output.stderr, output.stdout))
    }

    /// `sbatch --parsable` with the script on standard input; returns its stdout.
    pub async fn sbatch(&self, script: &str) -> Result<String> {
        Ok(self
            .slurm("sbatch", &["--parsable"], Some(script.as_bytes()), None)
            .await?
            .stdout)
    }

    /// `squeue --json`: every job slurmctld holds, in one call.
    pub async fn squeue(&self) -> Result<String> {
        Ok(self.slurm("squeue", &["--json"], None, None).await?.stdout)
    }

    /// `scancel ID`.
    pub async fn scancel(&self, id: &JobId) -> Result<()> {
        self.slurm("scancel", &[id.as_str()], None, Some(id))
            .await
            .map(drop)
    }

    /// `scontrol requeue ID`, then `scontrol update jobid=ID starttime=now+2`: a requeued job
    /// is otherwise held back for two minutes (`BeginTime`). Not sooner than the next
    /// second but one: slurmd refuses a launch whose credential is from the same second as
    /// the previous run's end ("Job credential revoked"), and the job fails with exit 1.
    pub async fn requeue(&self, id: &JobId) -> Result<()> {
        self.slurm("scontrol", &["requeue", id.as_str()], None, Some(id))
            .await?;
        let jobid = format!("jobid={id}");
        if let Err(e) = self
            .slurm("scontrol", &["update", &jobid, RELEASE_AT], None, Some(id))
            .await
        {
            tracing::warn!(%id, error = %e, "requeued job keeps Slurm's begin-time delay");
        }
        Ok(())
    }

    /// `scontrol requeue N_I,N_J,...` (array elements, or `N` for a job that is not an
    /// array), then `scontrol update jobid=N_I starttime=now+2` for each, as for
    /// [`CliClient::requeue`]. The job keeps its id; elements not named are untouched.
    pub async fn requeue_elements(&self, id: &JobId, elements: &[String]) -> Result<()> {
        let list = elements.join(",");
        self.slurm("scontrol", &["requeue", &list], None, Some(id))
            .await?;
        for element in elements {
            let jobid = format!("jobid={element}");
            if let Err(e) = self
                .slurm("scontrol", &["update", &jobid, RELEASE_AT], None, Some(id))
                .await
            {
                tracing::warn!(%element, error = %e, "requeued element keeps Slurm's begin-time delay");
            }
        }
        Ok(())
    }

    /// `sacct -X -n -P -j ID -o ...`; `Ok(None)` when Slurm has no accounting storage.
    pub async fn sacct(&self, id: &JobId) -> Result<Option<String>> {
        let argv = vec![
            self.program("sacct"),
            "-X".into(),
            "-n".into(),
            "-P".into(),
            "-j".into(),
            id.to_string(),
            "-o".into(),
            SACCT_FORMAT.into(),
        ];
        let output = self.run(argv, None).await?;
        if parse::sacct_is_disabled(&output.stderr, &output.stdout) {
            return Ok(None);
        }
        if !output.success() {
            return Err(to_farm_error(
                Failure::Command {
                    program: "sacct",
                    output: &output,
                },
                None,
            ));
        }
        Ok(Some(output.stdout))
    }

    /// The lines of the jobcomp file about job `id` (empty when there are none).
    pub async fn jobcomp(&self, file: &str, id: &JobId) -> Result<String> {
        let pattern = format!("^JobId={id} |ArrayJobId={id} ");
        let argv = ["grep", "-a", "-E", "--", &pattern, file]
            .map(str::to_owned)
            .to_vec();
        let output = self.run(argv, None).await?;
        match output.status {
            Some(0) => Ok(output.stdout),
            Some(1) => Ok(String::new()),
            _ => Err(to_farm_error(
                Failure::Command {
                    program: "grep (jobcomp file)",
                    output: &output,
                },
                None,
            )),
        }
    }

    /// `mkdir -p DIR` where the jobs run (Slurm does not create output directories).
    pub async fn mkdir(&self, dir: &str) -> Result<()> {
        let argv = ["mkdir", "-p", "--", dir].map(str::to_owned).to_vec();
        let output = self.run(argv, None).await?;
        if output.success() {
            Ok(())
        } else {
            Err(to_farm_error(
                Failure::Command {
                    program: "mkdir",
                    output: &output,
                },
                None,
            ))
        }
    }

    /// Up to `max` bytes of `path` from `offset`, as `parse::parse_log_read` reads them.
    pub async fn read_log(&self, path: &str, offset: u64, max: u64) -> Result<String> {
        let argv = [
            "sh",
            "-c",
            READ_LOG_SCRIPT,
            "sh",
            path,
            &offset.to_string(),
            &max.to_string(),
        ]
        .map(str::to_owned)
        .to_vec();
        let output = self.run(argv, None).await?;
        if output.success() {
            Ok(output.stdout)
        } else {
            Err(to_farm_error(
                Failure::Command {
                    program: "reading the render log",
                    output: &output,
                },
                None,
            ))
        }
    }
}

/// The slurmrestd transport.
#[derive(Clone)]
pub struct RestClient {
    http: reqwest::Client,
    base: String,
    timeout: Duration,
}

impl std::fmt::Debug for RestClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RestClient")
            .field("base", &self.base)
            .finish_non_exhaustive()
    }
}

impl RestClient {
    /// A client for `url`'s `api_version` API, authenticating as `user` with `token`. The
    /// token only ever lives in a header marked sensitive.
    pub fn new(
        url: &str,
        api_version: &str,
        user: &str,
        token: &SecretString,
        timeout: Duration,
    ) -> Result<RestClient> {
        // Settings are checked when they load; this keeps a URL with credentials out of
        // `Debug` output and messages for clients built some other way too.
        crate::config::check_url(url)
            .map_err(|problem| FarmError::config(format!("slurmrestd url: {problem}")))?;
        let mut headers = HeaderMap::new();
        let user = HeaderValue::from_str(user).map_err(|_| {
            FarmError::config(format!("user name {user:?} cannot be sent in a header"))
        })?;
        let mut token = HeaderValue::from_str(token.expose_secret().trim()).map_err(|_| {
            FarmError::config("the slurmrestd token has characters a header cannot hold")
        })?;
        token.set_sensitive(true);
        headers.insert("X-SLURM-USER-NAME", user);
        headers.insert("X-SLURM-USER-TOKEN", token);
        let http = reqwest::Client::builder()
            .default_headers(headers)
            .timeout(timeout)
            .build()
            .map_err(|e| FarmError::Config {
                message: "cannot build the HTTP client".into(),
                source: Some(Box::new(e)),
            })?;
        Ok(RestClient {
            http,
            base: format!("{}/slurm/{api_version}", url.trim_end_matches('/')),
            timeout,
        })
    }

    async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<&str>,
        id: Option<&JobId>,
    ) -> Result<String> {
        let url = format!("{}{path}", self.base);
        let mut request = self.http.request(method, &url);
        if let Some(body) = body {
            request = request
                .header("Content-Type", "application/json")
                .body(body.to_owned());
        }
        let response = request
            .send()
            .await
            .map_err(|e| self.transport_error(&url, e))?;
        let status = response.status().as_u16();
        let text = response
            .text()
            .await
            .map_err(|e| self.transport_error(&url, e))?;
        if status != 200 {
            return Err(to_farm_error(
                Failure::Http {
                    status,
                    body: &text,
                },
                id,
            ));
        }
        Ok(text)
    }

    fn transport_error(&self, url: &str, e: reqwest::Error) -> FarmError {
        let what = if e.is_timeout() {
            format!(
                "slurmrestd did not answer {url} within {}",
                humantime::format_duration(self.timeout)
            )
        } else {
            format!("cannot reach slurmrestd at {url}")
        };
        FarmError::Unavailable {
            message: what,
            source: Some(Box::new(e.without_url())),
        }
    }

    /// `POST job/submit`; returns the reply text.
    pub async fn submit(&self, body: &str) -> Result<String> {
        self.call(reqwest::Method::POST, "/job/submit", Some(body), None)
            .await
    }

    /// `GET jobs`.
    pub async fn jobs(&self) -> Result<String> {
        self.call(reqwest::Method::GET, "/jobs", None, None).await
    }

    /// `GET job/{id}` (an array's id lists all its tasks).
    pub async fn job(&self, id: &JobId) -> Result<String> {
        self.call(reqwest::Method::GET, &format!("/job/{id}"), None, Some(id))
            .await
    }

    /// `DELETE job/{id}`. A 200 reply may still list errors.
    pub async fn cancel(&self, id: &JobId) -> Result<()> {
        let text = self
            .call(
                reqwest::Method::DELETE,
                &format!("/job/{id}"),
                None,
                Some(id),
            )
            .await?;
        match parse::parse_errors(&text) {
            Ok(errors) if !errors.is_empty() => Err(to_farm_error(
                Failure::Http {
                    status: 200,
                    body: &text,
                },
                Some(id),
            )),
            _ => Ok(()),
        }
    }
}

/// Creates a log directory on this host (REST: the log must be readable here anyway).
pub async fn mkdir_local(dir: &str) -> Result<()> {
    tokio::fs::create_dir_all(dir)
        .await
        .map_err(|e| FarmError::io(format!("cannot create log directory {dir}"), e))
}

#[cfg(test)]
mod tests {
    use super::*;
    use farm_core::ErrorKind;

    fn fixture(path: &str) -> String {
        std::fs::read_to_string(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("../../fixtures/slurm")
                .join(path),
        )
        .unwrap()
    }

    fn cmd(status: Option<i32>, stderr: &str) -> CommandOutput {
        CommandOutput {
            status,
            stdout: String::new(),
            stderr: stderr.into(),
        }
    }

    #[test]
    fn command_failures_keep_slurms_words() {
        let id = JobId::new("42");
        let cases = [
            (
                "scancel: error: Invalid job id farm-x\n",
                ErrorKind::JobNotFound,
            ),
            (
                "Invalid job id specified for job 987654321\n",
                ErrorKind::JobNotFound,
            ),
            (
                "sbatch: error: Batch job submission failed: Invalid partition name specified\n",
                ErrorKind::InvalidRequest,
            ),
            (
                "allocation failure: Requested node configuration is not available\n",
                ErrorKind::InvalidRequest,
            ),
            (
                "sbatch: error: Invalid generic resource (gres) specification\n",
                ErrorKind::InvalidRequest,
            ),
            (
                "sbatch: error: Batch job submission failed: Socket timed out on send/recv operation\n",
                ErrorKind::Unavailable,
            ),
            (
                "sbatch: error: Batch job submission failed: Access/permission denied\n",
                ErrorKind::PermissionDenied,
            ),
            (
                "squeue: error: Unable to contact slurm controller (connect failure)\n",
                ErrorKind::Unavailable,
            ),
            (
                "sbatch: error: Batch job submission failed: Job dependency problem\n",
                ErrorKind::InvalidRequest,
            ),
        ];
        for (stderr, kind) in cases {
            let out = cmd(Some(1), stderr);
            let err = to_farm_error(
                Failure::Command {
                    program: "sbatch",
                    output: &out,
                },
                Some(&id),
            );
            assert_eq!(err.kind(), kind, "{stderr}");
            if kind != ErrorKind::JobNotFound {
                assert!(err.to_string().contains(stderr.trim()), "{err}");
            }
        }
        let killed = cmd(None, "");
        assert_eq!(
            to_farm_error(
                Failure::Command {
                    program: "squeue",
                    output: &killed
                },
                None
            )
            .kind(),
            ErrorKind::Unavailable
        );
    }

    #[test]
    fn http_failures_map_on_status_and_errors() {
        let id = JobId::new("99999999");
        let cases = [
            (
                500,
                fixture("rest/get-job-unknown.response.json"),
                ErrorKind::JobNotFound,
            ),
            (
                500,
                fixture("rest/delete-job-unknown.response.json"),
                ErrorKind::JobNotFound,
            ),
            (
                401,
                fixture("rest/no-auth.response.txt"),
                ErrorKind::PermissionDenied,
            ),
            (
                500,
                fixture("rest/ping-bad-token.response.json"),
                ErrorKind::PermissionDenied,
            ),
            (
                404,
                fixture("rest/ping-v0.0.39.response.json"),
                ErrorKind::Config,
            ),
            (
                400,
                fixture("rest/submit-noenv.response.json"),
                ErrorKind::Scheduler,
            ),
            (
                400,
                fixture("rest/submit-badjson.response.json"),
                ErrorKind::Scheduler,
            ),
            (503, "busy".to_owned(), ErrorKind::Unavailable),
        ];
        for (status, body, kind) in cases {
            let err = to_farm_error(
                Failure::Http {
                    status,
                    body: &body,
                },
                Some(&id),
            );
            assert_eq!(err.kind(), kind, "{status} {body}");
        }
        let err = to_farm_error(
            Failure::Http {
                status: 400,
                body: &fixture("rest/submit-noenv.response.json"),
            },
            None,
        );
        assert!(err.to_string().contains("environment must be set"), "{err}");
    }

    #[test]
    fn slurmctld_down_is_unavailable_whatever_says_it() {
        let id = JobId::new("5");
        // Recorded from Slurm 22.05 with slurmctld stopped.
        for (program, status, file) in [
            ("squeue", 1, "cli/squeue-slurmctld-down.stderr"),
            ("sbatch", 1, "cli/sbatch-slurmctld-down.stderr"),
            ("scancel", 8, "cli/scancel-slurmctld-down.stderr"),
        ] {
            let out = cmd(Some(status), &fixture(file));
            let err = to_farm_error(
                Failure::Command {
                    program,
                    output: &out,
                },
                Some(&id),
            );
            assert_eq!(err.kind(), ErrorKind::Unavailable, "{file}: {err}");
            assert!(
                err.to_string()
                    .contains("Unable to contact slurm controller")
            );
        }
        for file in [
            "rest/get-jobs-slurmctld-down.response.json",
            // Its description says "Unable to find JobId=5": it is not an unknown job.
            "rest/get-job-slurmctld-down.response.json",
            "rest/submit-slurmctld-down.response.json",
            "rest/delete-job-slurmctld-down.response.json",
        ] {
            let body = fixture(file);
            let err = to_farm_error(
                Failure::Http {
                    status: 500,
                    body: &body,
                },
                Some(&id),
            );
            assert_eq!(err.kind(), ErrorKind::Unavailable, "{file}: {err}");
        }
        // `squeue --json` exits 0 and lists the failure in errors[].
        let reply = parse::parse_jobs(&fixture("cli/squeue-slurmctld-down.json")).unwrap();
        assert!(reply.records.is_empty() && !reply.errors.is_empty());
        let err = to_farm_error(
            Failure::Listing {
                source: "squeue --json",
                errors: &reply.errors,
            },
            None,
        );
        assert_eq!(err.kind(), ErrorKind::Unavailable, "{err}");
        assert!(
            err.to_string().ends_with(
                "squeue --json listed no jobs: Unspecified error: \
                 Failed while looking for jobs: in slurm_load_jobs (error -1)"
            ),
            "{err}"
        );
    }

    #[test]
    fn listings_with_errors_and_no_jobs_keep_what_the_errors_say() {
        let api = |error: &str, number: i64| parse::ApiError {
            error: error.into(),
            error_number: number,
            ..parse::ApiError::default()
        };
        let id = JobId::new("7");
        for (errors, kind) in [
            // Constructed: other wordings of a controller that cannot be reached.
            (
                vec![api(
                    "Unable to contact slurm controller (connect failure)",
                    1800,
                )],
                ErrorKind::Unavailable,
            ),
            (
                vec![api("Something slurmctld has never said", 9999)],
                ErrorKind::Unavailable,
            ),
            (
                vec![api("Access/permission denied", 2010)],
                ErrorKind::PermissionDenied,
            ),
            (
                vec![api("Invalid job id specified", 2017)],
                ErrorKind::JobNotFound,
            ),
        ] {
            let err = to_farm_error(
                Failure::Listing {
                    source: "slurmrestd GET job",
                    errors: &errors,
                },
                Some(&id),
            );
            assert_eq!(err.kind(), kind, "{errors:?}: {err}");
        }
    }

    #[test]
    fn a_program_the_shell_cannot_find_is_a_configuration_error() {
        // Over ssh the login node's shell says so with status 127.
        let out = cmd(Some(127), "bash: line 1: sbatch: command not found\n");
        let err = to_farm_error(
            Failure::Command {
                program: "sbatch",
                output: &out,
            },
            None,
        );
        assert_eq!(err.kind(), ErrorKind::Config, "{err}");
        assert!(
            err.to_string().contains("command not found") && err.to_string().contains("bin_dir"),
            "{err}"
        );
    }

    #[test]
    fn the_token_is_not_in_the_clients_debug_output() {
        let token = SecretString::from("eyJhbGciOiJIUzI1NiJ9.payload.signature".to_owned());
        let client = RestClient::new(
            "http://127.0.0.1:1",
            "v0.0.38",
            "root",
            &token,
            Duration::from_secs(1),
        )
        .unwrap();
        let debug = format!("{client:?}");
        assert!(
            !debug.contains("eyJ") && !debug.contains("signature"),
            "{debug}"
        );
    }

    #[tokio::test]
    async fn the_log_script_reads_exact_bytes_from_an_offset() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("it's a log");
        std::fs::write(&path, b"hello \xff world\n").unwrap();
        let cli = CliClient::new(
            Arc::new(farm_core::LocalRunner::new(Duration::from_secs(10))),
            None,
            Duration::from_secs(10),
        );
        let p = path.display().to_string();
        let read = parse::parse_log_read(&cli.read_log(&p, 6, 100).await.unwrap())
            .unwrap()
            .unwrap();
        assert_eq!(
            (read.size, read.bytes.as_slice()),
            (14, &b"\xff world\n"[..])
        );
        let read = parse::parse_log_read(&cli.read_log(&p, 0, 5).await.unwrap())
            .unwrap()
            .unwrap();
        assert_eq!(read.bytes, b"hello");
        let read = parse::parse_log_read(&cli.read_log(&p, 14, 5).await.unwrap())
            .unwrap()
            .unwrap();
        assert!(read.bytes.is_empty());
        assert_eq!(
            parse::parse_log_read(&cli.read_log("/nonexistent/x", 0, 5).await.unwrap()).unwrap(),
            None
        );
        // The script reads what a local read (the REST transport's) reads.
        assert_eq!(
            parse::parse_log_read(&cli.read_log(&p, 6, 3).await.unwrap()).unwrap(),
            farm_core::tail::read_file(&p, 6, 3).await.unwrap()
        );
    }
}
