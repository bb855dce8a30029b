//! The simulated farm's nodes and its answer to "could you ever run this?": the scheduler
//! side of `check`. Every slot is a node of the same shape.

use farm_core::{JobRequest, now_millis};
use serde::{Deserialize, Serialize};

use super::Flaw;
use super::scheduler::SimScheduler;

/// CPUs of each simulated node.
pub const NODE_CPUS: u32 = 64;
/// Memory of each simulated node, in MiB (256G).
pub const NODE_MEMORY_MIB: u64 = 256 * 1024;
/// GPUs of each simulated node.
pub const NODE_GPUS: u32 = 8;

/// The scheduler's answer to a check, in its own words.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(super) struct NativeCheck {
    pub(super) verdict: String,
    pub(super) start_ms: i64,
    pub(super) node: String,
}

/// What no node can give the request, in the scheduler's words (`resources.cpus: ...`).
fn beyond_every_node(request: &JobRequest) -> Option<String> {
    let r = &request.resources;
    if let Some(cpus) = r.cpus.filter(|&c| c > NODE_CPUS) {
        return Some(format!(
            "resources.cpus: UNSATISFIABLE {cpus} cpus requested; nodes have {NODE_CPUS}"
        ));
    }
    if let Some(memory) = r.memory.filter(|m| m.mib() > NODE_MEMORY_MIB) {
        return Some(format!(
            "resources.memory: UNSATISFIABLE {memory} requested; nodes have {}M",
            NODE_MEMORY_MIB
        ));
    }
    if let Some(gpus) = r.gpus.filter(|&g| g > NODE_GPUS) {
        return Some(format!(
            "resources.gpus: UNSATISFIABLE {gpus} gpus requested; nodes have {NODE_GPUS}"
        ));
    }
    None
}

impl SimScheduler {
    /// Answers a check call: refuses what no node could run, else says when and where the
    /// job would start. Creates nothing (unless flawed).
    pub(super) fn check(&self, payload: String) -> String {
        let request = match JobRequest::from_json_str(&payload) {
            Ok(r) => r,
            Err(e) => return super::scheduler::reply_err("invalid", e.to_string()),
        };
        if self.flawed(Flaw::CheckCreatesJobs) {
            let _ = self.submit_payload(payload);
        }
        if self.flawed(Flaw::CheckRefusesRunnableRequests) {
            return super::scheduler::reply_err("invalid", "resources: UNSATISFIABLE no node");
        }
        if !self.flawed(Flaw::CheckAcceptsImpossibleRequests)
            && let Some(why) = beyond_every_node(&request)
        {
            return super::scheduler::reply_err("invalid", why);
        }
        super::scheduler::reply_ok(NativeCheck {
            verdict: "RUNNABLE".into(),
            start_ms: now_millis() + self.queue_delay_ms(),
            node: "sim-node-1".into(),
        })
    }
}
