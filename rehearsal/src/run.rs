//! One rehearsal from its options: variables -> group -> load -> workload -> minute loop ->
//! timeline, summary and verdict.

use std::path::Path;

use jiff::tz::TimeZone;
use serde_json::{Value, json};

use crate::assumptions::Assumptions;
use crate::calibrate::{self, Calibration};
use crate::cli::Options;
use crate::error::{EXIT_SLO_MET, EXIT_SLO_MISSED, Error};
use crate::load;
use crate::model;
use crate::prices::Prices;
use crate::report::{self, Verdict};
use crate::simulate::{self, Outcome, Scenario, Workload};
use crate::variables;

/// What a rehearsal produced.
#[derive(Debug)]
pub struct Report {
    pub exit_code: i32,
    pub verdict: String,
    pub summary: Value,
    pub outcome: Outcome,
    pub notes: Vec<String>,
}

/// The time zone `--start` is read in when it names none: the schedules' zone when they
/// share one, else UTC.
fn start_zone(group: &model::Group) -> TimeZone {
    let mut zones = group.schedules.iter().map(|s| s.time_zone_name.as_str());
    match zones.next() {
        Some(first) if zones.all(|z| z == first) => TimeZone::get(first).unwrap_or(TimeZone::UTC),
        _ => TimeZone::UTC,
    }
}

/// loadtest.sh's samples.csv, summarised for the comparison.
fn compare_summary(path: &Path) -> Result<Value, Error> {
    let usage = |m: String| Error::usage(format!("--compare {}: {m}", path.display()));
    let mut reader = csv::Reader::from_path(path).map_err(|e| usage(e.to_string()))?;
    let header: Vec<String> = reader
        .headers()
        .map_err(|e| usage(e.to_string()))?
        .iter()
        .map(str::to_owned)
        .collect();
    let needed = [
        "elapsed_s",
        "rps",
        "p50_ms",
        "p99_ms",
        "desired",
        "in_service",
        "cpu_percent",
    ];
    let missing: Vec<&str> = needed
        .iter()
        .copied()
        .filter(|n| !header.iter().any(|h| h == n))
        .collect();
    if !missing.is_empty() {
        return Err(usage(format!(
            "not a loadtest.sh samples.csv: no column {}",
            missing.join(", ")
        )));
    }
    let index = |n: &str| header.iter().position(|h| h == n).unwrap_or(0);
    let (mut windows, mut last, mut peak, mut max_in_service, mut worst_p99) =
        (0, 0.0f64, 0.0f64, None::<f64>, None::<f64>);
    for record in reader.records() {
        let record = record.map_err(|e| usage(e.to_string()))?;
        let get = |n: &str| {
            record
                .get(index(n))
                .and_then(|v| v.trim().parse::<f64>().ok())
        };
        windows += 1;
        last = last.max(get("elapsed_s").unwrap_or(0.0));
        peak = peak.max(get("rps").unwrap_or(0.0));
        if let Some(v) = get("in_service") {
            max_in_service = Some(max_in_service.map_or(v, |m| m.max(v)));
        }
        if let Some(v) = get("p99_ms") {
            worst_p99 = Some(worst_p99.map_or(v, |m| m.max(v)));
        }
    }
    if windows == 0 {
        return Err(usage("no data rows".to_owned()));
    }
    Ok(json!({
        "file": path.display().to_string(),
        "windows": windows,
        "duration_s": last,
        "peak_rps": peak,
        "max_in_service": max_in_service,
        "worst_p99_ms": worst_p99,
    }))
}

fn uses_store(profile: &str) -> bool {
    matches!(profile, "read" | "write" | "mixed")
}

