//! Agents: registration, heartbeats, liveness and what becomes of a lost agent's tasks.

use super::*;

/// How long a heartbeat may fail to name an assignment handed to its agent before the
/// server concludes the hand-out never arrived: far longer than a reply takes to travel.
pub(super) const HAND_OUT_GRACE: Duration = Duration::from_secs(15);

/// An agent's assignments whose job is being stopped.
pub(super) const TO_STOP: &str = "SELECT a.id FROM assignments a JOIN jobs j ON j.id = a.job_id \
     WHERE a.agent_id = +?1 AND a.state IN ('dispatched', 'running') AND j.stop_requested = 1";

impl Store {
    /// Registers an agent and returns its id.
    pub fn register_agent(&self, hello: &AgentHello) -> Result<i64> {
        let now = self.tick();
        let id = self.write(|tx, _| {
            let mut tags = hello.tags.clone();
            tags.sort();
            tags.dedup();
            tx.execute(
                "INSERT INTO agents (name, hostname, pid, kind, state, registered_at, version, slots, cpus, memory_mib, gpus, tags) \
                 VALUES (?1, ?2, ?3, ?4, 'alive', ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
                params![
                    hello.name,
                    hello.hostname,
                    hello.pid,
                    if hello.local { "local" } else { "remote" },
                    now,
                    hello.version,
                    hello.slots.max(1) as i64,
                    hello.cpus as i64,
                    hello.memory_mib as i64,
                    hello.gpus as i64,
                    serde_json::to_string(&tags).expect("tags serialise")
                ],
            )?;
            Ok(tx.last_insert_rowid())
        })?;
        self.touch(id);
        self.refresh_placement()?;
        Ok(id)
    }

    pub(super) fn touch(&self, agent: i64) {
        self.liveness
            .lock()
            .expect("liveness poisoned")
            .insert(agent, Instant::now());
    }

    /// Notes that an agent was heard from; `Gone` if it is not (or no longer) registered.
    pub fn agent_seen(&self, agent: i64) -> Result<()> {
        let mut live = self.liveness.lock().expect("liveness poisoned");
        match live.get_mut(&agent) {
            Some(at) => {
                *at = Instant::now();
                Ok(())
            }
            None => Err(StoreError::Gone(format!(
                "agent {agent} is not registered (lost, stopped, or unknown); register again"
            ))),
        }
    }

    /// Agents registered and not lost.
    pub fn agents(&self) -> Result<Vec<AgentInfo>> {
        self.read(|conn| {
            let mut stmt = conn.prepare("SELECT id, name, hostname, pid, kind FROM agents WHERE state = 'alive' ORDER BY id")?;
            let rows = stmt.query_map([], |r| {
                Ok(AgentInfo { id: r.get(0)?, name: r.get(1)?, hostname: r.get(2)?, pid: r.get(3)?, kind: r.get(4)? })
            })?;
            Ok(rows.collect::<Result<_, _>>()?)
        })
    }

    /// Live agents, and those that ended since `ended_since` (ms), with what each runs.
    pub fn agent_statuses(&self, ended_since: i64) -> Result<Vec<AgentStatus>> {
        let seen = self.liveness.lock().expect("liveness poisoned").clone();
        let loads = self.loads.lock().expect("loads poisoned").clone();
        let (now, instant) = (now_millis(), Instant::now());
        self.read(|conn| {
            let mut stmt = conn.prepare(
                "SELECT a.id, a.name, a.hostname, a.pid, a.kind, a.state = 'alive', a.registered_at, a.ended_at,
                        s.job_id, j.name, s.idx, a.slots, a.cpus, a.memory_mib, a.gpus, a.tags,
                        t.first_frame, t.last_frame, COALESCE(s.started_at, s.dispatched_at), a.disabled
                 FROM agents a
                 LEFT JOIN assignments s ON s.agent_id = a.id AND s.state IN ('dispatched', 'running')
                 LEFT JOIN jobs j ON j.id = s.job_id
                 LEFT JOIN tasks t ON t.job_id = s.job_id AND t.idx = s.idx
                 WHERE a.state = 'alive' OR a.ended_at >= ?1
                 ORDER BY a.state = 'alive' DESC, a.id",
            )?;
            let rows = stmt.query_map([ended_since], |r| {
                let id: i64 = r.get(0)?;
                let alive: bool = r.get(5)?;
                let frames = match (r.get::<_, Option<i64>>(16)?, r.get::<_, Option<i64>>(17)?) {
                    (Some(a), Some(b)) if a != b => Some(format!("{a}-{b}")),
                    (Some(a), _) => Some(a.to_string()),
                    _ => None,
                };
                Ok(AgentStatus {
                    id,
                    name: r.get(1)?,
                    hostname: r.get(2)?,
                    pid: r.get(3)?,
                    kind: r.get(4)?,
                    alive,
                    registered_at: r.get(6)?,
                    ended_at: r.get(7)?,
                    job_id: r.get::<_, Option<i64>>(8)?.map(|id| id.to_string()),
                    job_name: r.get(9)?,
                    task: r.get(10)?,
                    slots: r.get(11)?,
                    cpus: r.get(12)?,
                    memory_mib: r.get(13)?,
                    gpus: r.get(14)?,
                    tags: serde_json::from_str(&r.get::<_, String>(15)?).unwrap_or_default(),
                    running: Vec::new(),
                    task_frames: frames,
                    task_since: r.get(18)?,
                    disabled: r.get(19)?,
                    last_seen: seen
                        .get(&id)
                        .filter(|_| alive)
                        .map(|at| now - instant.duration_since(*at).as_millis() as i64),
                    load: loads.get(&id).copied().filter(|_| alive),
                })
            })?;
            // An agent with several slots is one row per task it runs: fold them.
            let mut out: Vec<AgentStatus> = Vec::new();
            for row in rows {
                let mut row = row?;
                if let (Some(job), Some(task)) = (row.job_id.clone(), row.task) {
                    row.running.push(RunningTask { job_id: job, job_name: row.job_name.clone(), task });
                }
                match out.last_mut() {
                    Some(last) if last.id == row.id => {
                        if let (Some(job), Some(task)) = (row.job_id, row.task) {
                            last.running.push(RunningTask { job_id: job, job_name: row.job_name, task });
                        }
                    }
                    _ => out.push(row),
                }
            }
            Ok(out)
        })
    }

