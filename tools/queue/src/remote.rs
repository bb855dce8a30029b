//! `farm agents start|stop --ssh user@host`: remote agents over ssh, the seed's
//! StartAgents.sh/StopAgents.sh as one command.
//!
//! The agent token travels on ssh's standard input (through [`SshRunner`]), never in a
//! command line where `ps` on either machine would show it. Agents are detached with
//! `setsid nohup`, log to `<dir>/<name>.log` and are listed in `<dir>/agents-<host>.pid`,
//! which is what `stop` reads; it only signals processes whose command line is still an
//! agent's. The pid file is per host because `<dir>` is often in a home directory that
//! every machine mounts (NFS): one list for all would let `stop` on one machine discard
//! another's.

use std::time::Duration;

use farm_core::{CommandRunner, FarmError, Result, SshRunner};
use secrecy::{ExposeSecret, SecretString};

/// Starts `count` agents: `$1` farm program, `$2` server URL, `$3` count, `$4` directory,
/// then options every agent gets (`--slots 4 --tag gpu`). The token is the first line of
/// standard input.
pub const START_SCRIPT: &str = r#"set -eu
IFS= read -r FARM_AGENT_TOKEN || [ -n "${FARM_AGENT_TOKEN:-}" ]
export FARM_AGENT_TOKEN
farm=$1 server=$2 count=$3 dir=$4
shift 4
case $dir in "~/"*) dir="$HOME/${dir#"~/"}" ;; esac
mkdir -p "$dir"
host=$(hostname 2>/dev/null || uname -n)
command -v "$farm" >/dev/null 2>&1 || { echo "farm: $farm not found on $host" >&2; exit 127; }
launcher=
if command -v setsid >/dev/null 2>&1; then launcher=setsid; fi
i=0
while [ "$i" -lt "$count" ]; do
  name="$host-$$-$i"
  $launcher nohup "$farm" agent --server "$server" --name "$name" --work-dir "$dir/$name" "$@" </dev/null >>"$dir/$name.log" 2>&1 &
  echo "$!" >>"$dir/agents-$host.pid"
  echo "started agent $name (pid $!) for $server; log: $dir/$name.log"
  i=$((i + 1))
done
"#;

/// Stops the agents listed in `$1/agents-<host>.pid` (SIGTERM: running tasks are requeued) and
/// waits up to 30 s for them to exit.
pub const STOP_SCRIPT: &str = r#"set -u
dir=$1
case $dir in "~/"*) dir="$HOME/${dir#"~/"}" ;; esac
host=$(hostname 2>/dev/null || uname -n)
pidfile="$dir/agents-$host.pid"
if [ ! -f "$pidfile" ]; then echo "no agents were started in $dir on $host"; exit 0; fi
cmdline() {
  if [ -r "/proc/$1/cmdline" ]; then tr '\000' ' ' <"/proc/$1/cmdline"; else ps -p "$1" -o args= 2>/dev/null; fi
}
pids=
while read -r pid; do
  case $pid in ''|*[!0-9]*) continue ;; esac
  if cmdline "$pid" | grep -q ' agent '; then
    kill -TERM "$pid" 2>/dev/null && pids="$pids $pid" && echo "stopping agent pid $pid"
  fi
done <"$pidfile"
rm -f "$pidfile"
n=0
for pid in $pids; do
  while kill -0 "$pid" 2>/dev/null && [ "$n" -lt 300 ]; do sleep 0.1; n=$((n + 1)); done
done
echo "stopped"
"#;

/// Where and how to reach a remote machine.
#[derive(Debug, Clone)]
pub struct Remote {
    /// `user@host`.
    pub destination: String,
    /// Extra ssh options (`-i key`, `-p 2222`).
    pub ssh_options: Vec<String>,
    /// The ssh program (tests use a stand-in).
    pub ssh_program: String,
    /// The agents' directory on the remote machine (`~/` is the remote home).
    pub dir: String,
}

impl Remote {
    fn runner(&self) -> SshRunner {
        SshRunner::new(
            self.destination.clone(),
            self.ssh_options.clone(),
            Duration::from_secs(120),
        )
        .with_ssh_program(self.ssh_program.clone())
    }

    async fn run(&self, script: &str, args: &[String], stdin: Option<&[u8]>) -> Result<String> {
        let mut argv = vec![
            "sh".to_owned(),
            "-c".to_owned(),
            script.to_owned(),
            "sh".to_owned(),
        ];
        argv.extend(args.iter().cloned());
        let out = self.runner().run(&argv, stdin).await?;
        if out.success() {
            Ok(out.stdout)
        } else {
            Err(FarmError::scheduler(format!(
                "on {}: exit status {:?}: {}{}",
                self.destination,
                out.status,
                out.stderr.trim(),
                if out.stdout.trim().is_empty() {
                    String::new()
                } else {
                    format!(" (output: {})", out.stdout.trim())
                }
            )))
        }
    }

    /// Starts `count` agents that join the queue at `server` (a URL the remote machine can
    /// reach), each with `agent_options` (`farm agent` options). Returns what the remote
    /// side printed.
    pub async fn start(
        &self,
        farm_program: &str,
        server: &str,
        count: u32,
        agent_options: &[String],
        token: &SecretString,
    ) -> Result<String> {
        let mut args = vec![
            farm_program.to_owned(),
            server.to_owned(),
            count.to_string(),
            self.dir.clone(),
        ];
        args.extend_from_slice(agent_options);
        let stdin = format!("{}\n", token.expose_secret());
        self.run(START_SCRIPT, &args, Some(stdin.as_bytes())).await
    }

    /// Stops the agents started from this directory.
    pub async fn stop(&self) -> Result<String> {
        self.run(STOP_SCRIPT, std::slice::from_ref(&self.dir), None)
            .await
    }
}
