//! The CLI simulator: a `CommandRunner` that answers `sbatch`, `squeue`, `scancel`,
//! `scontrol` and `sacct` like Slurm 22.05 does (the recorded outputs and messages), and
//! runs every other command (mkdir, the log reader, grep) on this machine.

use std::collections::BTreeMap;
use std::time::Duration;

use async_trait::async_trait;
use farm_core::{CommandOutput, CommandRunner, LocalRunner, Result};
use serde_json::json;

use super::engine::{Engine, Fault, JobSpec, meta};
use super::sbatch;

#[derive(Clone)]
pub struct SimRunner {
    engine: Engine,
    local: LocalRunner,
}

impl std::fmt::Debug for SimRunner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SimRunner")
    }
}

fn out(status: i32, stdout: impl Into<String>, stderr: impl Into<String>) -> CommandOutput {
    CommandOutput {
        status: Some(status),
        stdout: stdout.into(),
        stderr: stderr.into(),
    }
}

/// `HH:MM:SS`, `D-HH:MM:SS`, `MM`, `MM:SS` as sbatch reads `--time`.
fn parse_time(text: &str) -> Option<Duration> {
    let (days, rest) = match text.split_once('-') {
        Some((d, r)) => (d.parse::<u64>().ok()?, r),
        None => (0, text),
    };
    let nums: Vec<u64> = rest
        .split(':')
        .map(|p| p.parse().ok())
        .collect::<Option<_>>()?;
    let secs = match (text.contains('-'), nums.as_slice()) {
        (false, [m]) => m * 60,
        (false, [m, s]) => m * 60 + s,
        (_, [h, m, s]) => h * 3600 + m * 60 + s,
        (true, [h]) => h * 3600,
        (true, [h, m]) => h * 3600 + m * 60,
        _ => return None,
    };
    Some(Duration::from_secs(days * 86400 + secs))
}

/// The job a script's directives describe, or sbatch's complaint.
pub fn spec_from_script(script: &str) -> std::result::Result<JobSpec, String> {
    let args = sbatch::directives(script);
    let mut spec = JobSpec {
        cwd: std::env::current_dir()
            .map(|d| d.display().to_string())
            .unwrap_or_default(),
        script: script.to_owned(),
        ..Default::default()
    };
    for (k, v) in sbatch::options(&args)? {
        match k.as_str() {
            "job-name" => spec.name = v,
            "comment" => spec.comment = v,
            "output" => spec.output = v,
            "open-mode" => spec.open_append = v == "append",
            "requeue" => {}
            "array" => {
                let (list, limit) = match v.split_once('%') {
                    Some((l, n)) => (
                        l,
                        Some(n.parse::<u32>().map_err(|_| {
                            "sbatch: error: Invalid job array specification".to_owned()
                        })?),
                    ),
                    None => (v.as_str(), None),
                };
                let ids = farm_slurm::parse::parse_task_ranges(list);
                if ids.is_empty() {
                    return Err("sbatch: error: Batch job submission failed: Invalid job array specification".into());
                }
                spec.array = Some(ids);
                spec.array_limit = limit;
            }
            "chdir" => spec.cwd = v,
            "time" => {
                spec.time_limit =
                    Some(parse_time(&v).ok_or_else(|| {
                        format!("sbatch: error: Invalid --time specification {v}")
                    })?)
            }
            "dependency" => {
                let ids = v.strip_prefix("afterok:").ok_or_else(|| {
                    format!("sbatch: error: the simulator only knows afterok dependencies: {v}")
                })?;
                spec.dependency = ids
                    .split(':')
                    .map(|d| d.parse::<u64>())
                    .collect::<std::result::Result<_, _>>()
                    .map_err(|_| {
                        "sbatch: error: Batch job submission failed: Job dependency problem"
                            .to_owned()
                    })?;
            }
            "kill-on-invalid-dep" => spec.kill_on_invalid_dep = v == "yes",
            "nice" => {
                spec.nice = v
                    .parse()
                    .map_err(|_| format!("sbatch: error: Invalid nice value {v}"))?
            }
            "partition" => {
                if v != "debug" && v != "render" {
                    return Err(format!(
                        "sbatch: error: invalid partition specified: {v}\nsbatch: error: Batch job submission failed: Invalid partition name specified"
                    ));
                }
                spec.partition = v;
            }
            "cpus-per-task" | "mem" | "gres" | "account" | "qos" | "constraint" | "reservation"
            | "licenses" | "wckey" => {}
            other => {
                return Err(format!(
                    "sbatch: unrecognized option '--{other}'\nTry \"sbatch --help\" for more information"
                ));
            }
        }
    }
    Ok(spec)
}

