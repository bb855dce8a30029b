//! Resource requests: CPUs, memory, GPUs, time limit.

use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// What one task (one chunk) of the job needs.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Resources {
    /// CPU cores per task.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpus: Option<u32>,
    /// Memory per task (`512M`, `4G`, `1.5GiB`; a bare number is MiB).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory: Option<MemorySize>,
    /// GPUs per task.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gpus: Option<u32>,
    /// Wall-clock limit per task (`90m`, `1h 30m`, `02:00:00`, `1-12:00:00`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time_limit: Option<TimeLimit>,
}

/// An amount of memory, held in MiB (the unit Slurm's `--mem` and HTCondor's
/// `request_memory` default to).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct MemorySize {
    mib: u64,
}

impl MemorySize {
    /// A size in MiB.
    pub fn from_mib(mib: u64) -> MemorySize {
        MemorySize { mib }
    }

    /// The size in MiB.
    pub fn mib(self) -> u64 {
        self.mib
    }

    /// Parses `4096`, `512M`, `4G`, `4GiB`, `4 GB`, `1.5G`, `2T`. Units are binary, as in
    /// Slurm (`G` = GiB); sizes below 1 MiB round up.
    pub fn parse(text: &str) -> Result<MemorySize, String> {
        let t = text.trim();
        let split = t
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(t.len());
        let (number, unit) = (&t[..split], t[split..].trim());
        let value: f64 = number
            .parse()
            .ok()
            .filter(|v: &f64| v.is_finite())
            .ok_or_else(|| format!("{text:?} is not a memory size such as 512M or 4G"))?;
        let per_unit: f64 = match unit.to_ascii_uppercase().as_str() {
            "" | "M" | "MB" | "MIB" => 1.0,
            "K" | "KB" | "KIB" => 1.0 / 1024.0,
            "G" | "GB" | "GIB" => 1024.0,
            "T" | "TB" | "TIB" => 1024.0 * 1024.0,
            _ => {
                return Err(format!(
                    "{text:?} has an unknown unit {unit:?} (use K, M, G or T)"
                ));
            }
        };
        let mib = (value * per_unit).ceil();
        if mib < 1.0 {
            return Err(format!(
                "{text:?} is zero; ask for at least 1M or leave memory out"
            ));
        }
        if mib > (1u64 << 26) as f64 {
            return Err(format!(
                "{text:?} is more than 64 TiB, which no render node has"
            ));
        }
        Ok(MemorySize { mib: mib as u64 })
    }
}

impl fmt::Display for MemorySize {
    /// The largest unit that divides the size exactly: `4G`, `1536M`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.mib.is_multiple_of(1024 * 1024) {
            write!(f, "{}T", self.mib / (1024 * 1024))
        } else if self.mib.is_multiple_of(1024) {
            write!(f, "{}G", self.mib / 1024)
        } else {
            write!(f, "{}M", self.mib)
        }
    }
}

impl Serialize for MemorySize {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for MemorySize {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        match NumberOrText::deserialize(deserializer)? {
            NumberOrText::Number(n) if n <= 0 => Err(format!("memory must be positive, got {n}")),
            NumberOrText::Number(n) => MemorySize::parse(&n.to_string()),
            NumberOrText::Float(x) => MemorySize::parse(&x.to_string()),
            NumberOrText::Text(t) => MemorySize::parse(&t),
        }
        .map_err(serde::de::Error::custom)
    }
}

/// A wall-clock limit, whole seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TimeLimit {
    seconds: u64,
}

impl TimeLimit {
    /// A limit of `seconds`.
    pub fn from_secs(seconds: u64) -> TimeLimit {
        TimeLimit { seconds }
    }

    /// The limit in seconds.
    pub fn as_secs(self) -> u64 {
        self.seconds
    }

    /// The limit rounded up to whole minutes (Slurm's and slurmrestd's unit).
    pub fn minutes_ceil(self) -> u64 {
        self.seconds.div_ceil(60)
    }

    /// Parses `90m`, `1h 30m`, `45s`, `2d` (humantime) or `[D-]HH:MM:SS`. A bare number is
    /// refused: Slurm reads it as minutes and other tools as seconds.
    pub fn parse(text: &str) -> Result<TimeLimit, String> {
        let t = text.trim();
        if !t.is_empty() && t.bytes().all(|b| b.is_ascii_digit()) {
            return Err(format!(
                "{text:?} has no unit; write e.g. {t}m, {t}s or HH:MM:SS"
            ));
        }
        let seconds = if t.contains(':') {
            parse_clock(t).ok_or_else(|| format!("{text:?} is not [D-]HH:MM:SS"))?
        } else {
            humantime::parse_duration(t)
                .map_err(|e| format!("{text:?} is not a duration such as 90m or 1h 30m: {e}"))?
                .as_secs()
        };
        if seconds == 0 {
            return Err(format!(
                "{text:?} is zero; leave time_limit out for no limit"
            ));
        }
        if seconds > 365 * 24 * 3600 {
            return Err(format!("{text:?} is more than a year"));
        }
        Ok(TimeLimit { seconds })
    }