    /// Which of an agent's assignments it must cancel: those of stopped jobs, and any it
    /// reports running that the server took back.
    pub fn heartbeat(&self, agent: i64, running: &[i64], reconcile: bool) -> Result<Vec<i64>> {
        self.agent_seen(agent)?;
        let (cancel, unknown) = self.read(|conn| {
            let mut stmt = conn.prepare_cached(TO_STOP)?;
            let mut cancel: Vec<i64> = stmt.query_map([agent], |r| r.get(0))?.collect::<Result<_, _>>()?;
            for id in running {
                let state: Option<(String, i64)> = conn
                    .prepare_cached("SELECT state, agent_id FROM assignments WHERE id = ?1")?
                    .query_row([id], |r| Ok((r.get(0)?, r.get(1)?)))
                    .optional()?;
                let ours = matches!(&state, Some((s, owner)) if *owner == agent && (s == "running" || s == "dispatched"));
                if !ours && !cancel.contains(id) {
                    cancel.push(*id);
                }
            }
            let mut unknown = Vec::new();
            if reconcile {
                let cutoff = now_millis() - HAND_OUT_GRACE.as_millis() as i64;
                let mut stmt = conn.prepare_cached(
                    "SELECT id FROM assignments WHERE agent_id = ?1 AND state IN ('dispatched', 'running') AND dispatched_at < ?2",
                )?;
                for id in stmt.query_map(params![agent, cutoff], |r| r.get::<_, i64>(0))? {
                    let id = id?;
                    if !running.contains(&id) {
                        unknown.push(id);
                    }
                }
            }
            Ok((cancel, unknown))
        })?;
        if !unknown.is_empty() {
            self.take_back_unknown(agent, &unknown)?;
        }
        Ok(cancel)
    }

    /// Assignments the server handed to `agent` that its heartbeat does not name: the reply
    /// carrying them never reached it, so nothing runs them. They go back to the queue (or
    /// fail once out of tries), instead of holding one of the agent's slots forever.
    fn take_back_unknown(&self, agent: i64, ids: &[i64]) -> Result<()> {
        let now = self.tick();
        self.write(|tx, fx| {
            for &id in ids {
                let Ok((state, job, idx, _, _)) = Self::active_assignment(tx, agent, id) else {
                    continue;
                };
                if state == "running" || state == "dispatched" {
                    tracing::warn!(
                        agent,
                        assignment = id,
                        job,
                        task = idx,
                        "the agent does not know this assignment; taking it back"
                    );
                    self.lose_assignment(tx, id, job, idx, "its agent never received it", now, fx)?;
                }
            }
            Ok(())
        })
    }

