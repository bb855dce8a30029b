//! `farm render`: the native job file(s) for a request, without submitting (offline).

use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use farm_core::{FarmError, RenderedJob, Result};
use serde_json::json;

use super::{Context, load_request};
use crate::output::{Output, print_json};

/// `farm render` arguments.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Request file (YAML or JSON; `-` reads stdin).
    pub request: PathBuf,
    /// Write the file(s) here instead of printing the main file.
    #[arg(long = "out", value_name = "PATH")]
    pub out: Option<PathBuf>,
}

/// Renders the request and prints or writes the file(s).
pub async fn run(args: &Args, ctx: &Context<'_>) -> Result<ExitCode> {
    let farm = ctx.farm()?;
    let output = ctx.output();
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
    if !single_target && !out.exists() {
        return write_new_directory(rendered, out);
    }
    let targets: Vec<PathBuf> = if single_target {
        vec![out.to_path_buf()]
    } else {
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

/// A job made of several files (an OpenJD bundle, a DAG and its nodes) written into a new
/// directory: the files go into a hidden sibling directory that is renamed into place
/// whole, so a crash or a full disk never leaves a directory with half of the job.
fn write_new_directory(rendered: &RenderedJob, out: &Path) -> Result<Vec<PathBuf>> {
    let parent = out
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    std::fs::create_dir_all(parent)
        .map_err(|e| FarmError::io(format!("cannot create {}", parent.display()), e))?;
    let staging = tempfile::Builder::new()
        .prefix(".farm-render-")
        .tempdir_in(parent)
        .map_err(|e| FarmError::io(format!("cannot write into {}", parent.display()), e))?;
    write_rendered(rendered, staging.path())?;
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(staging.path(), std::fs::Permissions::from_mode(0o755))
            .map_err(|e| FarmError::io(format!("cannot write {}", out.display()), e))?;
    }
    let built = staging.keep();
    if let Err(e) = std::fs::rename(&built, out) {
        let _ = std::fs::remove_dir_all(&built);
        return Err(FarmError::io(format!("cannot write {}", out.display()), e));
    }
    Ok(rendered.files.iter().map(|f| out.join(&f.name)).collect())
}
