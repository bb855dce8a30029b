//! Where a task may run: what a request needs (its `resources` and its `native.local`
//! pool and tags), what an agent offers (slots, cpus, memory, gpus, tags), whether one fits
//! the other, and, when no agent ever could, a sentence that says why
//! ("no agent has 64 GiB of memory (largest: 16 GiB)"). Pure data and functions: the store
//! applies them when it hands out work, when a job is checked, and when agents come and go.

use farm_core::JobRequest;
use serde::{Deserialize, Serialize};

/// The key of a request's own entry in `native`.
pub const NATIVE_KEY: &str = "local";

/// What every task of a job needs from the agent that runs it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Requirements {
    /// CPU cores (0: no request).
    pub cpus: u64,
    /// Memory in MiB (0: no request).
    pub memory_mib: u64,
    /// GPUs (0: no request).
    pub gpus: u64,
    /// Tags the agent must all carry: `native.local.tags`, plus `native.local.pool`.
    pub tags: Vec<String>,
}

impl Requirements {
    /// What `request` asks for. An invalid `native.local` entry is `(field, problem)`.
    pub fn of(request: &JobRequest) -> Result<Requirements, (String, String)> {
        let resources = &request.resources;
        let mut tags: Vec<String> = Vec::new();
        for (key, value) in request.native_for(NATIVE_KEY) {
            let field = format!("native.{NATIVE_KEY}.{key}");
            match key.as_str() {
                "pool" => {
                    let pool = value.as_str().ok_or_else(|| {
                        (field.clone(), "must be a pool name (an agent tag)".into())
                    })?;
                    farm_core::request::check_tag(pool).map_err(|e| (field.clone(), e))?;
                    tags.push(pool.to_owned());
                }
                "tags" => {
                    let list = value
                        .as_array()
                        .ok_or_else(|| (field.clone(), "must be a list of agent tags".into()))?;
                    for (i, tag) in list.iter().enumerate() {
                        let tag = tag.as_str().ok_or_else(|| {
                            (format!("{field}[{i}]"), "must be a tag (text)".into())
                        })?;
                        farm_core::request::check_tag(tag)
                            .map_err(|e| (format!("{field}[{i}]"), e))?;
                        tags.push(tag.to_owned());
                    }
                }
                // Images the web page shows as thumbnails (see `outputs`); no placement.
                "outputs" => {
                    let list = value.as_array().ok_or_else(|| {
                        (
                            field.clone(),
                            "must be a list of file paths or patterns".into(),
                        )
                    })?;
                    if let Some(i) = list.iter().position(|p| !p.is_string()) {
                        return Err((format!("{field}[{i}]"), "must be a path (text)".into()));
                    }
                }
                _ => {
                    return Err((
                        field,
                        "is not a setting of the local queue (it knows pool, tags and outputs)"
                            .into(),
                    ));
                }
            }
        }
        tags.sort();
        tags.dedup();
        Ok(Requirements {
            cpus: u64::from(resources.cpus.unwrap_or(0)),
            memory_mib: resources.memory.map_or(0, |m| m.mib()),
            gpus: u64::from(resources.gpus.unwrap_or(0)),
            tags,
        })
    }
}

/// What an agent offers.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Capacity {
    /// Tasks it runs at once.
    pub slots: u64,
    /// CPU cores.
    pub cpus: u64,
    /// Memory in MiB.
    pub memory_mib: u64,
    /// GPUs.
    pub gpus: u64,
    /// Its tags (pools, groups).
    pub tags: Vec<String>,
}

/// What an agent's running tasks hold.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Held {
    /// Tasks running or handed out.
    pub tasks: u64,
    /// Their CPU cores.
    pub cpus: u64,
    /// Their memory in MiB.
    pub memory_mib: u64,
    /// Their GPUs.
    pub gpus: u64,
}

impl Capacity {
    /// Whether a task needing `need` could ever run here (on an idle agent).
    pub fn could_run(&self, need: &Requirements) -> bool {
        self.fits(need, &Held::default())
    }

    /// Whether a task needing `need` fits beside what `held` already takes.
    pub fn fits(&self, need: &Requirements, held: &Held) -> bool {
        held.tasks < self.slots
            && held.cpus + need.cpus <= self.cpus
            && held.memory_mib + need.memory_mib <= self.memory_mib
            && held.gpus + need.gpus <= self.gpus
            && need.tags.iter().all(|t| self.tags.contains(t))
    }
}

/// Memory for people: `64 GiB`, `1.5 GiB`, `512 MiB`.
pub fn memory_text(mib: u64) -> String {
    if mib >= 1024 {
        let gib = mib as f64 / 1024.0;
        if mib.is_multiple_of(1024) {
            format!("{} GiB", mib / 1024)
        } else {
            format!("{gib:.1} GiB")
        }
    } else {
        format!("{mib} MiB")
    }
}

