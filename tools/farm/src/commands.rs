//! What each subcommand does, on top of the `FarmPlugin` trait.

use std::io::{IsTerminal, Read, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use farm_core::{
    FarmError, FarmPlugin, FarmPluginExt, Job, JobFilter, JobId, JobRequest, JobState, RenderedJob,
    Result, WaitOptions,
};
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::json;

use crate::cli::{
    ContextArgs, CopyArgs, IdsArgs, ListArgs, LogArgs, Output, RenderArgs, SubmitArgs, ValidateArgs,
};
use crate::output::{self, exit, print_json};

/// Reads a request from a file (`.json` is JSON, anything else YAML) or `-` for stdin, and
/// validates it.
pub fn load_request(path: &Path) -> Result<JobRequest> {
    if path == Path::new("-") {
        let mut text = String::new();
        std::io::stdin()
            .read_to_string(&mut text)
            .map_err(|e| FarmError::io("cannot read the request from stdin", e))?;
        let request = if text.trim_start().starts_with('{') {
            JobRequest::from_json_str(&text)?
        } else {
            JobRequest::from_yaml_str(&text)?
        };
        request.validate()?;
        return Ok(request);
    }
    JobRequest::from_path(path)
}

pub async fn render(
    farm: Arc<dyn FarmPlugin>,
    args: &RenderArgs,
    output: Output,
) -> Result<ExitCode> {
    let request = load_request(&args.request)?;
    let rendered = farm.render(&request).await?;
    match &args.out {
        Some(out) => {
            let written = write_rendered(&rendered, out)?;
            match output {
                Output::Json => print_json(&json!({ "written": written })),
                Output::Text => {
                    for path in written {
                        eprintln!("wrote {}", path.display());
                    }
                }
            }
        }
        None => match output {
            Output::Json => print_json(&rendered),
            Output::Text => {
                let Some(main) = rendered.files.first() else {
                    return Err(FarmError::scheduler(format!(
                        "the {} adapter rendered no file",
                        farm.adapter()
                    )));
                };
                let contents = &main.contents;
                print!("{contents}");
                // Byte-exact when redirected; tidy on a terminal.
                if !contents.ends_with('\n') && std::io::stdout().is_terminal() {
                    println!();
                }
                if rendered.files.len() > 1 {
                    let others: Vec<&str> = rendered.files[1..]
                        .iter()
                        .map(|f| f.name.as_str())
                        .collect();
                    eprintln!(
                        "farm: note: this job also needs {}; use --out DIR to write every file",
                        others.join(", ")
                    );
                }
            }
        },
    }
    Ok(ExitCode::SUCCESS)
}

/// Writes rendered files atomically (temporary name, then rename): to `out` itself for a
/// single file that is not a directory, else into the directory `out`. File names come from
/// the adapter (an external program, perhaps), so each must be one plain name: nothing is
/// written outside `out`.
fn write_rendered(rendered: &RenderedJob, out: &Path) -> Result<Vec<PathBuf>> {
    for file in &rendered.files {
        let plain = Path::new(&file.name)
            .components()
            .map(|c| matches!(c, std::path::Component::Normal(_)))
            .collect::<Vec<_>>()
            == [true];
        if !plain || file.name.contains('/') {
            return Err(FarmError::scheduler(format!(
                "the adapter named a rendered file {:?}; file names must be one plain name",
                file.name
            )));
        }
    }
    let single_target =
        rendered.files.len() == 1 && !out.is_dir() && !out.to_string_lossy().ends_with('/');
    let targets: Vec<PathBuf> = if single_target {
        vec![out.to_path_buf()]
    } else {
        std::fs::create_dir_all(out)
            .map_err(|e| FarmError::io(format!("cannot create {}", out.display()), e))?;
        rendered.files.iter().map(|f| out.join(&f.name)).collect()
    };
    for (file, target) in rendered.files.iter().zip(&targets) {
        let dir = target
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        let cannot =
            |e: std::io::Error| FarmError::io(format!("cannot write {}", target.display()), e);
        let mut tmp = tempfile::NamedTempFile::new_in(dir).map_err(cannot)?;
        tmp.write_all(file.contents.as_bytes())
            .and_then(|()| tmp.as_file().sync_all())
            .map_err(cannot)?;
        // A job file is read by schedulers, often as another user: not 0600.
        let mode = if file.executable { 0o755 } else { 0o644 };
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(tmp.path(), std::fs::Permissions::from_mode(mode))
                .map_err(cannot)?;
        }
        tmp.persist(target).map_err(|e| cannot(e.error))?;
    }
    Ok(targets)
}

