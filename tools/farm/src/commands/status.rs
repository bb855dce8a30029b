//! `farm status`: the state and details of jobs, and with `--tasks` every task of each
//! (local queue); unknown ids are reported after the jobs that exist.

use std::process::ExitCode;

use farm_core::{FarmError, JobId, Result};

use super::{Context, IdsArgs};
use crate::output::{self, Output};

/// `farm status`.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    ids: IdsArgs,
    /// Also list every task: frames, state, agent, attempt, exit code, times and where
    /// its output is in the render log (local queue). JSON: each job gains `tasks`.
    #[arg(long)]
    tasks: bool,
}

/// Shows the state and details of jobs (with `--tasks`, every task of each).
pub async fn run(args: &Args, ctx: &Context<'_>) -> Result<ExitCode> {
    let (name, farm) = ctx.named_farm()?;
    let output = ctx.output();
    let mut report = output::Report::new("jobs");
    for id in &args.ids.ids {
        let job = match farm.job(&JobId::new(id.clone())).await {
            Ok(job) => job,
            Err(err) => {
                report.not_found(output, err)?;
                continue;
            }
        };
        if output == Output::Text {
            print!("{}", output::job_details(&job));
        }
        if !args.tasks {
            report.item(&job);
            continue;
        }
        let tasks = task_list(ctx, &name, &job.id).await?;
        match output {
            Output::Text => print!("{}", task_table(&tasks)),
            Output::Json => {
                let mut item = serde_json::to_value(&job).unwrap_or_default();
                item["tasks"] = serde_json::to_value(&tasks).unwrap_or_default();
                report.item(item);
            }
        }
    }
    Ok(report.finish(output))
}

#[cfg(feature = "local")]
async fn task_list(
    ctx: &Context<'_>,
    name: &str,
    id: &JobId,
) -> Result<Vec<farm_queue::store::TaskRecord>> {
    let farms = ctx.farms()?;
    let spec = farms
        .spec(name)
        .ok_or_else(|| FarmError::config(format!("no farm named {name:?}")))?;
    if spec.adapter != farm_local::ADAPTER {
        return Err(FarmError::unsupported(
            "status --tasks",
            spec.adapter.clone(),
        ));
    }
    let queue =
        farm_local::LocalQueue::new(spec.settings_as(name)?, spec.common())?.with_name(name);
    queue.tasks(id).await
}

#[cfg(not(feature = "local"))]
async fn task_list(_: &Context<'_>, _: &str, _: &JobId) -> Result<Vec<serde_json::Value>> {
    Err(FarmError::unsupported("status --tasks", "this build"))
}

#[cfg(feature = "local")]
fn task_table(tasks: &[farm_queue::store::TaskRecord]) -> String {
    let mut out = format!(
        "  {:>6}  {:<12} {:<10} {:<16} {:>7} {:>5}  {:<19}  {:<19}  {}\n",
        "task", "frames", "state", "agent", "attempt", "exit", "started", "ended", "log bytes"
    );
    for t in tasks {
        let log = match (t.log_offset, t.log_end) {
            (Some(a), Some(b)) => format!("{a}-{b}"),
            _ => "-".into(),
        };
        out.push_str(&format!(
            "  {:>6}  {:<12} {:<10} {:<16} {:>7} {:>5}  {:<19}  {:<19}  {log}\n",
            t.index,
            t.frames.as_deref().unwrap_or("-"),
            t.state,
            t.agent.as_deref().unwrap_or("-"),
            t.attempt,
            t.exit_code.map_or("-".into(), |c| c.to_string()),
            output::time(t.start_time),
            output::time(t.end_time),
        ));
        if let Some(reason) = t.reason.as_deref().filter(|_| t.state != "done") {
            out.push_str(&format!("          {reason}\n"));
        }
    }
    out
}

#[cfg(not(feature = "local"))]
fn task_table(_: &[serde_json::Value]) -> String {
    String::new()
}
