//! Running scheduler commands (`sbatch`, `condor_q`, ...): locally, over ssh, or against a
//! simulator in tests. CLI adapters run every command through a [`CommandRunner`], so the
//! transport is a configuration choice and tests replace the scheduler without touching
//! the adapter.

use std::fmt;
use std::process::Stdio;
use std::time::Duration;

use async_trait::async_trait;
use tokio::io::AsyncWriteExt;

use crate::error::{FarmError, Result};

/// What a finished command returned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommandOutput {
    /// Exit status; `None` when killed by a signal.
    pub status: Option<i32>,
    /// Standard output (lossy UTF-8).
    pub stdout: String,
    /// Standard error (lossy UTF-8).
    pub stderr: String,
}

impl CommandOutput {
    /// Whether the command exited 0.
    pub fn success(&self) -> bool {
        self.status == Some(0)
    }
}

/// Runs scheduler commands. Implementations report only transport failures as errors
/// (cannot start, timed out); a command that ran and failed is an `Ok` output with its
/// status and stderr, for the adapter to interpret.
#[async_trait]
pub trait CommandRunner: Send + Sync + fmt::Debug {
    /// Runs `argv` (no shell) with `stdin` as its standard input.
    async fn run(&self, argv: &[String], stdin: Option<&[u8]>) -> Result<CommandOutput>;
}

/// Runs commands on this machine.
#[derive(Debug, Clone)]
pub struct LocalRunner {
    timeout: Duration,
    env: Vec<(String, String)>,
}

impl LocalRunner {
    /// A runner that gives up on a command after `timeout`.
    pub fn new(timeout: Duration) -> LocalRunner {
        LocalRunner {
            timeout,
            env: Vec::new(),
        }
    }

    /// Adds a variable to every command's environment (e.g. `SLURM_CONF`).
    pub fn with_env(mut self, name: impl Into<String>, value: impl Into<String>) -> LocalRunner {
        self.env.push((name.into(), value.into()));
        self
    }
}

#[async_trait]
impl CommandRunner for LocalRunner {
    async fn run(&self, argv: &[String], stdin: Option<&[u8]>) -> Result<CommandOutput> {
        run_process(argv, stdin, &self.env, self.timeout).await
    }
}

/// Runs commands on another host with `ssh`, whatever that host's login shell.
///
/// The remote side runs `sh -s` and reads a POSIX script on its standard input, so the
/// login shell only ever parses those two words. Arguments are quoted for `sh`; the
/// command's own standard input travels base64-encoded inside the script, byte-exact.
#[derive(Clone)]
pub struct SshRunner {
    destination: String,
    ssh_options: Vec<String>,
    timeout: Duration,
    ssh_program: String,
}

impl fmt::Debug for SshRunner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SshRunner")
            .field("destination", &self.destination)
            .finish()
    }
}

impl SshRunner {
    /// Commands run as `ssh [options] destination sh -s`.
    pub fn new(
        destination: impl Into<String>,
        ssh_options: Vec<String>,
        timeout: Duration,
    ) -> SshRunner {
        SshRunner {
            destination: destination.into(),
            ssh_options,
            timeout,
            ssh_program: "ssh".into(),
        }
    }

    /// Uses another program in place of `ssh` (tests use a local stand-in).
    pub fn with_ssh_program(mut self, program: impl Into<String>) -> SshRunner {
        self.ssh_program = program.into();
        self
    }

    /// The script sent to the remote `sh -s`.
    pub fn remote_script(argv: &[String], stdin: Option<&[u8]>) -> String {
        use shell_quote::{Quote, Sh};
        let words: Vec<String> = argv
            .iter()
            .map(|a| {
                String::from_utf8_lossy(&<Sh as Quote<Vec<u8>>>::quote(a.as_str())).into_owned()
            })
            .collect();
        let command = words.join(" ");
        match stdin {
            None => format!("exec {command} </dev/null\n"),
            Some(bytes) => {
                let encoded = base64_encode(bytes);
                format!("printf '%s' '{encoded}' | base64 -d | {command}\n")
            }
        }
    }
}

