//! Placement against the agents there are: what an agent holds, whether any agent could
//! ever run a request (the `check` answer), and the reason a job that fits nowhere waits
//! with ("no agent has 64 GiB of memory (largest: 16 GiB)").

use super::*;
use crate::placement::{Held, why_nowhere};

/// Whether and where a request could run, as `POST /v1/jobs:check` answers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Placement {
    /// One line for people.
    pub message: String,
    /// The agents that could run it (names), when there are any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub placement: Option<String>,
}

/// What an agent's running tasks hold: tasks, cpus, memory, gpus.
pub(super) const AGENT_HOLDS: &str = "SELECT COUNT(*), COALESCE(SUM(j.req_cpus), 0), COALESCE(SUM(j.req_memory), 0), \
     COALESCE(SUM(j.req_gpus), 0) FROM assignments a JOIN jobs j ON j.id = a.job_id \
     WHERE a.agent_id = +?1 AND a.state IN ('dispatched', 'running')";

impl Store {
    /// Tells the store what the local agents the server launches will offer, so requests
    /// can be judged before they register.
    pub fn expect_local_agents(&self, capacity: Option<Capacity>) -> Result<()> {
        *self.expected_local.lock().expect("poisoned") = capacity;
        self.refresh_placement()
    }

    /// An agent's capacity and what its running tasks hold.
    pub(super) fn agent_load(tx: &Connection, agent: i64) -> Result<(Capacity, Held)> {
        let capacity = tx
            .prepare_cached("SELECT slots, cpus, memory_mib, gpus, tags FROM agents WHERE id = ?1")?
            .query_row([agent], capacity_from_row)
            .optional()?
            .ok_or_else(|| StoreError::Gone(format!("agent {agent} is not registered")))?;
        let held = tx.prepare_cached(AGENT_HOLDS)?.query_row([agent], |r| {
            Ok(Held {
                tasks: r.get::<_, i64>(0)? as u64,
                cpus: r.get::<_, i64>(1)? as u64,
                memory_mib: r.get::<_, i64>(2)? as u64,
                gpus: r.get::<_, i64>(3)? as u64,
            })
        })?;
        Ok((capacity, held))
    }

    /// Why no agent could ever run a task needing `need`, by the agents known now.
    pub(super) fn why_nowhere(&self, need: &Requirements) -> Option<String> {
        let capacities = self.capacities.lock().expect("poisoned");
        why_nowhere(need, &capacities).map(|(why, _)| why)
    }

    /// Whether any agent (alive, or a local one the server will launch) could ever run
    /// `request`: `Err(Invalid)` naming the field when none could.
    pub fn placement(&self, request: &JobRequest) -> Result<Placement> {
        let need = Requirements::of(request)
            .map_err(|(field, problem)| StoreError::Invalid { field, problem })?;
        let capacities = self.capacities.lock().expect("poisoned").clone();
        if let Some((why, field)) = why_nowhere(&need, &capacities) {
            return Err(StoreError::Invalid {
                field: field.into(),
                problem: why,
            });
        }
        let live = self.live_agent_ids();
        let names: Vec<String> = self.read(|conn| {
            let mut stmt = conn.prepare_cached(
                "SELECT id, name, slots, cpus, memory_mib, gpus, tags FROM agents WHERE state = 'alive' ORDER BY id",
            )?;
            let rows = stmt.query_map([], |r| {
                let tags: String = r.get(6)?;
                Ok((
                    r.get::<_, i64>(0)?,
                    r.get::<_, String>(1)?,
                    Capacity {
                        slots: r.get::<_, i64>(2)? as u64,
                        cpus: r.get::<_, i64>(3)? as u64,
                        memory_mib: r.get::<_, i64>(4)? as u64,
                        gpus: r.get::<_, i64>(5)? as u64,
                        tags: serde_json::from_str(&tags).unwrap_or_default(),
                    },
                ))
            })?;
            let mut names = Vec::new();
            for row in rows {
                let (id, name, capacity) = row?;
                if live.contains(&id) && capacity.could_run(&need) {
                    names.push(name);
                }
            }
            Ok(names)
        })?;
        Ok(match names.len() {
            0 if capacities.is_empty() => Placement {
                message: "the request is valid; no agent is connected to judge where it could run"
                    .into(),
                placement: None,
            },
            0 => Placement {
                message:
                    "the request is valid; the queue's own agents could run it once they start"
                        .into(),
                placement: Some("local agents".into()),
            },
            n => Placement {
                message: format!(
                    "the request is valid; {n} agent{} could run it",
                    if n == 1 { "" } else { "s" }
                ),
                placement: Some(short_names(&names)),
            },
        })
    }

