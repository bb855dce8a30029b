//! The checks: one contract clause each, named as a sentence.
//!
//! Each check is a plain `pub async fn(&Harness) -> CheckResult` in the file of its theme.
//! Its doc comment is its documentation (`docs/conformance.md` is generated from it): the
//! first line is the sentence, the rest says what is asserted.
//!
//! [`for_each_check!`](crate::for_each_check) is the one list of checks. [`CHECKS`] (what
//! [`run_all`](crate::run_all) walks) is built from it here, and [`suite!`](crate::suite)
//! expands it into one test per check, so the two cannot drift. Next to each check the list
//! says which capability selects it; when that capability is off, the check asserts the
//! operation returns `Unsupported` instead of skipping.

pub mod check;
pub mod dependencies;
pub mod faults;
pub mod inputs;
pub mod jobs;
pub mod listing;
pub mod logs;
pub mod retry;
pub mod staging;
pub mod stop_start;
pub mod submit;
pub mod unknown_ids;

mod support;

use futures::future::BoxFuture;

use crate::harness::{CheckResult, Harness};

/// The one list of checks, in documentation order: `file::function: "selected by"`.
///
/// `for_each_check!(some::macro { leading tokens })` expands to
/// `some::macro! { leading tokens file::function: "selected by", ... }`. The selector is
/// `always`, the capabilities the check exercises, or `fault injection`. Adding a check is
/// writing its function and adding its line here.
#[macro_export]
macro_rules! for_each_check {
    ($callback:path { $($leading:tt)* }) => {
        $callback! {
            $($leading)*
            jobs::a_submitted_job_is_visible_at_once: "always",
            jobs::a_successful_job_completes: "always",
            jobs::a_nonzero_exit_fails_with_the_exit_code_in_the_reason: "always",
            jobs::commands_run_in_order: "always",
            jobs::commands_stop_at_the_first_failure: "always",
            inputs::environment_values_arrive_exactly: "always",
            inputs::argv_elements_arrive_exactly: "always",
            inputs::the_working_directory_is_honoured: "always",
            inputs::every_frame_runs_with_its_chunk: "always",
            inputs::a_failed_frame_fails_the_job: "always",
            stop_start::stopping_a_running_job_cancels_it_and_kills_its_processes: "stop",
            stop_start::stopping_a_waiting_job_cancels_it_before_it_runs: "stop, dependencies",
            stop_start::stopping_a_finished_job_is_a_no_op: "stop",
            stop_start::starting_a_failed_job_runs_a_new_attempt: "start",
            stop_start::starting_a_cancelled_job_runs_it_again: "start, stop",
            stop_start::starting_a_running_job_changes_nothing: "start",
            unknown_ids::an_unknown_id_gives_job_not_found_from_job: "always",
            unknown_ids::an_unknown_id_gives_job_not_found_from_stop: "stop",
            unknown_ids::an_unknown_id_gives_job_not_found_from_start: "start",
            unknown_ids::an_unknown_id_gives_job_not_found_from_render_log_filename: "render_log",
            unknown_ids::an_unknown_id_gives_job_not_found_from_read_log: "read_log",
            listing::listing_includes_a_job_just_submitted: "list_jobs",
            listing::listing_filters_by_state: "list_jobs",
            listing::listing_filters_by_name: "list_jobs",
            listing::listing_filters_by_tag: "list_jobs",
            logs::the_render_log_holds_the_output: "render_log, read_log",
            logs::the_render_log_grows_while_running: "read_log",
            staging::the_temp_directory_is_stable_per_render_context: "stage_files",
            staging::copied_render_files_are_readable: "stage_files",
            staging::copying_a_missing_file_is_a_clear_error: "stage_files",
            submit::submitting_a_render_context_twice_gives_one_job: "idempotent_submit",
            faults::a_job_the_scheduler_forgets_ends_failed_as_lost: "fault injection",
            faults::garbage_from_the_scheduler_is_an_error_not_a_state: "fault injection",
            faults::a_silent_scheduler_gives_unavailable: "fault injection",
            dependencies::a_dependent_job_waits_for_its_dependency: "dependencies",
            dependencies::a_job_depending_on_a_failed_job_never_runs: "dependencies",
            submit::rendering_is_deterministic: "always",
            submit::rendering_an_invalid_request_names_the_field: "always",
            submit::invalid_requests_never_reach_the_scheduler: "always",
            submit::submit_sends_what_render_returns: "fault injection",
            jobs::finished_jobs_carry_ordered_times: "job_times",
            staging::installation_metadata_is_resolved_or_clearly_missing: "always",
            jobs::job_times_are_milliseconds_since_the_epoch: "job_times",
            jobs::a_submitted_job_is_readable_until_it_ends: "always",
            check::a_request_the_farm_can_never_run_is_refused_by_check: "check, check_resources",
            check::a_request_the_farm_can_run_passes_check: "check",
            check::checking_a_request_creates_no_job: "check, list_jobs",
            retry::retrying_failed_tasks_runs_only_the_failed_frames_again: "retry_failed",
        }
    };
}

/// Builds [`CHECKS`] from the list; each check's doc comment is read from its source file
/// at compile time.
macro_rules! check_table {
    ($($file:ident :: $id:ident : $selected_by:literal),* $(,)?) => {
        /// Every check, in documentation order.
        pub static CHECKS: &[Check] = &[
            $(Check {
                id: stringify!($id),
                doc: doc_comment(
                    include_str!(concat!(stringify!($file), ".rs")),
                    stringify!($id),
                ),
                selected_by: $selected_by,
                run: |h| Box::pin($file::$id(h)),
            },)*
        ];
    };
}

