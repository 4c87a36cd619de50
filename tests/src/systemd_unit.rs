//! The systemd unit baked into the AMI (`packer/files/candidates.service`), read the way
//! systemd reads it, for the tests that hold it to its contracts.

use std::path::PathBuf;
use std::time::Duration;

use crate::repo_root;

pub fn unit_path() -> PathBuf {
    repo_root().join("packer/files/candidates.service")
}

/// A unit file as systemd reads it: (section, key, value) in order, repeated keys kept.
#[derive(Debug)]
pub struct Unit(Vec<(String, String, String)>);

impl Unit {
    pub fn parse(text: &str) -> Unit {
        let mut entries = Vec::new();
        let mut section = String::new();
        let mut pending = String::new();
        for raw in text.lines() {
            let line = raw.trim();
            if pending.is_empty() && (line.is_empty() || line.starts_with(['#', ';'])) {
                continue;
            }
            // A trailing backslash continues the value on the next line.
            if let Some(head) = line.strip_suffix('\\') {
                pending.push_str(head);
                pending.push(' ');
                continue;
            }
            let line = std::mem::take(&mut pending) + line;
            if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
                section = name.to_owned();
            } else if let Some((key, value)) = line.split_once('=') {
                entries.push((
                    section.clone(),
                    key.trim().to_owned(),
                    value.trim().to_owned(),
                ));
            } else {
                panic!("unit line is neither a section nor key=value: {line:?}");
            }
        }
        Unit(entries)
    }

    pub fn all(&self, section: &str, key: &str) -> Vec<&str> {
        self.0
            .iter()
            .filter(|(s, k, _)| s == section && k == key)
            .map(|(_, _, v)| v.as_str())
            .collect()
    }

    /// The one value of a key (systemd keeps the last assignment of single-valued keys).
    pub fn get(&self, section: &str, key: &str) -> &str {
        self.all(section, key)
            .last()
            .copied()
            .unwrap_or_else(|| panic!("[{section}] {key}= is missing from the unit"))
    }
}

/// The unit as it is in the repository.
pub fn unit() -> Unit {
    Unit::parse(
        &std::fs::read_to_string(unit_path()).expect("read packer/files/candidates.service"),
    )
}

/// A systemd time span ("90", "90s", "1min 30s", "2m", "500ms") as a Duration.
pub fn parse_timespan(raw: &str) -> Duration {
    let mut total = Duration::ZERO;
    let mut rest = raw.trim();
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(rest.len());
        let number: u64 = rest[..digits]
            .parse()
            .unwrap_or_else(|_| panic!("bad time span {raw:?}"));
        rest = rest[digits..].trim_start();
        let unit_len = rest
            .find(|c: char| !c.is_ascii_alphabetic())
            .unwrap_or(rest.len());
        let (unit, tail) = rest.split_at(unit_len);
        total += match unit {
            "us" | "usec" => Duration::from_micros(number),
            "ms" | "msec" => Duration::from_millis(number),
            "" | "s" | "sec" | "second" | "seconds" => Duration::from_secs(number),
            "m" | "min" | "minute" | "minutes" => Duration::from_secs(number * 60),
            "h" | "hr" | "hour" | "hours" => Duration::from_secs(number * 3600),
            other => panic!("unknown time unit {other:?} in {raw:?}"),
        };
        rest = tail.trim_start();
    }
    total
}
