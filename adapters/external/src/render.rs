//! JobRequest -> the tasks an external adapter receives: the plan expanded into concrete
//! argv and `FARM_*` variables per step, so the program needs no frame-set parser and no
//! placeholder logic of its own. Pure.

use std::collections::BTreeMap;

use farm_core::JobRequest;
use serde::Serialize;

/// One task as the external adapter receives it: concrete argv and `FARM_*` variables for
/// every step, in execution order.
#[derive(Debug, Clone, Serialize)]
pub struct WireTask {
    /// Chunk index from 0.
    pub index: u32,
    /// The chunk's frames, or `None`.
    pub frames: Option<String>,
    /// The steps in execution order; stop at the first that fails.
    pub steps: Vec<WireStep>,
}

/// One command invocation of a task.
#[derive(Debug, Clone, Serialize)]
pub struct WireStep {
    /// Which entry of `commands`.
    pub command_index: usize,
    /// The frame, when commands repeat per frame.
    pub frame: Option<u32>,
    /// The argv, placeholders substituted.
    pub argv: Vec<String>,
    /// `FARM_*` variables to set (on top of the request's environment).
    pub env: BTreeMap<String, String>,
}

/// The tasks of a validated request, as sent with `render` and `submit`.
pub fn wire_tasks(request: &JobRequest) -> Vec<WireTask> {
    request
        .tasks()
        .into_iter()
        .map(|task| WireTask {
            index: task.index,
            frames: task.frames.as_ref().map(ToString::to_string),
            steps: request
                .steps(&task)
                .into_iter()
                .map(|s| WireStep {
                    command_index: s.command_index,
                    frame: s.frame,
                    argv: s.argv,
                    env: s
                        .farm_env
                        .into_iter()
                        .map(|(k, v)| (k.to_owned(), v))
                        .collect(),
                })
                .collect(),
        })
        .collect()
}
