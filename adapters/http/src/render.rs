//! JobRequest -> the exact bytes `submit` sends. Pure and deterministic: no clock, no
//! randomness, no I/O, so `farm render` works offline and golden tests are byte-stable.

use farm_core::{JobRequest, RenderedJob, Result};
use serde_json::{Value, json};

use crate::profile::{Operation, Profile};
use crate::template::{Scope, Template};

/// The file name `render` gives the body.
pub const BODY_FILE: &str = "request.json";

/// The request as templates see it: its JSON with every default written out, so
/// `${request.chunk_size}` is `1` rather than missing.
pub fn request_value(request: &JobRequest) -> Value {
    let mut value = serde_json::to_value(request).expect("a JobRequest always serialises");
    if let Value::Object(map) = &mut value {
        let defaults = json!({
            "chunk_size": request.chunk_size,
            "repeat": request.repeat,
            "render_type": request.render_type,
            "priority": request.priority,
            "tags": request.tags,
            "depends_on": request.depends_on,
            "environment": request.environment,
            "resources": request.resources,
            "native": request.native,
        });
        if let Value::Object(defaults) = defaults {
            for (k, v) in defaults {
                map.entry(k).or_insert(v);
            }
        }
    }
    value
}

/// Values computed from the request. The per-frame lists are built only when a template
/// asks for them: a 100,000-frame request should not pay for a list nobody sends.
pub fn derived_value(request: &JobRequest, per_frame: bool) -> Value {
    let frames = request.frames.as_ref();
    let mut derived = json!({
        "frames": frames.map(|f| f.to_string()),
        "frame_count": request.frame_count(),
        "first_frame": frames.map(|f| f.first()),
        "last_frame": frames.map(|f| f.last()),
        "task_count": request.task_count(),
        // -1000..=1000 onto 0..=100, 0 -> 50.
        "priority_percent": (i64::from(request.priority) + 1000) * 100 / 2000,
    });
    if per_frame {
        let program = shell_program(request);
        derived["shell_command"] =
            Value::String(format!("exec bash -c {} farm-task", sh_quote(&program)));
        derived["shell_program"] = Value::String(program);
        derived["frame_list"] =
            frames.map_or(Value::Null, |f| json!(f.iter().collect::<Vec<u32>>()));
        derived["tasks"] = Value::Array(
            request
                .tasks()
                .into_iter()
                .map(|t| {
                    let list: Vec<u32> = t
                        .frames
                        .as_ref()
                        .map(|f| f.iter().collect())
                        .unwrap_or_default();
                    json!({
                        "index": t.index,
                        "first": t.frames.as_ref().map(|f| f.first()),
                        "last": t.frames.as_ref().map(|f| f.last()),
                        "frames": list,
                    })
                })
                .collect(),
        );
    }
    derived
}

/// The scope for submit-like operations.
pub fn request_scope(profile: &Profile, op: &Operation, request: &JobRequest) -> Scope {
    let mut templates: Vec<&Template> = vec![&op.path.0];
    templates.extend(op.query.values().map(|t| &t.0));
    templates.extend(op.headers.values().map(|t| &t.0));
    if let Some(body) = &op.body {
        templates.push(&body.0);
    }
    let per_frame = templates.iter().flat_map(|t| t.vars()).any(|v| {
        v.root() == "derived"
            && matches!(
                v.0.get(1).map(String::as_str),
                Some("tasks" | "frame_list" | "shell_program" | "shell_command")
            )
    });
    scope_for(profile, request, per_frame)
}

/// The submit scope, with the costly derived values when `expensive`.
pub fn scope_for(profile: &Profile, request: &JobRequest, expensive: bool) -> Scope {
    Scope::new()
        .with("request", request_value(request))
        .with("derived", derived_value(request, expensive))
        .with("native", Value::Object(request.native_for(&profile.name)))
}

