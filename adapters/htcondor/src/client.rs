//! The only code that runs commands: `condor_*` (and a file writer) through a
//! [`CommandRunner`], locally or over ssh. It builds argv and returns raw output; the
//! plugin interprets it with [`crate::parse`].

use std::sync::Arc;
use std::time::Duration;

use farm_core::{CommandOutput, CommandRunner, FarmError, Result};

use crate::config::CondorSettings;
use crate::parse::{Action, QUERY_ATTRIBUTES};

/// Runs HTCondor's command-line tools.
#[derive(Debug, Clone)]
pub struct CondorCli {
    runner: Arc<dyn CommandRunner>,
    bin_dir: Option<String>,
    schedd: Option<String>,
    pool: Option<String>,
    timeout: Duration,
    history_scan_limit: Option<u64>,
}

/// A ClassAd constraint the adapter builds from trusted pieces only (integers, UUIDs, tags,
/// percent-encoded names), so it never needs ClassAd string escaping.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Constraint(String);

impl Constraint {
    /// `ClusterId == C`.
    pub fn cluster(cluster: u32) -> Constraint {
        Constraint(format!("ClusterId == {cluster}"))
    }

    /// Any of the clusters.
    pub fn clusters(clusters: &[u32]) -> Constraint {
        let parts: Vec<String> = clusters
            .iter()
            .map(|c| format!("ClusterId == {c}"))
            .collect();
        Constraint(format!("({})", parts.join(" || ")))
    }

    /// Jobs submitted by this adapter.
    pub fn farm_jobs() -> Constraint {
        Constraint(format!(
            "{} =!= undefined",
            crate::vocabulary::attr::RENDER_CONTEXT
        ))
    }

    /// Jobs of one render context.
    pub fn render_context(context: uuid::Uuid) -> Constraint {
        Constraint(format!(
            "{} =?= \"{context}\"",
            crate::vocabulary::attr::RENDER_CONTEXT
        ))
    }

    /// And a tag (tags use a safe alphabet without quotes or commas).
    pub fn and_tag(self, tag: &str) -> Constraint {
        debug_assert!(farm_core::request::check_tag(tag).is_ok());
        Constraint(format!(
            "{} && stringListMember(\"{tag}\", {})",
            self.0,
            crate::vocabulary::attr::TAGS
        ))
    }

    /// And an exact (percent-encoded) name.
    pub fn and_name(self, name: &str) -> Constraint {
        let encoded = crate::syntax::percent_encode(name);
        Constraint(format!(
            "{} && {} =?= \"{encoded}\"",
            self.0,
            crate::vocabulary::attr::NAME
        ))
    }

    /// And submitted at or after `secs`.
    pub fn and_submitted_since(self, secs: i64) -> Constraint {
        Constraint(format!("{} && QDate >= {secs}", self.0))
    }

    /// The expression.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// The script that writes one file atomically: `sh -c SCRIPT sh DIR NAME MODE` with the
/// contents on standard input.
const WRITE_FILE: &str = "tmp=\"$1/.$2.$$.partial\"; umask 022 && mkdir -p -- \"$1\" && cat > \"$tmp\" \
                          && chmod \"$3\" \"$tmp\" && mv -f -- \"$tmp\" \"$1/$2\" || { rm -f -- \"$tmp\"; exit 1; }";

impl CondorCli {
    /// A client running tools through `runner`.
    pub fn new(runner: Arc<dyn CommandRunner>, settings: &CondorSettings) -> CondorCli {
        CondorCli {
            runner,
            bin_dir: settings.bin_dir.as_ref().map(|p| p.display().to_string()),
            schedd: settings.schedd.clone(),
            pool: settings.pool.clone(),
            timeout: settings.command_timeout,
            history_scan_limit: settings.history_scan_limit,
        }
    }

    fn tool(&self, name: &str) -> Vec<String> {
        let program = match &self.bin_dir {
            Some(dir) => format!("{}/{name}", dir.trim_end_matches('/')),
            None => name.to_owned(),
        };
        let mut argv = vec![program];
        if let Some(schedd) = &self.schedd {
            argv.extend(["-name".to_owned(), schedd.clone()]);
        }
        if let Some(pool) = &self.pool {
            argv.extend(["-pool".to_owned(), pool.clone()]);
        }
        argv
    }

    /// Runs `argv`, bounded by the command timeout whatever the runner does.
    pub async fn run(&self, argv: &[String], stdin: Option<&[u8]>) -> Result<CommandOutput> {
        match tokio::time::timeout(self.timeout, self.runner.run(argv, stdin)).await {
            Ok(result) => result,
            Err(_) => Err(FarmError::unavailable(format!(
                "{} did not answer within {}",
                argv.first().map(String::as_str).unwrap_or("command"),
                humantime::format_duration(self.timeout)
            ))),
        }
    }

    /// `condor_submit -terse -` with the description on standard input, and `-append`
    /// lines (used to mark restarts).
    pub async fn submit(&self, description: &str) -> Result<CommandOutput> {
        let mut argv = self.tool("condor_submit");
        argv.extend(["-terse".to_owned(), "-".to_owned()]);
        self.run(&argv, Some(description.as_bytes())).await
    }

