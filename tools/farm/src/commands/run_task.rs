//! `farm run-task REQUEST --task N`: runs one task (one chunk) of a request on this machine,
//! as `farm_core::plan` and `farm_core::exec` define it. The execution path for every farm
//! that runs our tasks through its own plug-in (Deadline's FarmBridge).
//!
//! Output: the steps' stdout and stderr, then one `farm:` line naming the task's outcome
//! (``farm: task 2 failed: step 1 (`denoise`, frame 7): exit code 3``). Exit status: the
//! failing step's own status, 1 when it has none, 143 when stopped; an unreadable request or
//! a task outside it exits as `farm` does for that error (4: invalid request) before
//! anything runs.
//!
//! All logic lives in `farm_core::run_task`; this file only parses arguments.

use std::path::PathBuf;
use std::process::ExitCode;

use farm_core::Result;
use farm_core::run_task::{RunTaskOptions, cancel_on_termination, run_task};

use super::load_request;

/// Arguments of `farm run-task`.
#[derive(Debug, Clone, clap::Args)]
pub struct Args {
    /// The job request: a `.json`, `.yaml` or `.yml` file, or `-` for standard input.
    pub request: PathBuf,
    /// The task to run: the chunk's index, from 0.
    #[arg(long, value_name = "N")]
    pub task: usize,
    /// The chunk's first and last frame as the calling scheduler sees them (`FIRST-LAST`,
    /// or one frame); refused before anything runs if the request's chunk differs.
    #[arg(long, value_name = "FIRST-LAST", value_parser = parse_frames)]
    pub frames: Option<(u32, u32)>,
    /// Append the output to this file instead of writing it to standard output.
    #[arg(long, value_name = "FILE")]
    pub log: Option<PathBuf>,
}

fn parse_frames(text: &str) -> std::result::Result<(u32, u32), String> {
    let number = |s: &str| {
        s.trim()
            .parse::<u32>()
            .map_err(|_| format!("{text:?} is not FIRST-LAST (two frame numbers)"))
    };
    match text.split_once('-') {
        Some((a, b)) => Ok((number(a)?, number(b)?)),
        None => number(text).map(|f| (f, f)),
    }
}

/// Runs the task; the process should exit with the returned status.
pub async fn run(args: &Args) -> Result<ExitCode> {
    let request = load_request(&args.request)?;
    let options = RunTaskOptions {
        log: args.log.clone(),
        expected_frames: args.frames,
        ..Default::default()
    };
    let report = run_task(&request, args.task, &options, cancel_on_termination()).await?;
    Ok(ExitCode::from(u8::try_from(report.exit_code).unwrap_or(1)))
}
