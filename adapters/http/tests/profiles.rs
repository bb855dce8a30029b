//! Profiles are checked when they load; every mistake names its line.

use farm_http::Profile;
use farm_http::profile::{BUILTIN_YAML, DEADLINE_YAML};

/// Loads `yaml` with `from` replaced by `to`, expecting an error; returns the message and the
/// 1-based line of `to`'s last line (where the mistake is).
fn broken(base: &str, from: &str, to: &str) -> (String, usize) {
    assert!(base.contains(from), "fixture text {from:?} not found");
    let text = base.replacen(from, to, 1);
    let start = text.find(to).unwrap();
    let line = text[..start + to.trim_end().len()].lines().count();
    let err = Profile::from_yaml_str(&text, "test.yaml")
        .expect_err("the broken profile loaded")
        .to_string();
    (err, line)
}

fn assert_names_line(err: &str, line: usize) {
    assert!(
        err.contains(&format!("line {line}")),
        "the message does not name line {line}: {err}"
    );
    assert!(
        err.contains("test.yaml"),
        "the message does not name the file: {err}"
    );
}

#[test]
fn an_unmapped_state_is_refused_with_its_line() {
    let (err, line) = broken(
        BUILTIN_YAML,
        "    Failed: Failed\n",
        "    Failed: Failed\n    HELD: ~\n",
    );
    assert!(err.contains("unmapped"), "{err}");
    assert_names_line(&err, line);
}

#[test]
fn a_state_mapped_to_something_else_than_the_five_is_refused() {
    let (err, line) = broken(
        BUILTIN_YAML,
        "    Running: Running\n",
        "    Running: Busy\n",
    );
    assert!(err.contains("unknown job state \"Busy\""), "{err}");
    assert_names_line(&err, line);
}

#[test]
fn a_malformed_pointer_is_refused_with_its_line() {
    let (err, line) = broken(BUILTIN_YAML, "  name: /name\n", "  name: name\n");
    assert!(err.contains("not a JSON pointer"), "{err}");
    assert_names_line(&err, line);
    let (err, line) = broken(
        DEADLINE_YAML,
        "    reason: /0/Title\n",
        "    reason: /0/T~tle\n",
    );
    assert!(err.contains("`~` must be followed by 0 or 1"), "{err}");
    assert_names_line(&err, line);
}

#[test]
fn a_template_naming_an_unknown_field_is_refused_with_its_line() {
    let (err, line) = broken(
        DEADLINE_YAML,
        "        Name: ${request.name}\n",
        "        Name: ${request.nmae}\n",
    );
    assert!(err.contains("unknown request field `nmae`"), "{err}");
    assert_names_line(&err, line);
    let (err, line) = broken(
        BUILTIN_YAML,
        "      Idempotency-Key: ${request.render_context}\n",
        "      Idempotency-Key: ${request.render_contxt}\n",
    );
    assert!(err.contains("render_contxt"), "{err}");
    assert_names_line(&err, line);
}

#[test]
fn a_variable_the_operation_does_not_provide_is_refused_with_its_line() {
    let (err, line) = broken(
        BUILTIN_YAML,
        "    path: /v1/jobs/${id}\n",
        "    path: /v1/jobs/${request.name}\n",
    );
    assert!(err.contains("operations.get uses ${request.name}"), "{err}");
    assert_names_line(&err, line);
}

#[test]
fn text_spliced_into_a_body_is_refused() {
    let (err, line) = broken(
        DEADLINE_YAML,
        "        Name: ${request.name}\n",
        "        Name: \"render ${request.name}\"\n",
    );
    assert!(err.contains("whole value"), "{err}");
    assert_names_line(&err, line);
}

#[test]
fn states_named_outside_the_table_are_refused() {
    let (err, line) = broken(
        DEADLINE_YAML,
        "    - native: \"1\"\n      when_positive: /CompletedChunks\n",
        "    - native: \"7\"\n      when_positive: /CompletedChunks\n",
    );
    let line = line - 1; // the `- native:` line, above `when_positive`
    assert!(err.contains("\"7\" is not in states.table"), "{err}");
    assert_names_line(&err, line);
    let (err, line) = broken(
        DEADLINE_YAML,
        "      Failed: [Failed]\n",
        "      Failed: [Broken]\n",
    );
    assert!(err.contains("\"Broken\" is not a native state"), "{err}");
    assert_names_line(&err, line);
}

#[test]
fn capabilities_without_operations_are_refused() {
    let text = DEADLINE_YAML.replacen("  start: false\n", "  start: true\n", 1);
    let err = Profile::from_yaml_str(&text, "test.yaml")
        .unwrap_err()
        .to_string();
    assert!(err.contains("define start"), "{err}");
}

#[test]
fn unknown_keys_are_refused() {
    let (err, line) = broken(
        BUILTIN_YAML,
        "  time_format: epoch_ms\n",
        "  time_fromat: epoch_ms\n",
    );
    assert!(err.contains("unknown field `time_fromat`"), "{err}");
    assert_names_line(&err, line);
}

#[test]
fn a_missing_profile_file_names_the_shipped_ones() {
    let err = Profile::load("/nonexistent/profile.yaml")
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("/nonexistent/profile.yaml") && err.contains("builtin, deadline-web-service"),
        "{err}"
    );
}

#[test]
fn a_profile_claiming_times_it_does_not_map_is_refused() {
    let (err, _) = broken(BUILTIN_YAML, "  end_time: /end_time\n", "");
    assert!(err.contains("job_times"), "{err}");
    assert!(err.contains("job.end_time"), "{err}");
}

#[test]
fn a_profile_for_a_scheduler_without_times_says_job_times_false() {
    let text = BUILTIN_YAML
        .replacen("  start_time: /start_time\n", "", 1)
        .replacen("  end_time: /end_time\n", "", 1)
        .replacen(
            "  idempotent_submit: true\n",
            "  idempotent_submit: true\n  job_times: false\n",
            1,
        );
    let profile = Profile::from_yaml_str(&text, "test.yaml").expect("loads");
    assert!(!profile.capabilities().job_times);
}