    /// Marks agents lost: those not heard from within `timeout`, and `also` (local agents
    /// whose process ended). Their tasks are requeued or failed. Returns the lost ids.
    pub fn expire_agents(&self, timeout: Duration, also: &[i64], why: &str) -> Result<Vec<i64>> {
        let lost: Vec<i64> = {
            let mut live = self.liveness.lock().expect("liveness poisoned");
            let now = Instant::now();
            let ids: Vec<i64> = live
                .iter()
                .filter(|(id, seen)| also.contains(id) || now.duration_since(**seen) > timeout)
                .map(|(id, _)| *id)
                .collect();
            for id in &ids {
                live.remove(id);
            }
            ids
        };
        if lost.is_empty() {
            return Ok(lost);
        }
        let now = self.tick();
        self.write(|tx, fx| {
            for agent in &lost {
                let (name, host): (String, String) = tx.query_row(
                    "SELECT name, hostname FROM agents WHERE id = ?1",
                    [agent],
                    |r| Ok((r.get(0)?, r.get(1)?)),
                )?;
                let reason = if also.contains(agent) {
                    why.to_owned()
                } else {
                    format!("not heard from for {}", humantime::format_duration(timeout))
                };
                tx.execute(
                    "UPDATE agents SET state = 'lost', ended_at = ?2 WHERE id = ?1",
                    params![agent, now],
                )?;
                self.lose_assignments(
                    tx,
                    *agent,
                    &format!("agent {name} on {host} was lost ({reason})"),
                    now,
                    fx,
                )?;
            }
            Ok(())
        })?;
        self.refresh_placement()?;
        Ok(lost)
    }

    pub(super) fn lose_assignments(
        &self,
        tx: &Connection,
        agent: i64,
        why: &str,
        now: i64,
        fx: &mut Effects,
    ) -> Result<()> {
        let mut stmt = tx.prepare("SELECT id, job_id, idx FROM assignments WHERE agent_id = ?1 AND state IN ('dispatched', 'running')")?;
        let active: Vec<(i64, i64, i64)> = stmt
            .query_map([agent], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
            .collect::<Result<_, _>>()?;
        for (assignment, job, idx) in active {
            self.lose_assignment(tx, assignment, job, idx, why, now, fx)?;
        }
        Ok(())
    }

    /// An active assignment ended without a result: its task is cancelled if its job is
    /// being stopped, else requeued (or failed once out of tries).
    #[allow(clippy::too_many_arguments)]
    fn lose_assignment(
        &self,
        tx: &Connection,
        assignment: i64,
        job: i64,
        idx: i64,
        why: &str,
        now: i64,
        fx: &mut Effects,
    ) -> Result<()> {
        tx.execute(
            "UPDATE assignments SET state = 'lost', ended_at = ?2, reason = ?3 WHERE id = ?1",
            params![assignment, now, why],
        )?;
        let stop: bool = tx.query_row(
            "SELECT stop_requested FROM jobs WHERE id = ?1",
            [job],
            |r| r.get(0),
        )?;
        if stop {
            let (from, frames) = Self::task_state(tx, job, idx)?;
            tx.execute(
                "UPDATE tasks SET state = 'cancelled', reason = ?3 WHERE job_id = ?1 AND idx = ?2",
                params![job, idx, crate::state::STOPPED_BY_USER],
            )?;
            Self::shift(tx, job, from, TaskState::Cancelled, frames, now)?;
        } else {
            self.requeue_or_fail(tx, job, idx, why, now, fx)?;
        }
        self.recompute(tx, job, now, fx)
    }

    /// An agent leaves cleanly; whatever it still held is requeued.
    pub fn deregister_agent(&self, agent: i64) -> Result<()> {
        self.liveness
            .lock()
            .expect("liveness poisoned")
            .remove(&agent);
        let now = self.tick();
        self.write(|tx, fx| {
            let name: Option<String> = tx
                .query_row("SELECT name FROM agents WHERE id = ?1", [agent], |r| {
                    r.get(0)
                })
                .optional()?;
            let Some(name) = name else {
                return Err(StoreError::Gone(format!("agent {agent} is not registered")));
            };
            tx.execute(
                "UPDATE agents SET state = 'gone', ended_at = ?2 WHERE id = ?1",
                params![agent, now],
            )?;
            self.lose_assignments(tx, agent, &format!("agent {name} left"), now, fx)
        })?;
        self.refresh_placement()
    }

    /// Local agents registered as alive, with their process ids (to adopt after a restart).
    pub fn local_agents(&self) -> Result<Vec<(i64, i64)>> {
        Ok(self
            .agents()?
            .into_iter()
            .filter(|a| a.kind == "local")
            .map(|a| (a.id, a.pid))
            .collect())
    }

    /// The ids of every agent the store considers alive right now.
    pub fn live_agent_ids(&self) -> HashSet<i64> {
        self.liveness
            .lock()
            .expect("liveness poisoned")
            .keys()
            .copied()
            .collect()
    }
}