/// Why no agent of `agents` could ever run a task needing `need`, with the request field
/// to blame; `None` when one could, or when there are no agents to judge by.
pub fn why_nowhere(need: &Requirements, agents: &[Capacity]) -> Option<(String, &'static str)> {
    if agents.is_empty() || agents.iter().any(|a| a.could_run(need)) {
        return None;
    }
    let largest = |f: fn(&Capacity) -> u64| agents.iter().map(f).max().unwrap_or(0);
    if agents.iter().all(|a| a.slots == 0) {
        return Some(("no agent has a slot to run tasks in".into(), "(document)"));
    }
    let missing: Vec<&String> = need
        .tags
        .iter()
        .filter(|t| !agents.iter().any(|a| a.tags.contains(t)))
        .collect();
    if !missing.is_empty() {
        let list: Vec<&str> = missing.iter().map(|s| s.as_str()).collect();
        let noun = if list.len() == 1 { "tag" } else { "tags" };
        return Some((
            format!("no agent has the {noun} {}", list.join(", ")),
            "native.local",
        ));
    }
    if need.cpus > largest(|a| a.cpus) {
        return Some((
            format!(
                "no agent has {} cpus (largest: {})",
                need.cpus,
                largest(|a| a.cpus)
            ),
            "resources.cpus",
        ));
    }
    if need.memory_mib > largest(|a| a.memory_mib) {
        return Some((
            format!(
                "no agent has {} of memory (largest: {})",
                memory_text(need.memory_mib),
                memory_text(largest(|a| a.memory_mib))
            ),
            "resources.memory",
        ));
    }
    if need.gpus > largest(|a| a.gpus) {
        return Some((
            format!(
                "no agent has {} gpus (largest: {})",
                need.gpus,
                largest(|a| a.gpus)
            ),
            "resources.gpus",
        ));
    }
    let mut parts = Vec::new();
    if need.cpus > 0 {
        parts.push(format!("{} cpus", need.cpus));
    }
    if need.memory_mib > 0 {
        parts.push(format!("{} of memory", memory_text(need.memory_mib)));
    }
    if need.gpus > 0 {
        parts.push(format!("{} gpus", need.gpus));
    }
    if !need.tags.is_empty() {
        parts.push(format!("the tags {}", need.tags.join(", ")));
    }
    Some((
        format!("no agent has {} at once", parts.join(" and ")),
        "resources",
    ))
}

/// This machine's capacity, the defaults an agent advertises: its cores, its memory, and
/// its NVIDIA devices.
pub fn this_machine() -> Capacity {
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get() as u64);
    let memory_mib = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|text| {
            text.lines()
                .find(|l| l.starts_with("MemTotal:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kib| kib.parse::<u64>().ok())
        })
        .map_or(0, |kib| kib / 1024);
    let gpus = std::fs::read_dir("/dev")
        .map(|dir| {
            dir.flatten()
                .filter(|e| {
                    let name = e.file_name();
                    let name = name.to_string_lossy();
                    name.strip_prefix("nvidia")
                        .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
                })
                .count() as u64
        })
        .unwrap_or(0);
    Capacity {
        slots: 1,
        cpus,
        memory_mib,
        gpus,
        tags: Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn agent(cpus: u64, gib: u64, gpus: u64, tags: &[&str]) -> Capacity {
        Capacity {
            slots: 2,
            cpus,
            memory_mib: gib * 1024,
            gpus,
            tags: tags.iter().map(|t| t.to_string()).collect(),
        }
    }

    fn need(json: &str) -> Requirements {
        let request = JobRequest::from_json_str(json).unwrap();
        Requirements::of(&request).unwrap()
    }

    #[test]
    fn requirements_come_from_resources_pool_and_tags() {
        let r = need(
            r#"{"name": "x", "commands": [["true"]], "resources": {"cpus": 4, "memory": "8G", "gpus": 1},
                "native": {"local": {"pool": "lighting", "tags": ["gpu", "lighting"]}}}"#,
        );
        assert_eq!(
            r,
            Requirements {
                cpus: 4,
                memory_mib: 8192,
                gpus: 1,
                tags: vec!["gpu".into(), "lighting".into()]
            }
        );
        let bad = JobRequest::from_json_str(
            r#"{"name": "x", "commands": [["true"]], "native": {"local": {"queue": "a"}}}"#,
        )
        .unwrap();
        assert_eq!(Requirements::of(&bad).unwrap_err().0, "native.local.queue");
    }

    #[test]
    fn a_task_fits_beside_what_an_agent_already_runs() {
        let a = agent(8, 16, 0, &["gpu"]);
        let r = Requirements {
            cpus: 4,
            ..Default::default()
        };
        let one = Held {
            tasks: 1,
            cpus: 4,
            ..Default::default()
        };
        assert!(a.fits(&r, &Held::default()));
        assert!(a.fits(&r, &one));
        let full = Held {
            tasks: 1,
            cpus: 6,
            ..Default::default()
        };
        assert!(!a.fits(&r, &full));
        let slots = Held {
            tasks: 2,
            ..Default::default()
        };
        assert!(!a.fits(&Requirements::default(), &slots));
    }

    #[test]
    fn the_reason_names_what_no_agent_has() {
        let agents = [agent(8, 16, 0, &["gpu"]), agent(4, 64, 0, &[])];
        let why = |r: Requirements| why_nowhere(&r, &agents).map(|(w, _)| w);
        assert_eq!(
            why(Requirements {
                cpus: 1000,
                ..Default::default()
            })
            .as_deref(),
            Some("no agent has 1000 cpus (largest: 8)")
        );
        assert_eq!(
            why(Requirements {
                memory_mib: 128 * 1024,
                ..Default::default()
            })
            .as_deref(),
            Some("no agent has 128 GiB of memory (largest: 64 GiB)")
        );
        assert_eq!(
            why(Requirements {
                tags: vec!["lighting".into()],
                ..Default::default()
            })
            .as_deref(),
            Some("no agent has the tag lighting")
        );
        assert_eq!(
            why(Requirements {
                cpus: 8,
                memory_mib: 64 * 1024,
                ..Default::default()
            })
            .as_deref(),
            Some("no agent has 8 cpus and 64 GiB of memory at once")
        );
        assert_eq!(
            why(Requirements {
                cpus: 8,
                tags: vec!["gpu".into()],
                ..Default::default()
            }),
            None
        );
        assert_eq!(why_nowhere(&Requirements::default(), &[]), None);
    }
}