    /// Re-judges waiting jobs when the set of agent capacities changed: a job whose tasks
    /// fit no agent waits with a reason that says so, and loses it once one fits.
    pub(super) fn refresh_placement(&self) -> Result<()> {
        let mut capacities: Vec<Capacity> = self.read(|conn| {
            let mut stmt = conn.prepare_cached(
                "SELECT slots, cpus, memory_mib, gpus, tags FROM agents WHERE state = 'alive'",
            )?;
            let rows = stmt.query_map([], capacity_from_row)?;
            Ok(rows.collect::<Result<Vec<_>, _>>()?)
        })?;
        if let Some(local) = self.expected_local.lock().expect("poisoned").clone() {
            capacities.push(local);
        }
        for c in &mut capacities {
            c.tags.sort();
        }
        capacities.sort_by(|a, b| {
            (a.slots, a.cpus, a.memory_mib, a.gpus, &a.tags).cmp(&(
                b.slots,
                b.cpus,
                b.memory_mib,
                b.gpus,
                &b.tags,
            ))
        });
        capacities.dedup();
        {
            let mut known = self.capacities.lock().expect("poisoned");
            if *known == capacities {
                return Ok(());
            }
            *known = capacities.clone();
        }
        let now = self.tick();
        self.write(|tx, fx| {
            let rows: Vec<(i64, Requirements, Option<String>)> = {
                let mut stmt = tx.prepare_cached(
                    "SELECT id, req_cpus, req_memory, req_gpus, req_tags, unplaceable FROM jobs WHERE n_queued > 0",
                )?;
                let rows = stmt.query_map([], |r| {
                    let tags: String = r.get(4)?;
                    Ok((
                        r.get(0)?,
                        Requirements {
                            cpus: r.get::<_, i64>(1)? as u64,
                            memory_mib: r.get::<_, i64>(2)? as u64,
                            gpus: r.get::<_, i64>(3)? as u64,
                            tags: serde_json::from_str(&tags).unwrap_or_default(),
                        },
                        r.get(5)?,
                    ))
                })?;
                rows.collect::<Result<_, _>>()?
            };
            let mut verdicts: HashMap<Requirements, Option<String>> = HashMap::new();
            for (job, need, old) in rows {
                let why = verdicts
                    .entry(need.clone())
                    .or_insert_with(|| why_nowhere(&need, &capacities).map(|(w, _)| w))
                    .clone();
                if why != old {
                    tx.execute("UPDATE jobs SET unplaceable = ?2 WHERE id = ?1", params![job, why])?;
                    self.recompute(tx, job, now, fx)?;
                }
            }
            Ok(())
        })
    }
}

fn capacity_from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Capacity> {
    let tags: String = r.get(4)?;
    Ok(Capacity {
        slots: r.get::<_, i64>(0)? as u64,
        cpus: r.get::<_, i64>(1)? as u64,
        memory_mib: r.get::<_, i64>(2)? as u64,
        gpus: r.get::<_, i64>(3)? as u64,
        tags: serde_json::from_str(&tags).unwrap_or_default(),
    })
}

/// At most ten names, then how many more.
fn short_names(names: &[String]) -> String {
    if names.len() <= 10 {
        return names.join(", ");
    }
    format!("{}, and {} more", names[..10].join(", "), names.len() - 10)
}
