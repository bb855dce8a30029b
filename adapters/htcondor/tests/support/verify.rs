//! Checks that the job ads a parser built from a rendered submit file carry exactly what the
//! request means: argv and environment per proc (from `JobRequest::steps`, the reference
//! plan), identity attributes, resources; and that the old-syntax `Args`/`Env` never appear.

use std::collections::BTreeMap;

use farm_core::JobRequest;
use farm_htcondor::CondorSettings;
use farm_htcondor::render::{self, JobLayout, Mode};
use farm_htcondor::syntax;
use serde_json::Value;

/// One proc as a parser saw it.
#[derive(Debug, Clone)]
pub struct DecodedProc {
    /// The job ad's attributes (ClassAd JSON encoding).
    pub ad: serde_json::Map<String, Value>,
    /// `Arguments`, decoded.
    pub argv: Option<Vec<String>>,
    /// `Environment`, decoded.
    pub env: Option<BTreeMap<String, String>>,
}

fn str_attr<'a>(ad: &'a serde_json::Map<String, Value>, key: &str) -> Option<&'a str> {
    ad.get(key).and_then(Value::as_str)
}

fn int_attr(ad: &serde_json::Map<String, Value>, key: &str) -> Option<i64> {
    ad.get(key).and_then(Value::as_i64)
}

/// `Ok` when every proc matches the request exactly; otherwise what differs.
pub fn verify(
    request: &JobRequest,
    settings: &CondorSettings,
    cluster: u32,
    procs: &[DecodedProc],
) -> Result<(), String> {
    let tasks = request.tasks();
    if procs.len() != tasks.len() {
        return Err(format!("{} procs for {} tasks", procs.len(), tasks.len()));
    }
    let layout = JobLayout::for_request(request, &settings.log_directory);
    let log = layout.render_log(cluster);
    let mode = render::mode(request, settings);
    for (task, proc) in tasks.iter().zip(procs) {
        let ad = &proc.ad;
        let at = |what: &str| format!("proc {}: {what}", task.index);
        for old in ["Args", "Env"] {
            if ad.contains_key(old) {
                return Err(at(&format!(
                    "the old-syntax attribute {old} is set: {:?}",
                    ad[old]
                )));
            }
        }
        let checks: Vec<(&str, Option<String>, Option<String>)> = vec![
            (
                "ProcId",
                int_attr(ad, "ProcId").map(|v| v.to_string()),
                Some(task.index.to_string()),
            ),
            (
                "UserLog",
                str_attr(ad, "UserLog").map(str::to_owned),
                Some(layout.user_log()),
            ),
            (
                "JobBatchName",
                str_attr(ad, "JobBatchName").map(str::to_owned),
                Some(syntax::display_name(&request.name)),
            ),
            (
                "FarmName",
                str_attr(ad, "FarmName").map(syntax::percent_decode),
                Some(request.name.clone()),
            ),
            (
                "FarmRenderContext",
                str_attr(ad, "FarmRenderContext").map(str::to_owned),
                Some(request.render_context.to_string()),
            ),
            (
                "FarmTags",
                str_attr(ad, "FarmTags").map(str::to_owned),
                Some(request.tags.join(",")),
            ),
            (
                "FarmTasks",
                int_attr(ad, "FarmTasks").map(|v| v.to_string()),
                Some(tasks.len().to_string()),
            ),
            (
                "JobPrio",
                int_attr(ad, "JobPrio").map(|v| v.to_string()),
                Some(request.priority.to_string()),
            ),
        ];
        for (name, got, want) in checks {
            if got != want {
                return Err(at(&format!("{name} is {got:?}, expected {want:?}")));
            }
        }
        let steps = request.steps(task);
        match mode {
            Mode::Direct => {
                if str_attr(ad, "Cmd") != Some("/bin/bash") {
                    return Err(at(&format!("Cmd is {:?}", ad.get("Cmd"))));
                }
                let [step] = steps.as_slice() else {
                    return Err(at(&format!(
                        "direct mode with {} steps in a task",
                        steps.len()
                    )));
                };
                let mut want_argv = render::launcher_argv(request, &log);
                want_argv.extend(step.argv.iter().cloned());
                if proc.argv.as_ref() != Some(&want_argv) {
                    return Err(at(&format!(
                        "argv arrived as {:?}, intended {want_argv:?}",
                        proc.argv
                    )));
                }
                let mut want_env = request.environment.clone();
                for (k, v) in &step.farm_env {
                    want_env.insert((*k).to_owned(), v.clone());
                }
                if proc.env.as_ref() != Some(&want_env) {
                    return Err(at(&format!(
                        "environment arrived as {:?}, intended {want_env:?}",
                        proc.env
                    )));
                }
            }
            Mode::Wrapper => {
                let wrapper = layout.file(render::WRAPPER_FILE);
                if str_attr(ad, "Cmd") != Some(wrapper.as_str()) {
                    return Err(at(&format!(
                        "Cmd is {:?}, expected {wrapper:?}",
                        ad.get("Cmd")
                    )));
                }
                let want_argv = vec![task.index.to_string(), log.clone()];
                if proc.argv.as_ref() != Some(&want_argv) {
                    return Err(at(&format!(
                        "wrapper argv arrived as {:?}, intended {want_argv:?}",
                        proc.argv
                    )));
                }
                if proc.env.as_ref().is_some_and(|e| !e.is_empty()) {
                    return Err(at(&format!(
                        "the wrapper got an environment {:?}",
                        proc.env
                    )));
                }
            }
        }
    }
    Ok(())
}
