//! What a rehearsal tells: the timeline, the totals, the SLO verdict (the same goals as
//! loadtest.sh's) and warnings a person can act on.

use std::fmt::Write as _;
use std::path::Path;

use jiff::tz::TimeZone;
use serde::Serialize;

use crate::error::Error;
use crate::model::Group;
use crate::simulate::{MinuteRow, Outcome};

/// The goals a rehearsal is judged on (loadtest.sh's three).
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Slo {
    pub rps: f64,
    pub mean_ms: f64,
    pub success_percent: f64,
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Totals {
    /// The load's requests (first attempts).
    pub offered_requests: f64,
    pub served_requests: f64,
    /// Requests that failed for good (every allowed attempt failed).
    pub failed_requests: f64,
    /// Retries sent (0 without `--retries`).
    pub retry_requests: f64,
    /// Attempts that failed, first ones and retries.
    pub failed_attempts: f64,
    /// Attempts per request: (first attempts + retries) / first attempts.
    pub amplification: f64,
    pub failed_fraction: f64,
    pub success_percent: f64,
    pub peak_offered_rps: f64,
    pub peak_served_rps: f64,
    pub mean_ms: Option<f64>,
    pub worst_p99_ms: Option<f64>,
    pub max_desired: i64,
    pub min_desired: i64,
    pub low_confidence_minutes: usize,
}

pub fn totals(rows: &[MinuteRow]) -> Totals {
    let offered: f64 = rows.iter().map(|r| r.offered_rps * 60.0).sum();
    let served: f64 = rows.iter().map(|r| r.served_rps * 60.0).sum();
    let failed: f64 = rows.iter().map(|r| r.failed_for_good_rps * 60.0).sum();
    let retries: f64 = rows.iter().map(|r| r.retry_rps * 60.0).sum();
    let weighted: f64 = rows
        .iter()
        .filter_map(|r| r.mean_ms.map(|m| m * r.served_rps))
        .sum();
    let weight: f64 = rows
        .iter()
        .filter(|r| r.mean_ms.is_some())
        .map(|r| r.served_rps)
        .sum();
    Totals {
        offered_requests: offered,
        served_requests: served,
        failed_requests: failed,
        retry_requests: retries,
        failed_attempts: rows.iter().map(|r| r.failed_rps * 60.0).sum(),
        amplification: if offered > 0.0 {
            (offered + retries) / offered
        } else {
            1.0
        },
        failed_fraction: if offered > 0.0 { failed / offered } else { 0.0 },
        success_percent: if offered > 0.0 {
            100.0 * served / offered
        } else {
            100.0
        },
        peak_offered_rps: rows.iter().map(|r| r.offered_rps).fold(0.0, f64::max),
        peak_served_rps: rows.iter().map(|r| r.served_rps).fold(0.0, f64::max),
        mean_ms: (weight > 0.0).then(|| weighted / weight),
        worst_p99_ms: rows
            .iter()
            .filter(|r| r.served_rps > 0.0)
            .filter_map(|r| r.p99_ms)
            .reduce(f64::max),
        max_desired: rows.iter().map(|r| r.desired).max().unwrap_or(0),
        min_desired: rows.iter().map(|r| r.desired).min().unwrap_or(0),
        low_confidence_minutes: rows.iter().filter(|r| r.low_confidence).count(),
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Check {
    pub name: &'static str,
    pub goal: String,
    pub met: bool,
}

/// loadtest.sh's three goals: best-window throughput, mean latency, share answered 2xx.
pub fn checks(t: &Totals, slo: &Slo) -> Vec<Check> {
    vec![
        Check {
            name: "throughput",
            goal: format!(">= {} rps", slo.rps),
            // The best minute serving all it was offered meets a goal of that rate.
            met: t.peak_served_rps >= slo.rps * (1.0 - 1e-9),
        },
        Check {
            name: "mean latency",
            goal: format!("< {} ms", slo.mean_ms),
            met: t.mean_ms.is_some_and(|m| m < slo.mean_ms),
        },
        Check {
            name: "success",
            goal: format!(">= {} % 2xx", slo.success_percent),
            met: t.success_percent >= slo.success_percent,
        },
    ]
}

/// 1234.5 -> "1,235".
pub fn thousands(value: f64) -> String {
    let digits = format!("{:.0}", value.abs());
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    if value < -0.5 { format!("-{out}") } else { out }
}

fn clock(row: &MinuteRow, zone: &TimeZone) -> String {
    row.time
        .to_zoned(zone.clone())
        .strftime("%H:%M")
        .to_string()
}

/// Warnings that need the load: capacity the group cannot reach, failures and why, latency
/// of low confidence, goals the load cannot test.
pub fn load_warnings(
    outcome: &Outcome,
    group: &Group,
    instance_rps: f64,
    t: &Totals,
    slo: &Slo,
    zone: &TimeZone,
) -> Vec<String> {
    let mut warnings = Vec::new();
    let ceiling = group.cpu_ceiling().unwrap_or(100.0);
    let per_instance = instance_rps * ceiling / 100.0;
    let worst = outcome
        .rows
        .iter()
        .map(|r| (r, (r.offered_rps / per_instance - 1e-9).ceil() as i64))
        .filter(|(r, needed)| *needed > r.max_size)
        .max_by(|a, b| a.0.offered_rps.total_cmp(&b.0.offered_rps));
    if let Some((row, needed)) = worst {
        warnings.push(format!(
            "max_size {} cannot serve {} rps at {ceiling} % CPU: {needed} instances needed (at {}, minute {}); raise max_size{}",
            row.max_size,
            thousands(row.offered_rps),
            clock(row, zone),
            row.minute,
            if group.schedules.is_empty() { "" } else { " or the schedule's max_size" },
        ));
    }
    let failing: Vec<&MinuteRow> = outcome
        .rows
        .iter()
        .filter(|r| r.failed_for_good_rps > 0.0005 * r.offered_rps.max(1.0))
        .collect();
    if let (Some(first), Some(last)) = (failing.first(), failing.last()) {
        let at_max = failing.iter().filter(|r| r.desired >= r.max_size).count();
        let injured = failing
            .iter()
            .filter(|r| r.not_answering > 0 || !r.dark_zones.is_empty())
            .count();
        let reason = if injured > 0 {
            format!(
                "instances did not answer (the injected failures) in {injured} of these minutes: more headroom (min_size, a lower threshold) or more zones spread the loss"
            )
        } else if at_max == failing.len() {
            "the group was at max_size throughout".to_owned()
        } else {
            format!(
                "capacity lagged the load in {} of these minutes (alarm periods, metric delay, boot and health checks come first): lower the scale-out threshold or its evaluation periods, raise min_size, or schedule capacity ahead",
                failing.len() - at_max
            )
        };
        warnings.push(format!(
            "{} requests ({:.2} %) failed between {} and {} (minutes {}-{}): {reason}",
            thousands(t.failed_requests),
            100.0 * t.failed_fraction,
            clock(first, zone),
            clock(last, zone),
            first.minute,
            last.minute,
        ));
    }
    if t.low_confidence_minutes > 0 {
        warnings.push(format!(
            "latency in {} minute(s) is a low-confidence estimate: utilisation was at or above 90 %, where the queueing approximation is least reliable (and above 100 % requests wait until the {} s timeout)",
            t.low_confidence_minutes, group.request_timeout_secs
        ));
    }
    if t.peak_offered_rps < slo.rps {
        warnings.push(format!(
            "the load never offers {} rps (--slo-rps), so the throughput goal cannot be met: give --slo-rps {} or less to judge this load",
            thousands(slo.rps),
            thousands(t.peak_offered_rps.floor()),
        ));
    }
    warnings
}

fn number(value: f64) -> String {
    let text = format!("{value:.3}");
    let text = text.trim_end_matches('0').trim_end_matches('.');
    if text == "-0" {
        "0".to_owned()
    } else {
        text.to_owned()
    }
}

fn optional(value: Option<f64>) -> String {
    value.map(number).unwrap_or_default()
}

/// The timeline CSV, one row per simulated minute.
pub fn write_timeline(path: &Path, rows: &[MinuteRow], zone: &TimeZone) -> Result<(), Error> {
    let failed = |e: csv::Error| Error::failed(format!("cannot write {}: {e}", path.display()));
    let mut out = csv::Writer::from_path(path).map_err(failed)?;
    out.write_record([
        "minute",
        "time",
        "offered_rps",
        "desired",
        "in_service",
        "cpu_percent",
        "served_rps",
        "failed_rps",
        "retry_rps",
        "failed_for_good_rps",
        "p50_ms",
        "p99_ms",
        "mean_ms",
        "min_size",
        "max_size",
        "in_service_by_zone",
        "not_answering",
        "dark_zones",
        "serving",
        "warming",
        "terminating",
        "utilization",
        "low_confidence",
        "alarms",
        "events",
    ])
    .map_err(failed)?;
    for r in rows {
        let alarms: Vec<String> = r
            .alarms
            .iter()
            .map(|a| format!("{}={}", a.name, a.state.as_str()))
            .collect();
        let by_zone: Vec<String> = r.in_service_by_zone.iter().map(i64::to_string).collect();
        out.write_record([
            r.minute.to_string(),
            r.time
                .to_zoned(zone.clone())
                .strftime("%Y-%m-%dT%H:%M%:z")
                .to_string(),
            number(r.offered_rps),
            r.desired.to_string(),
            r.in_service.to_string(),
            optional(r.cpu_percent),
            number(r.served_rps),
            number(r.failed_rps),
            number(r.retry_rps),
            number(r.failed_for_good_rps),
            optional(r.p50_ms),
            optional(r.p99_ms),
            optional(r.mean_ms),
            r.min_size.to_string(),
            r.max_size.to_string(),
            by_zone.join("/"),
            r.not_answering.to_string(),
            r.dark_zones
                .iter()
                .map(|z| crate::fleet::zone_name(*z).to_string())
                .collect::<Vec<_>>()
                .join("/"),
            number(r.serving),
            r.warming.to_string(),
            r.terminating.to_string(),
            number(r.utilization),
            r.low_confidence.to_string(),
            alarms.join(";"),
            r.events.join("; "),
        ])
        .map_err(failed)?;
    }
    out.flush()
        .map_err(|e| Error::failed(format!("cannot write {}: {e}", path.display())))
}

/// The printed summary and verdict.
#[derive(Debug)]
pub struct Verdict<'a> {
    pub header: Vec<(String, String)>,
    pub totals: &'a Totals,
    pub checks: &'a [Check],
    pub warnings: &'a [String],
}

impl Verdict<'_> {
    pub fn render(&self) -> String {
        let mut out = String::new();
        for (label, text) in &self.header {
            let _ = writeln!(out, "{label:<15} {text}");
        }
        let t = self.totals;
        let ms = |v: Option<f64>| v.map_or("n/a".to_owned(), |v| format!("{v:.2} ms"));
        if t.retry_requests > 0.0 {
            let _ = writeln!(
                out,
                "requests        {} offered + {} retries ({:.3} attempts a request; {} answered 2xx, {} failed for good, {} attempts failed)",
                thousands(t.offered_requests),
                thousands(t.retry_requests),
                t.amplification,
                thousands(t.served_requests),
                thousands(t.failed_requests),
                thousands(t.failed_attempts)
            );
        } else {
            let _ = writeln!(
                out,
                "requests        {} offered ({} answered 2xx, {} failed)",
                thousands(t.offered_requests),
                thousands(t.served_requests),
                thousands(t.failed_requests)
            );
        }
        let _ = writeln!(
            out,
            "throughput      {:.1} rps of 2xx (best minute)",
            t.peak_served_rps
        );
        let _ = writeln!(out, "mean latency    {}", ms(t.mean_ms));
        let _ = writeln!(out, "worst p99       {}", ms(t.worst_p99_ms));
        let _ = writeln!(out, "success         {:.3} %", t.success_percent);
        for w in self.warnings {
            let _ = writeln!(out, "WARNING: {w}");
        }
        for c in self.checks {
            let mark = if c.met { '✓' } else { '✗' };
            let _ = writeln!(
                out,
                "{mark} SLO {} {} {}",
                c.name,
                c.goal,
                if c.met { "met" } else { "missed" }
            );
        }
        let met = self.checks.iter().all(|c| c.met);
        let _ = writeln!(
            out,
            "SLO verdict: {} (predicted)",
            if met { "PASS" } else { "FAIL" }
        );
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn big_numbers_read_with_separators() {
        for (v, want) in [
            (0.0, "0"),
            (999.0, "999"),
            (1000.0, "1,000"),
            (1234567.4, "1,234,567"),
        ] {
            assert_eq!(thousands(v), want);
        }
    }

    #[test]
    fn numbers_in_the_timeline_are_short() {
        assert_eq!(number(150.0), "150");
        assert_eq!(number(2.0 / 3.0), "0.667");
        assert_eq!(number(-0.0001), "0");
    }
}