pub fn validate(args: &ValidateArgs, output: Output) -> Result<ExitCode> {
    let mut reports = Vec::new();
    let mut any_bad = false;
    for path in &args.requests {
        let problems: Vec<(String, String)> = match load_request_unvalidated(path) {
            Ok(request) => request.problems(),
            Err(FarmError::InvalidRequest { field, problem }) => vec![(field, problem)],
            Err(other) => return Err(other),
        };
        any_bad |= !problems.is_empty();
        reports.push((path.clone(), problems));
    }
    match output {
        Output::Json => print_json(
            &reports
                .iter()
                .map(|(path, problems)| {
                    json!({
                        "request": path,
                        "valid": problems.is_empty(),
                        "problems": problems.iter().map(|(f, p)| json!({"field": f, "problem": p})).collect::<Vec<_>>(),
                    })
                })
                .collect::<Vec<_>>(),
        ),
        Output::Text => {
            for (path, problems) in &reports {
                if problems.is_empty() {
                    println!("{}: valid", path.display());
                } else {
                    println!("{}: {} problem(s)", path.display(), problems.len());
                    for (field, problem) in problems {
                        println!("  {field}: {problem}");
                    }
                }
            }
        }
    }
    Ok(if any_bad {
        ExitCode::from(exit::INVALID)
    } else {
        ExitCode::SUCCESS
    })
}

fn load_request_unvalidated(path: &Path) -> Result<JobRequest> {
    let text = if path == Path::new("-") {
        let mut text = String::new();
        std::io::stdin()
            .read_to_string(&mut text)
            .map_err(|e| FarmError::io("cannot read the request from stdin", e))?;
        text
    } else {
        std::fs::read_to_string(path)
            .map_err(|e| FarmError::io(format!("cannot read {}", path.display()), e))?
    };
    if path.extension().is_some_and(|e| e == "json") {
        JobRequest::from_json_str(&text)
    } else {
        JobRequest::from_yaml_str(&text)
    }
}

pub async fn submit(
    farm: Arc<dyn FarmPlugin>,
    args: &SubmitArgs,
    output: Output,
) -> Result<ExitCode> {
    let requests: Vec<JobRequest> = args
        .requests
        .iter()
        .map(|p| load_request(p))
        .collect::<Result<_>>()?;
    let mut ids = Vec::new();
    for request in &requests {
        let id = match farm.submit(request).await {
            Ok(id) => id,
            // Jobs already submitted exist: never lose their ids because a later one failed.
            Err(err) if !ids.is_empty() => {
                if output == Output::Json {
                    // One JSON document: the error, with the ids that exist.
                    let mut doc = output::error_json(&err);
                    doc["submitted"] = json!(ids);
                    println!("{doc}");
                    return Ok(ExitCode::from(output::exit_code(&err)));
                } else {
                    eprintln!(
                        "farm: submitted {} before the error: {}",
                        ids.len(),
                        ids.iter()
                            .map(ToString::to_string)
                            .collect::<Vec<_>>()
                            .join(" ")
                    );
                }
                return Err(err);
            }
            Err(err) => return Err(err),
        };
        if output == Output::Text {
            if args.wait {
                eprintln!("submitted {} as job {id}", request.name);
            } else {
                println!("{id}");
            }
        }
        ids.push(id);
    }
    if !args.wait {
        if output == Output::Json {
            print_json(&json!({ "ids": ids }));
        }
        return Ok(ExitCode::SUCCESS);
    }
    let mut finished = Vec::new();
    for (request, id) in requests.iter().zip(&ids) {
        finished.push(wait_with_progress(farm.as_ref(), id, request, args.timeout, output).await?);
    }
    if output == Output::Json {
        print_json(&finished);
    } else {
        for job in &finished {
            let log = job
                .render_log_filename
                .as_deref()
                .map(|l| format!("; log: {l}"))
                .unwrap_or_default();
            let reason = job
                .reason
                .as_deref()
                .map(|r| format!(" ({r})"))
                .unwrap_or_default();
            println!("job {} {}{reason}{log}", job.id, job.state);
        }
    }
    let code = if finished.iter().any(|j| j.state == JobState::Failed) {
        exit::JOB_FAILED
    } else if finished.iter().any(|j| j.state == JobState::Cancelled) {
        exit::JOB_CANCELLED
    } else {
        0
    };
    Ok(ExitCode::from(code))
}