/// Runs a rehearsal; writes timeline.csv and summary.json when `o.out` is set.
pub fn rehearse(o: &Options, env: &[(String, String)]) -> Result<Report, Error> {
    let vars = variables::load(&o.infra, &o.assignments, env)?;
    let mut assumptions = Assumptions::default();
    for a in &o.assumptions {
        assumptions.set(a).map_err(Error::usage)?;
    }
    let (group, mut warnings) = model::group(&vars, &assumptions)?;
    warnings.extend(vars.warnings.iter().cloned());
    let prices = Prices::load(o.prices.as_deref())?;
    let instance = prices.instance(&group.instance_type)?;
    let load = match &o.load_csv {
        Some(path) => load::from_csv(path)?,
        None => load::from_steps(&o.rates, o.duration_secs),
    };
    let zone = start_zone(&group);
    let mut notes = o.notes.clone();
    let start = match (&o.start, load.start) {
        (Some(text), _) => load::parse_start(text, &zone)?,
        (None, Some(dt)) => dt
            .to_zoned(zone.clone())
            .map_err(|e| Error::usage(e.to_string()))?,
        (None, None) => {
            let now = jiff::Zoned::now().with_time_zone(zone.clone());
            if !group.schedules.is_empty() {
                notes.push("no --start: the schedules are rehearsed from now".to_owned());
            }
            now.round(jiff::Unit::Minute)
                .map_err(|e| Error::failed(e.to_string()))?
        }
    };
    let compare = o.compare.as_deref().map(compare_summary).transpose()?;
    if o.check_only {
        return Ok(Report {
            exit_code: EXIT_SLO_MET,
            verdict: String::new(),
            summary: Value::Null,
            outcome: Outcome::default(),
            notes,
        });
    }
    let vcpus = f64::from(instance.vcpus);
    let mut calibration: Option<(Calibration, bool)> = None;
    let (service_secs, workload_source) = match o.instance_rps {
        Some(rps) => (vcpus / rps, format!("--instance-rps {rps}")),
        None => {
            let binary = o.service_binary.as_deref().ok_or_else(|| {
                Error::usage("no --instance-rps: give --service-binary PATH to calibrate from the real binary")
            })?;
            let cache = o.cache_dir.clone().unwrap_or_else(std::env::temp_dir);
            let (cal, measured) =
                calibrate::load_or_measure(binary, &cache, o.calibration_secs, o.recalibrate)?;
            let cost = cal.profiles.get(&o.profile).ok_or_else(|| {
                Error::failed(format!("the calibration has no '{}' profile", o.profile))
            })?;
            let source = format!(
                "calibrated ({}): {:.1} µs of CPU per {} request on one core of {}, / vcpu_speed {}",
                if measured { "measured now" } else { "cached" },
                cost.cpu_us_per_request,
                o.profile,
                cal.machine,
                assumptions.vcpu_speed
            );
            let secs = cost.cpu_us_per_request / 1e6 / assumptions.vcpu_speed;
            calibration = Some((cal, measured));
            (secs, source)
        }
    };
    let fixed_ms = assumptions.alb_latency_ms
        + if uses_store(&o.profile) {
            assumptions.store_latency_ms
        } else {
            0.0
        };
    let workload = Workload {
        service_secs,
        fixed_secs: fixed_ms / 1000.0,
    };
    let instance_rps = vcpus / service_secs;
    let outcome = simulate::run(&Scenario {
        group: &group,
        assumptions: &assumptions,
        prices: &prices,
        instance,
        workload,
        load: &load.rps,
        start: start.timestamp(),
    });
    let totals = report::totals(&outcome.rows);
    warnings.extend(outcome.warnings.iter().cloned());
    warnings.extend(report::load_warnings(
        &outcome,
        &group,
        instance_rps,
        &totals,
        &o.slo,
        start.time_zone(),
    ));
    let c = &outcome.costs;
    if c.surplus_credits_usd > c.instances_usd {
        warnings.push(format!(
            "unlimited-mode surplus CPU credits (${:.2}) cost more than the {} instances themselves (${:.2}): at this CPU level a fixed-performance type (c7i, m7i) may be cheaper; rehearse it with -var instance_type=...",
            c.surplus_credits_usd, group.instance_type, c.instances_usd
        ));
    }
    let checks = report::checks(&totals, &o.slo);
    let slo_met = checks.iter().all(|c| c.met);

    let used: serde_json::Map<String, Value> = vars
        .values
        .iter()
        .filter(|(name, _)| name.as_str() != "tags")
        .map(|(name, value)| {
            (
                name.clone(),
                json!({ "value": value, "from": vars.origin.get(name) }),
            )
        })
        .collect();
    let summary = json!({
        "slo_met": slo_met,
        "max_desired": totals.max_desired,
        "instance_hours": c.instance_hours,
        "cost_usd": c.total_usd,
        "failed_fraction": totals.failed_fraction,
        "warnings": warnings,
        "environment": o.env,
        "scaling_mode": group.mode(),
        "instance_type": group.instance_type,
        "profile": o.profile,
        "start": start.to_string(),
        "minutes": outcome.rows.len(),
        "load": { "source": load.description, "peak_offered_rps": totals.peak_offered_rps },
        "initial": { "min_size": outcome.initial.0, "max_size": outcome.initial.1, "desired": outcome.initial.2 },
        "totals": totals,
        "slo": { "goals": o.slo, "checks": checks },
        "cost": c,
        "workload": {
            "source": workload_source,
            "cpu_us_per_request_per_vcpu": service_secs * 1e6,
            "instance_rps_at_100_percent_cpu": instance_rps,
            "vcpus": instance.vcpus,
            "fixed_latency_ms": fixed_ms,
        },
        "calibration": calibration.as_ref().map(|(cal, _)| cal),
        "assumptions": assumptions,
        "group": group,
        "variables": used,
        "variable_files": vars.files,
        "prices": { "region": prices.region, "as_of": prices.as_of, "sources": prices.sources },
        "compare": compare,
        "notes": notes,
    });
    let mut header = vec![
        (
            "rehearsal".to_owned(),
            format!(
                "{}: {} scaling, {} ({} vCPUs), min {} max {} at the start{}",
                o.env,
                group.mode(),
                group.instance_type,
                instance.vcpus,
                outcome.initial.0,
                outcome.initial.1,
                if group.schedules.is_empty() {
                    String::new()
                } else {
                    format!(", {} scheduled actions", group.schedules.len())
                }
            ),
        ),
        (
            "load".to_owned(),
            format!(
                "profile {}: {}; {} minutes from {}",
                o.profile,
                load.description,
                outcome.rows.len(),
                start.strftime("%Y-%m-%d %H:%M %Z")
            ),
        ),
        (
            "workload".to_owned(),
            format!("{instance_rps:.0} rps per instance at 100 % CPU ({workload_source})"),
        ),
        (
            "capacity".to_owned(),
            format!(
                "desired {} to {}; {:.2} instance-hours",
                totals.min_desired, totals.max_desired, c.instance_hours
            ),
        ),
        (
            "cost".to_owned(),
            format!(
                "${:.4} (instances ${:.4}, surplus credits ${:.4}, ALB ${:.4} + LCU ${:.4}, public IPv4 ${:.4}; {} prices of {})",
                c.total_usd,
                c.instances_usd,
                c.surplus_credits_usd,
                c.alb_hours_usd,
                c.alb_lcu_usd,
                c.public_ipv4_usd,
                prices.region,
                prices.as_of
            ),
        ),
    ];
    if let Some(cmp) = &compare {
        header.push((
            "compare".to_owned(),
            format!(
                "{}: best {} rps, at most {} in service",
                cmp["file"].as_str().unwrap_or(""),
                cmp["peak_rps"],
                cmp["max_in_service"]
            ),
        ));
    }
    let verdict = Verdict {
        header,
        totals: &totals,
        checks: &checks,
        warnings: &warnings,
    }
    .render();
    if let Some(out) = &o.out {
        std::fs::create_dir_all(out)
            .map_err(|e| Error::failed(format!("cannot create {}: {e}", out.display())))?;
        report::write_timeline(&out.join("timeline.csv"), &outcome.rows, start.time_zone())?;
        let text =
            serde_json::to_string_pretty(&summary).map_err(|e| Error::failed(e.to_string()))?;
        std::fs::write(out.join("summary.json"), text + "\n")
            .map_err(|e| Error::failed(format!("cannot write summary.json: {e}")))?;
        std::fs::write(out.join("summary.txt"), &verdict)
            .map_err(|e| Error::failed(format!("cannot write summary.txt: {e}")))?;
    }
    Ok(Report {
        exit_code: if slo_met {
            EXIT_SLO_MET
        } else {
            EXIT_SLO_MISSED
        },
        verdict,
        summary,
        outcome,
        notes,
    })
}
