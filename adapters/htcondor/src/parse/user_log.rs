//! HTCondor's user (event) log: the record of last resort once a job has left both the
//! queue and the history.

use std::collections::BTreeMap;

use super::ProcAd;

/// What a user log says about one proc.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LogProc {
    /// The `JobStatus` the events imply.
    pub status: i64,
    /// Exit code of a normal termination.
    pub exit_code: Option<i64>,
    /// Signal of an abnormal termination.
    pub exit_signal: Option<i64>,
    /// Hold or abort reason.
    pub reason: Option<String>,
    /// Hold code.
    pub hold_code: Option<i64>,
    /// Hold subcode.
    pub hold_subcode: Option<i64>,
    /// When it was submitted (seconds).
    pub submitted: Option<i64>,
    /// First execution.
    pub started: Option<i64>,
    /// Termination or abort.
    pub ended: Option<i64>,
    /// Time of the last event.
    pub last_event: Option<i64>,
}

impl LogProc {
    /// Whether the log records how the proc ended.
    pub fn is_final(&self) -> bool {
        matches!(self.status, 3 | 4)
    }

    /// The proc as an ad, for [`proc_state`](super::proc_state).
    pub fn to_ad(&self, cluster: u32, proc_id: u32) -> ProcAd {
        ProcAd {
            cluster,
            proc_id,
            status: self.status,
            exit_code: self.exit_code,
            exit_by_signal: (self.status == 4).then_some(self.exit_signal.is_some()),
            exit_signal: self.exit_signal,
            hold_reason: (self.status == 5).then(|| self.reason.clone()).flatten(),
            hold_code: self.hold_code,
            hold_subcode: self.hold_subcode,
            remove_reason: (self.status == 3).then(|| self.reason.clone()).flatten(),
            entered_status: self.last_event,
            qdate: self.submitted,
            start_date: self.started,
            completion_date: self.ended,
            from_user_log: true,
            ..ProcAd::default()
        }
    }
}

/// Parses an HTCondor user log (the text event format) into the state of each proc,
/// keyed by `(cluster, proc)`. Unknown events are skipped; times are local time.
pub fn parse_user_log(text: &str) -> BTreeMap<(u32, u32), LogProc> {
    let mut procs: BTreeMap<(u32, u32), LogProc> = BTreeMap::new();
    let mut lines = text.lines().peekable();
    while let Some(line) = lines.next() {
        let Some((event, cluster, proc_id, time)) = parse_event_header(line) else {
            continue;
        };
        let mut body = Vec::new();
        while let Some(next) = lines.peek() {
            if next.starts_with("...") {
                lines.next();
                break;
            }
            if parse_event_header(next).is_some() {
                break;
            }
            body.push(lines.next().unwrap_or_default().trim());
        }
        let p = procs.entry((cluster, proc_id)).or_insert_with(|| LogProc {
            status: 1,
            ..LogProc::default()
        });
        if time.is_some() {
            p.last_event = time;
        }
        match event {
            0 => {
                p.status = 1;
                p.submitted = time;
            }
            1 => {
                p.status = 2;
                p.started = p.started.or(time);
            }
            4 | 7 => p.status = 1,
            5 => {
                p.status = 4;
                p.ended = time;
                let first = body.first().copied().unwrap_or_default();
                if let Some(v) = number_after(first, "return value ") {
                    p.exit_code = Some(v);
                    p.exit_signal = None;
                } else if let Some(v) = number_after(first, "signal ") {
                    p.exit_signal = Some(v);
                    p.exit_code = None;
                }
            }
            9 => {
                p.status = 3;
                p.ended = time;
                p.reason = body
                    .first()
                    .map(|s| (*s).to_owned())
                    .filter(|s| !s.is_empty());
            }
            10 => p.status = 7,
            11 | 13 => p.status = if event == 11 { 2 } else { 1 },
            12 => {
                p.status = 5;
                p.reason = body
                    .first()
                    .map(|s| (*s).to_owned())
                    .filter(|s| !s.is_empty());
                if let Some(codes) = body.iter().find(|l| l.starts_with("Code ")) {
                    p.hold_code = number_after(codes, "Code ");
                    p.hold_subcode = number_after(codes, "Subcode ");
                }
            }
            _ => {}
        }
    }
    procs
}

fn number_after(text: &str, key: &str) -> Option<i64> {
    let rest = &text[text.find(key)? + key.len()..];
    let digits: String = rest
        .chars()
        .take_while(|c| c.is_ascii_digit() || *c == '-')
        .collect();
    digits.parse().ok()
}

/// `NNN (C.P.S) DATE TIME text` -> (event, cluster, proc, time).
fn parse_event_header(line: &str) -> Option<(u32, u32, u32, Option<i64>)> {
    let (code, rest) = line.split_once(' ')?;
    if code.len() != 3 || !code.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let rest = rest.strip_prefix('(')?;
    let (id, rest) = rest.split_once(')')?;
    let mut parts = id.split('.');
    let cluster = parts.next()?.parse().ok()?;
    let proc_id = parts.next()?.parse().ok()?;
    let mut words = rest.split_whitespace();
    let date = words.next().unwrap_or_default();
    let time = if date.contains('T') {
        parse_local_time(&date.replace('T', " "))
    } else {
        parse_local_time(&format!("{date} {}", words.next().unwrap_or_default()))
    };
    Some((code.parse().ok()?, cluster, proc_id, time))
}

fn parse_local_time(text: &str) -> Option<i64> {
    use chrono::TimeZone;
    let text = text.split('.').next()?.trim_end_matches('Z');
    let naive = chrono::NaiveDateTime::parse_from_str(text, "%Y-%m-%d %H:%M:%S").ok()?;
    chrono::Local
        .from_local_datetime(&naive)
        .earliest()
        .map(|t| t.timestamp())
}

/// Formats a time as the user log writes it (local time).
pub fn format_log_time(secs: i64) -> String {
    use chrono::TimeZone;
    chrono::Local
        .timestamp_opt(secs, 0)
        .single()
        .map(|t| t.format("%Y-%m-%d %H:%M:%S").to_string())
        .unwrap_or_default()
}
