//! The agent protocol's messages (`docs/local-queue-agents.openapi.yaml`): what the server
//! and its agents exchange, in one place both sides use. The server's handlers are in
//! [`crate::agent_api`], the agent's side in [`crate::agent`].

use serde::{Deserialize, Serialize};

/// Environment variable that carries the agent token to agents (never argv, never logged).
pub const AGENT_TOKEN_ENV: &str = "FARM_AGENT_TOKEN";

/// Environment variable every task process of an agent carries: the agent's work directory.
/// When a local agent dies without cleaning up (SIGKILL), the supervisor finds its orphaned
/// task processes by it and kills them, so a requeued task never runs twice at once.
pub const AGENT_MARK_ENV: &str = "FARM_QUEUE_AGENT";

/// What registering an agent needs.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct AgentHello {
    /// A name for people (`local-1`, `render07-0`).
    pub name: String,
    /// The host it runs on.
    pub hostname: String,
    /// Its process id.
    pub pid: i64,
    /// Whether the server launched it.
    #[serde(default)]
    pub local: bool,
    /// The agent's version.
    #[serde(default)]
    pub version: String,
    /// Tasks it runs at once (at least 1).
    #[serde(default = "one")]
    pub slots: u32,
    /// CPU cores it offers to tasks' `resources.cpus`.
    #[serde(default)]
    pub cpus: u64,
    /// Memory it offers to tasks' `resources.memory`, in MiB.
    #[serde(default)]
    pub memory_mib: u64,
    /// GPUs it offers to tasks' `resources.gpus`.
    #[serde(default)]
    pub gpus: u64,
    /// Its tags: pools and groups a request can ask for (`native.local: {pool: lighting}`).
    #[serde(default)]
    pub tags: Vec<String>,
}

fn one() -> u32 {
    1
}

/// A task handed to an agent.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Assignment {
    /// Identifies this run of the task; the agent quotes it in every report.
    pub assignment_id: i64,
    /// The job's id.
    pub job_id: String,
    /// The task (chunk) index, from 0.
    pub task_index: u32,
    /// The task's attempt (grows when the job is started again, or its failed tasks are
    /// retried).
    pub attempt: u32,
    /// Which time this task is handed out within the attempt, from 1.
    pub r#try: u32,
    /// The job request, as submitted (canonical JSON object).
    pub request: serde_json::Value,
    /// The task's frames (`1001-1010`), so the agent need not walk the job's frame set;
    /// absent for a job without frames (and from servers that predate it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub frames: Option<String>,
    /// The server already counts the task as started (the lease asked for it with
    /// `start_as`): the agent runs it without a separate start call.
    #[serde(default)]
    pub started: bool,
}

/// The body of a lease: what lets an agent slot do one call per task instead of three.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct LeaseAsk {
    /// How the slot's previous task ended, recorded before the next task is chosen.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished: Option<Finished>,
    /// The agent's name: the task handed out is started at once (its start line in the
    /// render log names this agent), as if the agent had called `start`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_as: Option<String>,
}

/// A finished assignment, reported along with the next lease.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Finished {
    /// The assignment that ended.
    pub assignment_id: i64,
    /// How it ended.
    pub report: TaskReport,
}

/// How an agent says a task ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "outcome")]
pub enum TaskReport {
    /// Every command exited 0.
    Succeeded,
    /// A command failed (`exit code N` in the reason), or the task could not run.
    Failed {
        /// Human-readable cause.
        reason: String,
        /// The failing command's exit status, when it exited.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        exit_code: Option<i32>,
    },
    /// Stopped because the server asked (the job was stopped).
    Cancelled,
    /// Stopped because the agent itself was shutting down; the task is requeued.
    Interrupted,
}

/// What registration returns.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Welcome {
    /// The id to use in every later call.
    pub agent_id: i64,
    /// How often to send a heartbeat (also the long-poll wait), in ms.
    pub heartbeat_ms: u64,
    /// Silence after which the server declares the agent lost, in ms.
    pub agent_timeout_ms: u64,
}

/// Long-poll parameter.
#[derive(Debug, Deserialize)]
pub struct Wait {
    /// How long to hold the request when there is nothing to say, in ms.
    #[serde(default)]
    pub wait_ms: u64,
}

/// Heartbeat body.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct Beat {
    /// Assignments the agent is running.
    #[serde(default)]
    pub running: Vec<i64>,
    /// The host's load average over one minute, where the agent can read it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub load: Option<f64>,
}

/// Heartbeat answer.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct Orders {
    /// Assignments to stop now.
    pub cancel: Vec<i64>,
}

/// Start body.
#[derive(Debug, Serialize, Deserialize)]
pub struct Starting {
    /// The agent's name, for the render log.
    pub agent_name: String,
}

/// Log upload parameter.
#[derive(Debug, Deserialize)]
pub struct LogAt {
    /// Offset of the first byte in the assignment's output.
    pub offset: u64,
}

/// Log upload answer.
#[derive(Debug, Serialize, Deserialize)]
pub struct Received {
    /// Bytes of the assignment's output the server now has.
    pub received: u64,
}