#[async_trait]
impl CommandRunner for SshRunner {
    async fn run(&self, argv: &[String], stdin: Option<&[u8]>) -> Result<CommandOutput> {
        let mut ssh = vec![self.ssh_program.clone()];
        ssh.extend(self.ssh_options.iter().cloned());
        ssh.extend([
            "--".into(),
            self.destination.clone(),
            "sh".into(),
            "-s".into(),
        ]);
        let script = SshRunner::remote_script(argv, stdin);
        run_process(&ssh, Some(script.as_bytes()), &[], self.timeout).await
    }
}

async fn run_process(
    argv: &[String],
    stdin: Option<&[u8]>,
    env: &[(String, String)],
    timeout: Duration,
) -> Result<CommandOutput> {
    let Some(program) = argv.first() else {
        return Err(FarmError::invalid("argv", "empty command"));
    };
    let mut command = tokio::process::Command::new(program);
    // Scheduler commands copy their environment into jobs (sbatch's default is
    // --export=ALL): never hand them the user's credentials.
    for name in crate::secret::credential_variables_present() {
        command.env_remove(name);
    }
    command
        .args(&argv[1..])
        .envs(env.iter().map(|(k, v)| (k, v)))
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let mut child = command.spawn().map_err(|e| {
        if e.kind() == std::io::ErrorKind::NotFound {
            // Not a passing fault: the scheduler's tools are not where we look.
            FarmError::Config {
                message: format!(
                    "cannot run {program}: not found (install the scheduler's tools, put them on PATH, \
                     or set the farm's settings.bin_dir)"
                ),
                source: Some(Box::new(e)),
            }
        } else {
            FarmError::Unavailable {
                message: format!("cannot run {program}: {e}"),
                source: Some(Box::new(e)),
            }
        }
    })?;
    if let (Some(bytes), Some(mut pipe)) = (stdin, child.stdin.take()) {
        let bytes = bytes.to_vec();
        tokio::spawn(async move {
            let _ = pipe.write_all(&bytes).await;
            let _ = pipe.shutdown().await;
        });
    }
    match tokio::time::timeout(timeout, child.wait_with_output()).await {
        Err(_) => Err(FarmError::unavailable(format!(
            "{program} did not finish within {}",
            humantime::format_duration(timeout)
        ))),
        Ok(Err(e)) => Err(FarmError::Unavailable {
            message: format!("{program} failed: {e}"),
            source: Some(Box::new(e)),
        }),
        Ok(Ok(out)) => Ok(CommandOutput {
            status: out.status.code(),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }),
    }
}