/// One POSIX `sh` word: single quotes, each `'` written as `'\\''`. Nothing inside single
/// quotes is special to any POSIX shell, so this is exact for every string without NUL.
fn sh_quote(text: &str) -> String {
    format!("'{}'", text.replace('\'', "'\\''"))
}

/// `${derived.shell_command}`: one `sh` command line running [`shell_program`] with bash
/// (`exec bash -c '<program>' farm-task`), for schedulers whose job is a shell string
/// (Ray's `entrypoint`).
///
/// `${derived.shell_program}`: a bash program that runs every task of the request in
/// order, each as `farm_core::script` writes it (the program Slurm and HTCondor run), and
/// stops with the first failing task's status. For schedulers whose job is one shell
/// command: the program is carried as a value (an environment variable, a JSON string),
/// never spliced into the command.
pub fn shell_program(request: &JobRequest) -> String {
    let body = farm_core::script::render_task_body(request, "\"$farm_task\"");
    format!(
        "farm_tasks={}\nfor (( farm_task = 0; farm_task < farm_tasks; farm_task++ )); do\n(\n{body})\nfarm_status=$?\nif [ \"$farm_status\" -ne 0 ]; then exit \"$farm_status\"; fi\ndone\nexit 0\n",
        request.task_count()
    )
}

/// The body of `op` for `request`, or `None` when the operation has none. `${request}`
/// alone is the request's canonical JSON (fields in declaration order); other templates
/// are pretty-printed JSON with sorted keys.
pub fn body(profile: &Profile, op: &Operation, request: &JobRequest) -> Option<String> {
    let template = &op.body.as_ref()?.0;
    if template.is_whole_request() {
        return Some(request.to_json());
    }
    let value = template.eval(&request_scope(profile, op, request));
    Some(serde_json::to_string_pretty(&value).expect("JSON values always serialise"))
}

/// What `render` returns: the submit body, after validating the request.
pub fn render(profile: &Profile, request: &JobRequest) -> Result<RenderedJob> {
    request.validate()?;
    let body = body(profile, &profile.operations.submit, request).unwrap_or_default();
    let mut rendered = RenderedJob::single(BODY_FILE, body);
    if !profile.files.is_empty() {
        let expensive = profile.files.iter().flat_map(|f| f.body.0.vars()).any(|v| {
            v.root() == "derived"
                && matches!(
                    v.0.get(1).map(String::as_str),
                    Some("tasks" | "frame_list" | "shell_program" | "shell_command")
                )
        });
        let scope = scope_for(profile, request, expensive);
        for file in &profile.files {
            rendered.files.push(farm_core::RenderedFile {
                name: file.name.clone(),
                contents: crate::files::render(file, &scope),
                executable: false,
            });
        }
    }
    Ok(rendered)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_written_out_and_priority_is_scaled() {
        let r = JobRequest::from_yaml_str("name: x\ncommands: [[a]]\npriority: -1000\n").unwrap();
        let v = request_value(&r);
        assert_eq!(v["chunk_size"], 1);
        assert_eq!(v["repeat"], "per_frame");
        assert_eq!(v["tags"], json!([]));
        assert_eq!(derived_value(&r, false)["priority_percent"], 0);
        let r = JobRequest::from_yaml_str("name: x\ncommands: [[a]]\n").unwrap();
        assert_eq!(derived_value(&r, false)["priority_percent"], 50);
    }

    #[test]
    fn tasks_follow_the_plan() {
        let r = JobRequest::from_yaml_str(
            "name: x\ncommands: [[a, '{frame}']]\nframes: 1-7\nchunk_size: 3\n",
        )
        .unwrap();
        let d = derived_value(&r, true);
        assert_eq!(d["frames"], "1-7");
        assert_eq!(d["task_count"], 3);
        assert_eq!(
            d["tasks"][2],
            json!({"index": 2, "first": 7, "last": 7, "frames": [7]})
        );
        assert_eq!(d["frame_list"], json!([1, 2, 3, 4, 5, 6, 7]));
    }
}
