//! `sbatch --test-only`'s answer: when and where the job would start.

use farm_core::{CheckReport, FarmError, Result};

use super::archive::parse_local_time;

/// Reads `sbatch: Job 2 to start at 2026-12-07T07:00:17 using 1 processors on nodes vm in
/// partition debug` (sbatch prints it on stderr, in the login node's local time) into a
/// report: Slurm's line, the start in epoch milliseconds, and `vm (partition debug)`.
pub fn parse_test_only(text: &str) -> Result<CheckReport> {
    let Some(line) = text
        .lines()
        .map(str::trim)
        .find(|l| l.contains(" to start at "))
    else {
        return Err(FarmError::scheduler(format!(
            "sbatch --test-only printed no start time: {:?}",
            text.chars().take(300).collect::<String>()
        )));
    };
    let message = line.strip_prefix("sbatch: ").unwrap_or(line).to_owned();
    let after = line
        .split_once(" to start at ")
        .map_or("", |(_, rest)| rest);
    let start = parse_local_time(after.split_whitespace().next().unwrap_or(""));
    let nodes = after
        .split_once(" on nodes ")
        .map(|(_, rest)| rest.trim())
        .map(|rest| match rest.split_once(" in partition ") {
            Some((nodes, partition)) => {
                format!("{} (partition {})", nodes.trim(), partition.trim())
            }
            None => rest.to_owned(),
        })
        .filter(|p| !p.is_empty());
    Ok(CheckReport {
        message,
        estimated_start: (start > 0).then(|| start * 1000),
        placement: nodes,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_start_time_and_nodes_are_read() {
        let report = parse_test_only(
            "sbatch: Job 2 to start at 2026-12-07T07:00:17 using 1 processors on nodes vm in partition debug\n",
        )
        .unwrap();
        assert_eq!(
            report.message,
            "Job 2 to start at 2026-12-07T07:00:17 using 1 processors on nodes vm in partition debug"
        );
        assert_eq!(report.placement.as_deref(), Some("vm (partition debug)"));
        let start = report.estimated_start.expect("a start time");
        let local = chrono::DateTime::from_timestamp_millis(start)
            .unwrap()
            .with_timezone(&chrono::Local)
            .format("%Y-%m-%dT%H:%M:%S")
            .to_string();
        assert_eq!(local, "2026-12-07T07:00:17");
    }

    #[test]
    fn an_answer_without_a_start_is_a_scheduler_error() {
        let err = parse_test_only("sbatch: something else\n").unwrap_err();
        assert_eq!(err.kind(), farm_core::ErrorKind::Scheduler);
        assert!(err.to_string().contains("something else"), "{err}");
    }
}
