//! Ids the farm never issued give `JobNotFound` from every operation that takes an id.

use farm_core::{ErrorKind, JobId};

use super::support::expect_kind;
use crate::CheckResult;
use crate::harness::Harness;

/// An unknown id gives JobNotFound from job and job_state.
///
/// Both a numeric and a textual id the farm never issued.
pub async fn an_unknown_id_gives_job_not_found_from_job(h: &Harness) -> CheckResult {
    for id in unknown_ids() {
        expect_kind(
            &format!("job({id})"),
            h.farm().job(&id).await,
            ErrorKind::JobNotFound,
        )?;
        expect_kind(
            &format!("job_state({id})"),
            h.farm().job_state(&id).await,
            ErrorKind::JobNotFound,
        )?;
    }
    Ok(())
}

/// An unknown id gives JobNotFound from stop.
///
/// Without the stop capability, `Unsupported` instead.
pub async fn an_unknown_id_gives_job_not_found_from_stop(h: &Harness) -> CheckResult {
    let kind = not_found_or_unsupported(h.caps().stop);
    for id in unknown_ids() {
        expect_kind(&format!("stop({id})"), h.farm().stop(&id).await, kind)?;
    }
    Ok(())
}

/// An unknown id gives JobNotFound from start.
///
/// Without the start capability, `Unsupported` instead.
pub async fn an_unknown_id_gives_job_not_found_from_start(h: &Harness) -> CheckResult {
    let kind = not_found_or_unsupported(h.caps().start);
    for id in unknown_ids() {
        expect_kind(&format!("start({id})"), h.farm().start(&id).await, kind)?;
    }
    Ok(())
}

/// An unknown id gives JobNotFound from render_log_filename.
///
/// Without the render_log capability, `Unsupported` instead.
pub async fn an_unknown_id_gives_job_not_found_from_render_log_filename(
    h: &Harness,
) -> CheckResult {
    let kind = not_found_or_unsupported(h.caps().render_log);
    for id in unknown_ids() {
        expect_kind(
            &format!("render_log_filename({id})"),
            h.farm().render_log_filename(&id).await,
            kind,
        )?;
    }
    Ok(())
}

/// An unknown id gives JobNotFound from read_log.
///
/// Without the read_log capability, `Unsupported` instead.
pub async fn an_unknown_id_gives_job_not_found_from_read_log(h: &Harness) -> CheckResult {
    let kind = not_found_or_unsupported(h.caps().read_log);
    for id in unknown_ids() {
        expect_kind(
            &format!("read_log({id})"),
            h.farm().read_log(&id, 0).await,
            kind,
        )?;
    }
    Ok(())
}

/// Ids the farm never issued: one numeric, one textual. Adapters must answer `JobNotFound`
/// for both (a malformed id names no job either).
fn unknown_ids() -> [JobId; 2] {
    [
        JobId::new("987654321"),
        JobId::new("farm-conformance-no-such-job"),
    ]
}

/// What an unknown id gives: `JobNotFound`, or `Unsupported` when the operation's
/// capability is off.
fn not_found_or_unsupported(capable: bool) -> ErrorKind {
    if capable {
        ErrorKind::JobNotFound
    } else {
        ErrorKind::Unsupported
    }
}