for_each_check!(check_table {});

/// One check of the suite.
#[derive(Clone, Copy)]
pub struct Check {
    /// Stable snake_case id (the Rust test name, `--only`/`--skip` value).
    pub id: &'static str,
    /// The check function's doc comment as written (`///` lines): the first line is the
    /// sentence, the rest the details.
    pub doc: &'static str,
    /// What selects it: `always`, a capability name, or `fault injection`.
    pub selected_by: &'static str,
    /// Runs the check.
    pub run: for<'a> fn(&'a Harness) -> BoxFuture<'a, CheckResult>,
}

impl std::fmt::Debug for Check {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Check").field("id", &self.id).finish()
    }
}

impl Check {
    /// The sentence naming the check (its doc comment's first line).
    pub fn sentence(&self) -> &'static str {
        self.doc_lines().find(|l| !l.is_empty()).unwrap_or(self.id)
    }

    /// The doc comment after the sentence, unwrapped into one paragraph.
    pub fn details(&self) -> String {
        let mut lines = self.doc_lines().skip_while(|l| l.is_empty());
        lines.next();
        lines
            .filter(|l| !l.is_empty())
            .collect::<Vec<_>>()
            .join(" ")
    }

    /// The doc comment's lines without their `///` markers, trimmed.
    fn doc_lines(&self) -> impl Iterator<Item = &'static str> {
        self.doc.lines().map(|l| {
            let l = l.trim();
            l.strip_prefix("///").unwrap_or(l).trim()
        })
    }
}

/// Finds a check by id.
pub fn find(id: &str) -> Option<&'static Check> {
    CHECKS.iter().find(|c| c.id == id)
}

/// The `///` block right above `pub async fn <id>(` in `source`, as written.
///
/// A `const fn`, so a check missing from its file, or without a doc comment, is a compile
/// error rather than a gap in the documentation.
const fn doc_comment(source: &'static str, id: &str) -> &'static str {
    let src = source.as_bytes();
    let Some(fn_line) = find_check_fn(src, id.as_bytes()) else {
        panic!("the check list names a function its file does not define as `pub async fn`");
    };
    let mut start = fn_line;
    while start > 0 {
        // The line before `start` ends at `start - 1` (its newline).
        let end = start - 1;
        let mut line = end;
        while line > 0 && src[line - 1] != b'\n' {
            line -= 1;
        }
        let text = skip_spaces(src, line);
        if !(text + 3 <= end && src[text] == b'/' && src[text + 1] == b'/' && src[text + 2] == b'/')
        {
            break;
        }
        start = line;
    }
    if start == fn_line {
        panic!("every check needs a doc comment right above its `pub async fn`");
    }
    let (doc, _) = src.split_at(fn_line);
    let (_, doc) = doc.split_at(start);
    match std::str::from_utf8(doc) {
        Ok(doc) => doc,
        Err(_) => panic!("a doc comment cut inside a character"),
    }
}

/// Where the line `pub async fn <id>(` starts in `src` (after optional indentation).
const fn find_check_fn(src: &[u8], id: &[u8]) -> Option<usize> {
    const PREFIX: &[u8] = b"pub async fn ";
    let mut line = 0;
    while line < src.len() {
        let text = skip_spaces(src, line);
        if starts_with_at(src, text, PREFIX)
            && starts_with_at(src, text + PREFIX.len(), id)
            && text + PREFIX.len() + id.len() < src.len()
            && src[text + PREFIX.len() + id.len()] == b'('
        {
            return Some(line);
        }
        while line < src.len() && src[line] != b'\n' {
            line += 1;
        }
        line += 1;
    }
    None
}

const fn skip_spaces(src: &[u8], mut at: usize) -> usize {
    while at < src.len() && src[at] == b' ' {
        at += 1;
    }
    at
}

const fn starts_with_at(src: &[u8], at: usize, prefix: &[u8]) -> bool {
    if at + prefix.len() > src.len() {
        return false;
    }
    let mut i = 0;
    while i < prefix.len() {
        if src[at + i] != prefix[i] {
            return false;
        }
        i += 1;
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doc_comments_are_read_from_the_check_functions() {
        let check = find("commands_run_in_order").expect("listed");
        assert_eq!(check.sentence(), "Commands run in the order given.");
        assert_eq!(
            check.details(),
            "Three commands append 0, 1 and 2 to one file; it reads `0 1 2`."
        );
    }

    #[test]
    fn a_doc_comment_stops_at_the_first_line_that_is_not_one() {
        let source = concat!(
            "/// Not this.\n\nfn x() {}\n\n",
            "  /// Sentence.\n  ///\n  /// Details.\n  pub async fn y_z(h: &Harness) {}\n",
        );
        assert_eq!(
            doc_comment(source, "y_z"),
            "  /// Sentence.\n  ///\n  /// Details.\n"
        );
        assert_eq!(find_check_fn(source.as_bytes(), b"y"), None);
    }

    #[test]
    fn ids_are_unique() {
        for (i, check) in CHECKS.iter().enumerate() {
            assert!(
                CHECKS[..i].iter().all(|c| c.id != check.id),
                "{} is listed twice",
                check.id
            );
        }
    }
}
