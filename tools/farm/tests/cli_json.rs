//! `docs/cli-json.md` is the JSON output of every command: this runs each command against a
//! real local queue and fails when its document has a field (or a top-level key) the page
//! does not show, or a field of another type.

#![cfg(feature = "local")]

mod common;

use std::collections::BTreeMap;
use std::path::Path;

use common::{FAST, ServerProcess, farm_on, request_file, texts};
use serde_json::Value;

/// The ```json NAME blocks of the page.
fn documented() -> BTreeMap<String, Value> {
    let page = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/cli-json.md"),
    )
    .unwrap();
    let mut blocks = BTreeMap::new();
    let mut lines = page.lines();
    while let Some(line) = lines.next() {
        if let Some(name) = line.strip_prefix("```json ") {
            let body: Vec<&str> = lines.by_ref().take_while(|l| *l != "```").collect();
            let value = serde_json::from_str(&body.join("\n"))
                .unwrap_or_else(|e| panic!("block {name} is not JSON: {e}"));
            blocks.insert(name.trim().to_owned(), value);
        }
    }
    blocks
}

/// Whether `actual` has only fields that `doc` shows, of the same kinds. In `doc`, the
/// strings "job" and "error" stand for those objects; `null` may stand for any field.
fn fits(
    actual: &Value,
    doc: &Value,
    defs: &BTreeMap<String, Value>,
    at: &str,
) -> Result<(), String> {
    match (actual, doc) {
        (_, Value::String(s)) if s == "job" => fits(actual, &defs["job"], defs, at),
        (_, Value::String(s)) if s == "error" => fits(actual, &defs["error"]["error"], defs, at),
        (Value::Null, _) => Ok(()),
        (Value::Object(a), Value::Object(d)) => {
            for (key, value) in a {
                let shown = d
                    .get(key)
                    .ok_or_else(|| format!("{at}.{key} is not documented"))?;
                fits(value, shown, defs, &format!("{at}.{key}"))?;
            }
            Ok(())
        }
        (Value::Array(a), Value::Array(d)) => match d.first() {
            Some(shown) => a
                .iter()
                .enumerate()
                .try_for_each(|(i, v)| fits(v, shown, defs, &format!("{at}[{i}]"))),
            None => Ok(()),
        },
        (Value::String(_), Value::String(_))
        | (Value::Number(_), Value::Number(_))
        | (Value::Bool(_), Value::Bool(_)) => Ok(()),
        _ => Err(format!("{at} is {actual}, documented as {doc}")),
    }
}

fn keys(v: &Value) -> Vec<String> {
    v.as_object()
        .map(|o| o.keys().cloned().collect())
        .unwrap_or_default()
}

#[test]
fn every_command_prints_the_json_documented_in_cli_json_md() {
    let defs = documented();
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    let mut args = vec!["--agents", "1"];
    args.extend_from_slice(FAST);
    let _queue = ServerProcess::start(&root, &args);
    let ok = request_file(
        dir.path(),
        "ok",
        "name: ok\ncommands: [[echo, '{frame}']]\nframes: 1-2\ntags: [a]\n",
    );
    let bad = request_file(
        dir.path(),
        "bad",
        "name: bad\ncommands: [[a]]\npriority: 5000\n",
    );
    let run = |args: &[&str]| -> Value {
        let mut all = vec!["-o", "json"];
        all.extend_from_slice(args);
        let out = farm_on(&root, &all);
        serde_json::from_slice(&out.stdout)
            .unwrap_or_else(|e| panic!("{args:?}: {e}: {:?}", texts(&out)))
    };
    let waited = run(&["submit", "--wait", &ok]);
    let id = waited["jobs"][0]["id"].as_str().unwrap().to_owned();
    let mut cases: Vec<(&str, Value)> = vec![
        ("submit", waited.clone()),
        ("submit", run(&["submit", &ok])),
        ("status", run(&["status", &id, "999"])),
        ("status", run(&["status", &id])),
        ("list", run(&["list", "--limit", "5"])),
        ("stop", run(&["stop", &id, "999"])),
        ("stop", run(&["start", &id])),
        ("log", run(&["log", &id])),
        ("log", run(&["log", "--follow", &id])),
        ("validate", run(&["validate", &ok, &bad])),
        ("error", run(&["--farm", "nowhere", "list"])),
        ("error", run(&["status"])),
    ];
    cases.push(("job", waited["jobs"][0].clone()));
    for (name, actual) in &cases {
        let doc = defs
            .get(*name)
            .unwrap_or_else(|| panic!("no ```json {name} block"));
        if let Err(e) = fits(actual, doc, &defs, name) {
            panic!("docs/cli-json.md, {name}: {e}\n{actual:#}");
        }
        if *name != "job" {
            assert_eq!(
                keys(actual),
                keys(doc),
                "{name}: top-level keys\n{actual:#}"
            );
        }
    }
}
