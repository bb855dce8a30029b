//! One module per subcommand, as cargo has them: each owns its clap arguments (`Args`) and
//! one `run` function; `main.rs` parses and dispatches in one `match`. What several share
//! is here: the [`Context`] a command asks for its farm, the request loader, and argument
//! groups more than one command takes.

use std::io::Read;
use std::path::Path;
use std::sync::Arc;

use clap::Args;
use farm_core::{FarmError, FarmPlugin, JobRequest, Result};

use crate::Global;
use crate::farms::Farms;
use crate::output::Output;

#[cfg(feature = "local")]
pub mod agent;
#[cfg(feature = "local")]
pub mod agents;
pub mod conformance;
pub mod copy_files;
pub mod environment;
pub mod farms;
pub mod installation;
pub mod list;
pub mod log;
#[cfg(feature = "local")]
pub mod queue;
pub mod render;
pub mod run_task;
pub mod start;
pub mod status;
pub mod stop;
pub mod submit;
pub mod temp_dir;
pub mod validate;

/// What every command may use: the global options and, on demand, the chosen farm. Farms
/// are read only when a command asks, so `validate`, `queue serve` or `conformance --list`
/// work without a farms file.
pub struct Context<'a> {
    global: &'a Global,
}

impl<'a> Context<'a> {
    /// A context for these global options.
    pub fn new(global: &'a Global) -> Context<'a> {
        Context { global }
    }

    /// The output format.
    pub fn output(&self) -> Output {
        self.global.output
    }

    /// The farms file merged with the built-in farms.
    pub fn farms(&self) -> Result<Farms> {
        Farms::load(self.global.config.as_deref())
    }

    /// The chosen farm (`--farm`, `$FARM`, the file's default, else `local`) and its name.
    pub fn named_farm(&self) -> Result<(String, Arc<dyn FarmPlugin>)> {
        let farms = self.farms()?;
        let name = farms.chosen_name(self.global.farm.as_deref());
        let farm = farms.build(&name)?;
        tracing::debug!(farm = %name, adapter = farm.adapter(), "using farm");
        Ok((name, farm))
    }

    /// Whether a farm was named (`--farm` or `$FARM`): `validate` then also asks it.
    pub fn farm_named(&self) -> bool {
        self.global.farm.is_some()
    }

    /// The chosen farm.
    pub fn farm(&self) -> Result<Arc<dyn FarmPlugin>> {
        self.named_farm().map(|(_, farm)| farm)
    }
}

/// Job ids, for commands that act on jobs.
#[derive(Debug, Args)]
pub struct IdsArgs {
    /// Job ids as the farm printed them.
    #[arg(required = true)]
    pub ids: Vec<String>,
}

/// A render context, for the Katana staging commands.
#[derive(Debug, Args)]
pub struct ContextArgs {
    /// The render context (a UUID).
    pub render_context: uuid::Uuid,
}

/// Reads a request file, or stdin for `-`, without validating it. A file named `*.json` or
/// stdin starting with `{` is JSON; anything else is YAML.
pub fn read_request(path: &Path) -> Result<JobRequest> {
    let (text, json) = read_request_text(path)?;
    if json {
        JobRequest::from_json_str(&text)
    } else {
        JobRequest::from_yaml_str(&text)
    }
}

/// The text of a request file, or stdin for `-`, and whether it is JSON (a file named
/// `*.json`, or stdin starting with `{`).
pub fn read_request_text(path: &Path) -> Result<(String, bool)> {
    let stdin = path == Path::new("-");
    let text = if stdin {
        let mut text = String::new();
        std::io::stdin()
            .read_to_string(&mut text)
            .map_err(|e| FarmError::io("cannot read the request from stdin", e))?;
        text
    } else {
        std::fs::read_to_string(path)
            .map_err(|e| FarmError::io(format!("cannot read job request {}", path.display()), e))?
    };
    let json = if stdin {
        text.trim_start().starts_with('{')
    } else {
        path.extension().is_some_and(|e| e == "json")
    };
    Ok((text, json))
}

/// Reads and validates a request: a file as [`JobRequest::from_path`] does (which names the
/// file in parse errors), stdin as [`read_request`] does.
pub fn load_request(path: &Path) -> Result<JobRequest> {
    if path != Path::new("-") {
        return JobRequest::from_path(path);
    }
    let request = read_request(path)?;
    request.validate()?;
    Ok(request)
}

/// Waits for Ctrl-C or SIGTERM.
#[cfg(feature = "local")]
pub async fn wait_for_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).ok();
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        Some(_) = async { match term.as_mut() { Some(t) => t.recv().await, None => std::future::pending().await } } => {}
    }
}

/// Parses a duration argument such as `30s`, `10m` or `2h`.
pub fn duration(s: &str) -> std::result::Result<std::time::Duration, String> {
    humantime::parse_duration(s)
        .map_err(|e| format!("{s:?} is not a duration such as 30s, 10m or 2h: {e}"))
}