/// CPUs and memory (MiB) of the simulated cluster's one node, as the lab's.
const NODE: (u64, u64) = (8, 24105);

/// `sbatch --test-only`: the real 22.05's refusal of a job no node can hold, else its
/// expected start (now, in local time) and node, on stderr. Creates nothing.
fn test_only(engine: &Engine, script: &str) -> CommandOutput {
    let spec = match spec_from_script(script) {
        Ok(spec) => spec,
        Err(e) => return out(1, "", format!("{e}\n")),
    };
    let args = sbatch::directives(script);
    let mut cpus = 1;
    for (k, v) in sbatch::options(&args).unwrap_or_default() {
        let fits = match k.as_str() {
            "cpus-per-task" => {
                cpus = v.parse().unwrap_or(u64::MAX);
                cpus <= NODE.0
            }
            "mem" => v
                .trim_end_matches('M')
                .parse::<u64>()
                .is_ok_and(|mib| mib <= NODE.1),
            "gres" => false, // the node has no GPUs
            _ => true,
        };
        if !fits {
            let why = if k == "gres" {
                "sbatch: error: Invalid generic resource (gres) specification"
            } else {
                "allocation failure: Requested node configuration is not available"
            };
            return out(1, "", format!("{why}\n"));
        }
    }
    let partition = if spec.partition.is_empty() {
        "debug"
    } else {
        &spec.partition
    };
    let start = chrono::Local::now().format("%Y-%m-%dT%H:%M:%S");
    out(
        0,
        "",
        format!(
            "sbatch: Job {} to start at {start} using {cpus} processors on nodes sim in partition {partition}\n",
            engine.peek_next_id()
        ),
    )
}

impl SimRunner {
    pub fn new(engine: Engine) -> SimRunner {
        SimRunner {
            engine,
            local: LocalRunner::new(Duration::from_secs(30)),
        }
    }

    fn slurm(&self, program: &str, args: &[String], stdin: Option<&[u8]>) -> CommandOutput {
        let arg = |i: usize| args.get(i).map(String::as_str).unwrap_or("");
        match program {
            "sbatch" => {
                let script = String::from_utf8_lossy(stdin.unwrap_or_default()).into_owned();
                if args.iter().any(|a| a == "--test-only") {
                    return test_only(&self.engine, &script);
                }
                if !args.iter().any(|a| a == "--parsable") {
                    return out(1, "", "the simulator expects --parsable");
                }
                match spec_from_script(&script) {
                    Ok(spec) => {
                        let id = self.engine.submit(spec, script);
                        out(0, format!("{id}\n"), "")
                    }
                    Err(e) => out(1, "", format!("{e}\n")),
                }
            }
            "squeue" if arg(0) == "--json" => {
                let doc =
                    json!({ "meta": meta(), "errors": [], "jobs": self.engine.records(None) });
                out(0, serde_json::to_string_pretty(&doc).unwrap(), "")
            }
            "scancel" => match arg(0).parse::<u64>() {
                // The real scancel says nothing and exits 0 for an unknown numeric id.
                Ok(id) => {
                    self.engine.cancel(id);
                    out(0, "", "")
                }
                Err(_) => out(
                    1,
                    "",
                    format!("scancel: error: Invalid job id {}\n", arg(0)),
                ),
            },
            "scontrol" if arg(0) == "requeue" => {
                // `N` (the whole job) or a comma list of `N_I` array elements.
                let ids: Vec<Option<(u64, Option<u32>)>> =
                    arg(1).split(',').map(element_id).collect();
                let result = match ids.as_slice() {
                    [Some((id, None))] => Some(self.engine.requeue(*id)),
                    many if !many.is_empty()
                        && many.iter().all(|e| matches!(e, Some((_, Some(_)))))
                        && many
                            .iter()
                            .all(|e| e.map(|(id, _)| id) == many[0].map(|(id, _)| id)) =>
                    {
                        let id = many[0].expect("checked").0;
                        let indices: Vec<u32> =
                            many.iter().filter_map(|e| e.and_then(|(_, i)| i)).collect();
                        Some(self.engine.requeue_tasks(id, &indices))
                    }
                    _ => None,
                };
                match result {
                    Some(Ok(())) => out(0, "", ""),
                    Some(Err(e)) => out(1, "", format!("{e}\n")),
                    None => out(
                        1,
                        "",
                        format!("Invalid job id specified for job {}\n", arg(1)),
                    ),
                }
            }
            "scontrol" if arg(0) == "update" && arg(2).starts_with("starttime=now") => {
                let delay = match arg(2).strip_prefix("starttime=now") {
                    Some("") => Some(0),
                    Some(plus) => plus.strip_prefix('+').and_then(|n| n.parse::<i64>().ok()),
                    None => None,
                };
                match (arg(1).strip_prefix("jobid=").and_then(element_id), delay) {
                    (Some((id, index)), Some(delay))
                        if self.engine.release_task(id, index, delay) =>
                    {
                        out(0, "", "")
                    }
                    (_, None) => out(1, "", format!("Invalid time specification {}\n", arg(2))),
                    _ => out(1, "", "slurm_update error: Invalid job id specified\n"),
                }
            }
            "sacct" => out(1, "", "Slurm accounting storage is disabled\n"),
            other => out(
                1,
                "",
                format!("the simulator does not know `{other} {}`\n", args.join(" ")),
            ),
        }
    }
}