fn base64_encode(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(items: &[&str]) -> Vec<String> {
        items.iter().map(|s| s.to_string()).collect()
    }

    #[tokio::test]
    async fn local_commands_report_status_and_output_and_time_out() {
        let runner = LocalRunner::new(Duration::from_secs(5)).with_env("GREETING", "hi there");
        let out = runner
            .run(
                &args(&["sh", "-c", "cat; echo \"$GREETING\"; echo oops >&2; exit 3"]),
                Some(b"in\n"),
            )
            .await
            .unwrap();
        assert_eq!(out.status, Some(3));
        assert_eq!(out.stdout, "in\nhi there\n");
        assert_eq!(out.stderr, "oops\n");
        let err = runner
            .run(&args(&["/nonexistent/sbatch"]), None)
            .await
            .unwrap_err();
        assert_eq!(err.kind(), crate::ErrorKind::Config);
        let msg = err.to_string();
        assert!(
            msg.contains("/nonexistent/sbatch") && msg.contains("bin_dir"),
            "{msg}"
        );
        let slow = LocalRunner::new(Duration::from_millis(200));
        let err = slow.run(&args(&["sleep", "5"]), None).await.unwrap_err();
        assert!(err.to_string().contains("did not finish"), "{err}");
    }

    /// Run as a child of the test below, with a credential in its environment.
    #[tokio::test]
    async fn child_inherited_credentials_do_not_reach_commands() {
        if std::env::var_os("FARM_RUNNER_CHILD").is_none() {
            return;
        }
        let out = LocalRunner::new(Duration::from_secs(5))
            .run(&args(&["sh", "-c", "echo \"jwt=${SLURM_JWT-unset} http=${FARM_HTTP_TOKEN-unset} conf=${FARM_CONFIG-unset}\""]), None)
            .await
            .unwrap();
        assert_eq!(out.stdout, "jwt=unset http=unset conf=kept\n");
    }

    #[test]
    fn inherited_credentials_do_not_reach_commands() {
        let out = std::process::Command::new(std::env::current_exe().unwrap())
            .args([
                "--exact",
                "machinery::runner::tests::child_inherited_credentials_do_not_reach_commands",
                "--nocapture",
            ])
            .env("FARM_RUNNER_CHILD", "1")
            .env("SLURM_JWT", "eyJ.secret")
            .env("FARM_HTTP_TOKEN", "http-secret")
            .env("FARM_CONFIG", "kept")
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success() && text.contains("1 passed"), "{text}");
    }

    #[test]
    fn base64_matches_the_standard_alphabet() {
        assert_eq!(base64_encode(b""), "");
        assert_eq!(base64_encode(b"f"), "Zg==");
        assert_eq!(base64_encode(b"fo"), "Zm8=");
        assert_eq!(base64_encode(b"foo"), "Zm9v");
        assert_eq!(base64_encode(&[0xff, 0x00, 0x80]), "/wCA");
    }

    /// `sh -s` fed the remote script runs the exact argv with the exact stdin, even when
    /// arguments and input hold quotes, `$()` and newlines (the ssh hop is replaced by a
    /// local `sh -s`, which is all ssh adds).
    #[tokio::test]
    async fn the_ssh_script_reproduces_argv_and_stdin_exactly() {
        let dir = tempfile::tempdir().unwrap();
        let fake_ssh = dir.path().join("fake-ssh");
        // Drops the ssh options, `--` and destination, then runs the remaining words.
        std::fs::write(
            &fake_ssh,
            "#!/bin/sh\nwhile [ \"$1\" != -- ]; do shift; done; shift 2; exec \"$@\"\n",
        )
        .unwrap();
        let mut perm = std::fs::metadata(&fake_ssh).unwrap().permissions();
        std::os::unix::fs::PermissionsExt::set_mode(&mut perm, 0o755);
        std::fs::set_permissions(&fake_ssh, perm).unwrap();
        let runner = SshRunner::new(
            "user@render-head",
            vec!["-oBatchMode=yes".into()],
            Duration::from_secs(5),
        )
        .with_ssh_program(fake_ssh.display().to_string());
        let tricky = args(&[
            "sh",
            "-c",
            "printf '%s|' \"$@\"; cat",
            "sh",
            "it's",
            "$(id)",
            "a\nb",
            "",
            "`x`",
        ]);
        let stdin = b"#!/bin/bash\n#SBATCH --job-name='x'\necho \"$HOME\" \x01\xff\n".to_vec();
        let out = runner.run(&tricky, Some(&stdin)).await.unwrap();
        assert!(out.success(), "{out:?}");
        let mut expected = b"it's|$(id)|a\nb||`x`|".to_vec();
        expected.extend_from_slice(String::from_utf8_lossy(&stdin).as_bytes());
        assert_eq!(
            out.stdout.as_bytes(),
            String::from_utf8_lossy(&expected).as_bytes()
        );
        let no_stdin = runner
            .run(&args(&["sh", "-c", "cat; echo done"]), None)
            .await
            .unwrap();
        assert_eq!(no_stdin.stdout, "done\n");
    }
}