/// Waits for a job with a progress bar (frames done / total) on a terminal, or a line per
/// state change otherwise.
async fn wait_with_progress(
    farm: &dyn FarmPlugin,
    id: &JobId,
    request: &JobRequest,
    timeout: Duration,
    output: Output,
) -> Result<Job> {
    let started = Instant::now();
    let total = request.frame_count() as u64;
    let interactive = std::io::stderr().is_terminal() && output == Output::Text;
    let bar = if interactive {
        let bar = ProgressBar::new(total);
        bar.set_style(
            ProgressStyle::with_template(
                "{spinner} job {prefix} [{bar:30}] {pos}/{len} frames  {msg}  {elapsed}",
            )
            .expect("valid template")
            .progress_chars("=> "),
        );
        bar.set_prefix(id.to_string());
        bar.enable_steady_tick(Duration::from_millis(120));
        Some(bar)
    } else {
        None
    };
    let mut last_state: Option<JobState> = None;
    let options = WaitOptions {
        timeout,
        interval: Duration::from_millis(200),
        max_interval: Duration::from_secs(3),
    };
    let mut on_update = |job: &Job| {
        if let Some(bar) = &bar {
            if let Some(p) = job.progress {
                bar.set_length(p.frames_total.max(1));
                bar.set_position(p.frames_done);
            }
            bar.set_message(job.state.to_string());
        } else if output == Output::Text && last_state != Some(job.state) {
            let frames = job
                .progress
                .map(|p| format!(" ({}/{} frames)", p.frames_done, p.frames_total))
                .unwrap_or_default();
            eprintln!(
                "job {} {}{frames} after {:.1}s",
                job.id,
                job.state,
                started.elapsed().as_secs_f64()
            );
        }
        last_state = Some(job.state);
    };
    let result = farm.wait_until_finished(id, &options, &mut on_update).await;
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }
    result
}