/// What the real 22.05 commands print while slurmctld is down (`fixtures/slurm/cli/`).
fn controller_down(program: &str, args: &[String]) -> CommandOutput {
    let recorded = |name: &str| {
        std::fs::read_to_string(super::fixtures().join("slurm/cli").join(name))
            .unwrap_or_else(|e| panic!("{name}: {e}"))
    };
    match program {
        // `squeue --json` exits 0 and says it in errors[].
        "squeue" if args.first().is_some_and(|a| a == "--json") => {
            out(0, recorded("squeue-slurmctld-down.json"), "")
        }
        "squeue" => out(1, "", recorded("squeue-slurmctld-down.stderr")),
        "sbatch" => out(1, "", recorded("sbatch-slurmctld-down.stderr")),
        "scancel" => out(8, "", recorded("scancel-slurmctld-down.stderr")),
        _ => out(
            1,
            "",
            format!("{program}: error: Unable to contact slurm controller (connect failure)\n"),
        ),
    }
}

#[async_trait]
impl CommandRunner for SimRunner {
    async fn run(&self, argv: &[String], stdin: Option<&[u8]>) -> Result<CommandOutput> {
        let program = argv[0].rsplit('/').next().unwrap_or("");
        if !matches!(
            program,
            "sbatch" | "squeue" | "scancel" | "scontrol" | "sacct"
        ) {
            return self.local.run(argv, stdin).await;
        }
        match self.engine.take_fault() {
            Fault::Stall => std::future::pending::<()>().await,
            Fault::Garble => return Ok(out(0, "<html>502 Bad Gateway \u{0} {\"jobs\":", "")),
            Fault::ControllerDown => return Ok(controller_down(program, &argv[1..])),
            Fault::None => {}
        }
        Ok(self.slurm(program, &argv[1..], stdin))
    }
}

/// Environment the simulated REST jobs start with, as a map.
pub fn env_map(value: &serde_json::Value) -> Option<BTreeMap<String, String>> {
    value.as_object().map(|o| {
        o.iter()
            .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_owned()))
            .collect()
    })
}

/// `N` or `N_I` (an array element) as scontrol reads a job id.
fn element_id(text: &str) -> Option<(u64, Option<u32>)> {
    match text.split_once('_') {
        None => Some((text.parse().ok()?, None)),
        Some((id, index)) => Some((id.parse().ok()?, Some(index.parse().ok()?))),
    }
}