    /// `[D-]HH:MM:SS`, the form Slurm and most schedulers print.
    pub fn to_clock(self) -> String {
        self.to_string()
    }
}

fn parse_clock(t: &str) -> Option<u64> {
    let (days, clock) = match t.split_once('-') {
        Some((d, c)) => (d.parse::<u64>().ok()?, c),
        None => (0, t),
    };
    let parts: Vec<&str> = clock.split(':').collect();
    let nums: Option<Vec<u64>> = parts
        .iter()
        .map(|p| {
            (!p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
                .then(|| p.parse().ok())
                .flatten()
        })
        .collect();
    let nums = nums?;
    let (h, m, s) = match nums.as_slice() {
        [h, m, s] => (*h, *m, *s),
        [h, m] => (*h, *m, 0),
        _ => return None,
    };
    (m < 60 && s < 60).then_some(days * 86400 + h * 3600 + m * 60 + s)
}

impl From<TimeLimit> for Duration {
    fn from(limit: TimeLimit) -> Duration {
        Duration::from_secs(limit.seconds)
    }
}

impl fmt::Display for TimeLimit {
    /// `[D-]HH:MM:SS`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (d, rest) = (self.seconds / 86400, self.seconds % 86400);
        let (h, m, s) = (rest / 3600, rest % 3600 / 60, rest % 60);
        if d > 0 {
            write!(f, "{d}-{h:02}:{m:02}:{s:02}")
        } else {
            write!(f, "{h:02}:{m:02}:{s:02}")
        }
    }
}

impl Serialize for TimeLimit {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for TimeLimit {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        match NumberOrText::deserialize(deserializer)? {
            NumberOrText::Number(n) => TimeLimit::parse(&n.to_string()),
            NumberOrText::Float(x) => TimeLimit::parse(&x.to_string()),
            NumberOrText::Text(t) => TimeLimit::parse(&t),
        }
        .map_err(serde::de::Error::custom)
    }
}

#[derive(Deserialize)]
#[serde(untagged)]
enum NumberOrText {
    Number(i64),
    Float(f64),
    Text(String),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memory_units_are_binary_and_print_canonically() {
        let cases = [
            ("4096", 4096, "4G"),
            ("512M", 512, "512M"),
            ("4G", 4096, "4G"),
            ("4 GiB", 4096, "4G"),
            ("1.5G", 1536, "1536M"),
            ("2T", 2 * 1024 * 1024, "2T"),
            ("100K", 1, "1M"),
        ];
        for (input, mib, printed) in cases {
            let m = MemorySize::parse(input).unwrap();
            assert_eq!(m.mib(), mib, "{input}");
            assert_eq!(m.to_string(), printed, "{input}");
            assert_eq!(MemorySize::parse(&m.to_string()).unwrap(), m);
        }
        for bad in ["0", "0G", "-1G", "4X", "lots", "", "100T"] {
            assert!(MemorySize::parse(bad).is_err(), "{bad}");
        }
        let n: MemorySize = serde_yaml::from_str("2048").unwrap();
        assert_eq!(n.mib(), 2048);
        let err = serde_yaml::from_str::<MemorySize>("-5")
            .unwrap_err()
            .to_string();
        assert!(err.contains("positive"), "{err}");
    }

    #[test]
    fn time_limits_need_a_unit_and_print_as_clock() {
        let cases = [
            ("90m", 5400, "01:30:00"),
            ("1h 30m", 5400, "01:30:00"),
            ("45s", 45, "00:00:45"),
            ("02:00:00", 7200, "02:00:00"),
            ("1-12:00:00", 129600, "1-12:00:00"),
            ("10:30", 37800, "10:30:00"),
        ];
        for (input, secs, clock) in cases {
            let t = TimeLimit::parse(input).unwrap();
            assert_eq!(t.as_secs(), secs, "{input}");
            assert_eq!(t.to_string(), clock);
            assert_eq!(TimeLimit::parse(&t.to_string()).unwrap(), t);
        }
        assert_eq!(TimeLimit::from_secs(61).minutes_ceil(), 2);
        let err = TimeLimit::parse("3600").unwrap_err();
        assert!(err.contains("no unit"), "{err}");
        for bad in ["0s", "1:99:00", "x", "400d", "1:2:3:4"] {
            assert!(TimeLimit::parse(bad).is_err(), "{bad}");
        }
    }
}