    /// `condor_submit -terse -dry-run - [-append LINE]... -`: condor_submit parses the
    /// description on standard input and builds every proc's ad as a submit would, without
    /// creating a job (its ads go to standard output, `-terse` adds `C.0 - C.N`). It needs
    /// no schedd, but asks one for its version when it can find it (and fails when a named
    /// `schedd` cannot be found).
    pub async fn dry_run(&self, description: &str, append: &[String]) -> Result<CommandOutput> {
        let mut argv = self.tool("condor_submit");
        argv.extend(["-terse".to_owned(), "-dry-run".to_owned(), "-".to_owned()]);
        for line in append {
            argv.extend(["-append".to_owned(), line.clone()]);
        }
        argv.push("-".to_owned());
        self.run(&argv, Some(description.as_bytes())).await
    }

    /// `condor_submit -terse -append LINE... FILE`: submits a job file already on the submit
    /// host again.
    pub async fn resubmit(&self, file: &str, append: &[String]) -> Result<CommandOutput> {
        let mut argv = self.tool("condor_submit");
        argv.push("-terse".to_owned());
        for line in append {
            argv.extend(["-append".to_owned(), line.clone()]);
        }
        argv.push(file.to_owned());
        self.run(&argv, None).await
    }

    /// `condor_q -json` for a constraint, projected on the attributes the adapter reads.
    pub async fn query(&self, constraint: &Constraint) -> Result<CommandOutput> {
        let mut argv = self.tool("condor_q");
        argv.extend([
            "-json".to_owned(),
            "-attributes".to_owned(),
            QUERY_ATTRIBUTES.join(","),
        ]);
        argv.extend(["-constraint".to_owned(), constraint.as_str().to_owned()]);
        self.run(&argv, None).await
    }

    /// `condor_history -json` for a constraint; `limit` stops the scan after that many
    /// matches (newest first).
    pub async fn history(
        &self,
        constraint: &Constraint,
        limit: Option<usize>,
    ) -> Result<CommandOutput> {
        let mut argv = self.tool("condor_history");
        argv.extend([
            "-json".to_owned(),
            "-attributes".to_owned(),
            QUERY_ATTRIBUTES.join(","),
        ]);
        argv.extend(["-constraint".to_owned(), constraint.as_str().to_owned()]);
        if let Some(limit) = limit {
            argv.extend(["-limit".to_owned(), limit.to_string()]);
        }
        if let Some(scan) = self.history_scan_limit {
            argv.extend(["-scanlimit".to_owned(), scan.to_string()]);
        }
        self.run(&argv, None).await
    }

    /// `condor_rm`, `condor_hold` or `condor_release` of a whole cluster.
    pub async fn act(&self, action: Action, cluster: u32) -> Result<CommandOutput> {
        let mut argv = self.tool(action.tool());
        argv.push(cluster.to_string());
        self.run(&argv, None).await
    }

    /// Writes a file on the submit host, atomically, creating its directory. The output
    /// is for the caller to judge.
    pub async fn write_file(
        &self,
        dir: &str,
        name: &str,
        contents: &str,
        executable: bool,
    ) -> Result<CommandOutput> {
        let mode = if executable { "0755" } else { "0644" };
        let argv: Vec<String> = ["sh", "-c", WRITE_FILE, "sh", dir, name, mode]
            .iter()
            .map(|s| (*s).to_owned())
            .collect();
        self.run(&argv, Some(contents.as_bytes())).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn constraints_are_built_from_trusted_pieces() {
        let ctx = uuid::Uuid::nil();
        assert_eq!(Constraint::cluster(12).as_str(), "ClusterId == 12");
        assert_eq!(
            Constraint::clusters(&[1, 2]).as_str(),
            "(ClusterId == 1 || ClusterId == 2)"
        );
        assert_eq!(
            Constraint::farm_jobs()
                .and_tag("show:abc")
                .and_submitted_since(1700)
                .as_str(),
            "FarmRenderContext =!= undefined && stringListMember(\"show:abc\", FarmTags) && QDate >= 1700"
        );
        assert_eq!(
            Constraint::render_context(ctx).as_str(),
            "FarmRenderContext =?= \"00000000-0000-0000-0000-000000000000\""
        );
        assert_eq!(
            Constraint::farm_jobs().and_name("a \"b\" $x").as_str(),
            "FarmRenderContext =!= undefined && FarmName =?= \"a %22b%22 %24x\""
        );
    }

    #[tokio::test]
    async fn the_file_writer_is_atomic_and_sets_the_mode() {
        let dir = tempfile::tempdir().unwrap();
        let runner = Arc::new(farm_core::LocalRunner::new(Duration::from_secs(10)));
        let cli = CondorCli::new(runner, &CondorSettings::default());
        let target = dir.path().join("sub dir 'q' $x");
        let target_s = target.display().to_string();
        let out = cli
            .write_file(
                &target_s,
                "task.sh",
                "#!/bin/bash\necho 'hi' \"$1\"\n",
                true,
            )
            .await
            .unwrap();
        assert!(out.success(), "{out:?}");
        let path = target.join("task.sh");
        assert_eq!(
            std::fs::read_to_string(&path).unwrap(),
            "#!/bin/bash\necho 'hi' \"$1\"\n"
        );
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o755
        );
        let out = cli
            .write_file(&target_s, "job.sub", "x\n", false)
            .await
            .unwrap();
        assert!(out.success(), "{out:?}");
        assert_eq!(
            std::fs::metadata(target.join("job.sub"))
                .unwrap()
                .permissions()
                .mode()
                & 0o777,
            0o644
        );
        let leftovers: Vec<_> = std::fs::read_dir(&target)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(leftovers.len(), 2, "{leftovers:?}");
        let failed = cli
            .write_file("/proc/no-such-dir", "x", "y", false)
            .await
            .unwrap();
        assert!(
            !failed.success() && failed.stderr.contains("/proc/no-such-dir"),
            "{failed:?}"
        );
    }
}