pub async fn status(farm: Arc<dyn FarmPlugin>, args: &IdsArgs, output: Output) -> Result<ExitCode> {
    let mut jobs = Vec::new();
    for id in &args.ids {
        jobs.push(farm.job(&JobId::new(id.clone())).await?);
    }
    match output {
        Output::Json if jobs.len() == 1 => print_json(&jobs[0]),
        Output::Json => print_json(&jobs),
        Output::Text => {
            for job in &jobs {
                print!("{}", output::job_details(job));
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

pub async fn list(farm: Arc<dyn FarmPlugin>, args: &ListArgs, output: Output) -> Result<ExitCode> {
    let filter = JobFilter {
        states: args.states.clone(),
        name: args.name.clone(),
        tag: args.tag.clone(),
        since: args.since,
    };
    let mut jobs = farm.list_jobs(&filter).await?;
    jobs.sort_by(|a, b| {
        a.submit_time
            .cmp(&b.submit_time)
            .then_with(|| a.id.cmp(&b.id))
    });
    match output {
        Output::Json => print_json(&jobs),
        Output::Text => print!("{}", output::job_table(&jobs)),
    }
    Ok(ExitCode::SUCCESS)
}

pub async fn log(farm: Arc<dyn FarmPlugin>, args: &LogArgs, output: Output) -> Result<ExitCode> {
    let id = JobId::new(args.id.clone());
    if args.path {
        let path = farm.render_log_filename(&id).await?;
        match output {
            Output::Json => print_json(&json!({ "id": id, "render_log_filename": path })),
            Output::Text => println!("{}", path.unwrap_or_default()),
        }
        return Ok(ExitCode::SUCCESS);
    }
    if !farm.capabilities().read_log {
        // Fall back to reading the file the farm names, which must be visible here.
        let path = farm
            .render_log_filename(&id)
            .await?
            .ok_or_else(|| FarmError::unsupported("read_log", farm.adapter()))?;
        let text = std::fs::read(&path)
            .map_err(|e| FarmError::io(format!("cannot read render log {path}"), e))?;
        let from = (args.offset as usize).min(text.len());
        std::io::stdout()
            .write_all(&text[from..])
            .map_err(|e| FarmError::io("stdout", e))?;
        return Ok(ExitCode::SUCCESS);
    }
    let mut offset = args.offset;
    let mut all = String::new();
    let mut idle = Duration::from_millis(200);
    loop {
        let chunk = farm.read_log(&id, offset).await?;
        if !chunk.data.is_empty() {
            if output == Output::Text {
                print!("{}", chunk.data);
                let _ = std::io::stdout().flush();
            } else {
                all.push_str(&chunk.data);
            }
            idle = Duration::from_millis(200);
        }
        offset = chunk.next_offset;
        if !args.follow || chunk.complete {
            if output == Output::Json {
                print_json(
                    &json!({ "id": id, "data": all, "next_offset": offset, "complete": chunk.complete }),
                );
            }
            return Ok(ExitCode::SUCCESS);
        }
        tokio::time::sleep(idle).await;
        idle = (idle * 3 / 2).min(Duration::from_secs(2));
    }
}

pub async fn stop(farm: Arc<dyn FarmPlugin>, args: &IdsArgs, output: Output) -> Result<ExitCode> {
    let mut done = Vec::new();
    for id in &args.ids {
        let id = JobId::new(id.clone());
        farm.stop(&id).await?;
        if output == Output::Text {
            println!("stopped {id}");
        }
        done.push(id);
    }
    if output == Output::Json {
        print_json(&json!({ "stopped": done }));
    }
    Ok(ExitCode::SUCCESS)
}

pub async fn start(farm: Arc<dyn FarmPlugin>, args: &IdsArgs, output: Output) -> Result<ExitCode> {
    let mut started = Vec::new();
    for id in &args.ids {
        let id = JobId::new(id.clone());
        let now = farm.start(&id).await?;
        if output == Output::Text {
            if now == id {
                println!("started {id}");
            } else {
                println!("started {id} again as job {now}");
            }
        }
        started.push(json!({ "id": id, "now": now }));
    }
    if output == Output::Json {
        print_json(&json!({ "started": started }));
    }
    Ok(ExitCode::SUCCESS)
}

pub async fn temp_dir(
    farm: Arc<dyn FarmPlugin>,
    args: &ContextArgs,
    output: Output,
) -> Result<ExitCode> {
    let path = farm.create_temp_directory(args.render_context).await?;
    match output {
        Output::Json => print_json(&json!({ "path": path })),
        Output::Text => println!("{path}"),
    }
    Ok(ExitCode::SUCCESS)
}

pub async fn copy_files(
    farm: Arc<dyn FarmPlugin>,
    args: &CopyArgs,
    output: Output,
) -> Result<ExitCode> {
    let copies = farm
        .copy_render_files(&args.files, args.render_context)
        .await?;
    match output {
        Output::Json => print_json(&copies),
        Output::Text => {
            for (source, copy) in &copies {
                println!("{} -> {copy}", source.display());
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

pub async fn installation(farm: Arc<dyn FarmPlugin>, output: Output) -> Result<ExitCode> {
    let meta = farm.installation_metadata().await?;
    match output {
        Output::Json => print_json(&meta),
        Output::Text => {
            println!("katana_root         {}", meta.katana_root);
            println!("renderboot_command  {}", meta.renderboot_command());
            for (plugin, path) in &meta.render_plugin_dso_paths {
                println!("render plug-in      {plugin}: {path}");
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

pub async fn environment(
    farm: Arc<dyn FarmPlugin>,
    args: &ContextArgs,
    output: Output,
) -> Result<ExitCode> {
    let env = farm.render_environment(args.render_context).await?;
    match output {
        Output::Json => print_json(&env),
        Output::Text => {
            for (k, v) in &env {
                println!("{k}={v}");
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
