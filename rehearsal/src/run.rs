//! One rehearsal from its options: variables -> Terraform's own checks -> group -> load ->
//! workload -> minute loop -> comparison -> timeline, summary and verdict.

use std::path::Path;

use jiff::tz::TimeZone;

use crate::assumptions::Assumptions;
use crate::calibrate::{self, Calibration};
use crate::cli::Options;
use crate::compare::{self, Comparison, Fit, Window};
use crate::error::{EXIT_SLO_MET, EXIT_SLO_MISSED, Error};
use crate::faults::{self, Fault};
use crate::load::{self, Start};
use crate::model::{self, Group};
use crate::prices::Prices;
use crate::profiles::Profiles;
use crate::report::{self, Slo, Verdict};
use crate::rules::retry::RetryPolicy;
use crate::simulate::{self, Outcome, Scenario, Workload};
use crate::summary::{
    LoadSummary, PricesSummary, RetrySummary, SloSummary, Summary, VariableSummary, WorkloadSummary,
};
use crate::terraform::{self, Context, Refusal};
use crate::variables::{self, Variables};

/// What a rehearsal produced.
#[derive(Debug)]
pub struct Report {
    pub exit_code: i32,
    pub verdict: String,
    pub summary: Option<Summary>,
    pub outcome: Outcome,
    pub notes: Vec<String>,
}

/// The time zone `--start` is read in when it names none: the schedules' zone when they
/// share one, else UTC.
fn start_zone(group: &Group) -> TimeZone {
    let mut zones = group.schedules.iter().map(|s| s.time_zone_name.as_str());
    match zones.next() {
        Some(first) if zones.all(|z| z == first) => TimeZone::get(first).unwrap_or(TimeZone::UTC),
        _ => TimeZone::UTC,
    }
}

fn refusal_line(vars: &Variables, r: &Refusal) -> String {
    let what = match &r.variable {
        Some(name) => {
            let value = match vars.get(name) {
                Some(serde_json::Value::Number(n)) => {
                    terraform::eval::format_number(n.as_f64().unwrap_or(f64::NAN))
                }
                Some(v) => v.to_string(),
                None => "null".to_owned(),
            };
            let origin = vars.origin.get(name).map_or("", String::as_str);
            format!("variable {name} = {value} ({origin})")
        }
        None => r.owner.clone(),
    };
    format!("  {what}, {}: {}", r.file, r.message)
}

/// Terraform's own checks (variable validations and preconditions) on these values, in
/// the workspace and module the options name.
pub(crate) fn verify_values(o: &Options, vars: &Variables) -> terraform::Verdict {
    let path = o.infra.display().to_string();
    terraform::verify(
        &vars.checks,
        &Context {
            values: &vars.values,
            workspace: &o.env,
            path: &path,
        },
    )
}

/// Terraform's own checks: the values it refuses are refused here, with its messages.
fn terraform_checks(o: &Options, vars: &Variables) -> Result<terraform::Verdict, Error> {
    let verdict = verify_values(o, vars);
    if verdict.refusals.is_empty() {
        return Ok(verdict);
    }
    let lines: Vec<String> = verdict
        .refusals
        .iter()
        .map(|r| refusal_line(vars, r))
        .collect();
    Err(Error::usage(format!(
        "terraform plan would refuse these values (its own checks, with its messages):\n{}",
        lines.join("\n")
    )))
}

/// The wall-clock start, and whether the user gave it.
fn start(
    o: &Options,
    load: &load::Load,
    zone: &TimeZone,
    notes: &mut Vec<String>,
    group: &Group,
) -> Result<(Start, bool), Error> {
    match (&o.start, load.start) {
        (Some(text), _) => Ok((load::parse_start(text, zone)?, true)),
        (None, Some(load::CsvStart::Local(dt))) => {
            Ok((load::civil_start(dt, zone, "the load's first row")?, true))
        }
        (None, Some(load::CsvStart::Instant(ts))) => Ok((
            Start {
                zoned: ts.to_zoned(zone.clone()),
                warning: None,
            },
            true,
        )),
        (None, None) => {
            if !group.schedules.is_empty() {
                notes.push("no --start: the schedules are rehearsed from now".to_owned());
            }
            let now = jiff::Zoned::now().with_time_zone(zone.clone());
            let zoned = now
                .round(jiff::Unit::Minute)
                .map_err(|e| Error::failed(e.to_string()))?;
            Ok((
                Start {
                    zoned,
                    warning: None,
                },
                false,
            ))
        }
    }
}

/// Where the per-request CPU cost comes from.
#[derive(Debug)]
struct Cost {
    service_secs: f64,
    source: String,
    calibration: Option<Calibration>,
}

fn workload_cost(
    o: &Options,
    assumptions: &Assumptions,
    vcpus: f64,
    fit: Option<&Fit>,
) -> Result<Cost, Error> {
    let calibration = match (&o.service_binary, o.instance_rps) {
        (Some(binary), None) => {
            let cache = o.cache_dir.clone().unwrap_or_else(std::env::temp_dir);
            Some(calibrate::load_or_measure(
                binary,
                &cache,
                o.calibration_secs,
                o.recalibrate,
            )?)
        }
        _ => None,
    };
    let profile_cost = calibration
        .as_ref()
        .map(|c| {
            c.calibration.profiles.get(&o.profile).ok_or_else(|| {
                Error::failed(format!("the calibration has no '{}' profile", o.profile))
            })
        })
        .transpose()?;
    if let Some(rps) = o.instance_rps {
        return Ok(Cost {
            service_secs: vcpus / rps,
            source: format!("--instance-rps {rps}"),
            calibration: None,
        });
    }
    if let Some(fit) = fit {
        let speed = profile_cost.map(|c| {
            // The vcpu_speed that gives the fitted rate with this machine's calibration.
            vcpus / (c.cpu_us_per_request / 1e6) / fit.instance_rps
        });
        return Ok(Cost {
            service_secs: vcpus / fit.instance_rps,
            source: format!(
                "fitted from {} ({} windows, CPU error {:.1} points RMS){}",
                fit.file,
                fit.windows,
                fit.rms_cpu_error,
                speed.map_or(String::new(), |s| format!(
                    "; against this machine's calibration that is --assume vcpu_speed={s:.3}"
                ))
            ),
            calibration: calibration.map(|c| c.calibration),
        });
    }
    let (Some(measured), Some(cost)) = (&calibration, profile_cost) else {
        return Err(Error::usage(
            "no --instance-rps: give --service-binary PATH to calibrate from the real binary, or --calibrate-from a real run's samples.csv",
        ));
    };
    let cal = &measured.calibration;
    Ok(Cost {
        service_secs: cost.cpu_us_per_request / 1e6 / assumptions.vcpu_speed,
        source: format!(
            "calibrated ({}): {:.1} µs of CPU per {} request on one core of {} (spread {:.1} % over {} samples), / vcpu_speed {}",
            if measured.measured {
                "measured now"
            } else {
                "cached"
            },
            cost.cpu_us_per_request,
            o.profile,
            cal.machine,
            cost.spread_percent,
            cost.samples.len(),
            assumptions.vcpu_speed
        ),
        calibration: Some(cal.clone()),
    })
}

/// The header lines of the printed verdict, from the summary.
fn header(s: &Summary, start: &Start) -> Vec<(String, String)> {
    let (c, group) = (&s.cost, &s.group);
    let (min, max) = s
        .initial
        .map_or((group.min_size, group.max_size), |i| (i.min, i.max));
    let mut lines = vec![
        (
            "rehearsal".to_owned(),
            format!(
                "{}: {} scaling, {} ({} vCPUs) in {} zones, min {min} max {max} at the start{}",
                s.environment,
                s.scaling_mode,
                s.instance_type,
                s.workload.vcpus,
                group.az_count,
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
                s.profile,
                s.load.source,
                s.minutes,
                start.zoned.strftime("%Y-%m-%d %H:%M %Z")
            ),
        ),
        (
            "workload".to_owned(),
            format!(
                "{:.0} rps per instance at 100 % CPU ({})",
                s.workload.instance_rps_at_100_percent_cpu, s.workload.source
            ),
        ),
        (
            "capacity".to_owned(),
            format!(
                "desired {} to {}; {:.2} instance-hours",
                s.totals.min_desired, s.totals.max_desired, c.instance_hours
            ),
        ),
        (
            "cost".to_owned(),
            format!(
                "${:.4}: instances ${:.4}, surplus credits ${:.4}, ALB ${:.4} + LCU ${:.4}, public IPv4 ${:.4}, data out ${:.4}, EBS ${:.4}, CloudWatch ${:.4}, DynamoDB ${:.4} ({} prices of {})",
                c.total_usd,
                c.instances_usd,
                c.surplus_credits_usd,
                c.alb_hours_usd,
                c.alb_lcu_usd,
                c.public_ipv4_usd,
                c.data_transfer_usd,
                c.ebs_usd,
                c.cloudwatch_usd,
                c.dynamodb_usd,
                s.prices.region,
                s.prices.as_of
            ),
        ),
    ];
    if let Some(cmp) = &s.compare {
        lines.push(("compare".to_owned(), compare_line(cmp)));
    }
    lines
}

fn compare_line(cmp: &Comparison) -> String {
    let mae = &cmp.mean_absolute_error;
    let show = |v: Option<f64>, unit: &str| v.map_or("n/a".to_owned(), |v| format!("{v:.2}{unit}"));
    format!(
        "{}: {} windows, {:.0} s; mean absolute error per minute: desired {}, in service {}, CPU {}, p99 {} (compare.csv)",
        cmp.file,
        cmp.windows,
        cmp.duration_s,
        show(mae.desired, ""),
        show(mae.in_service, ""),
        show(mae.cpu_percent, " points"),
        show(mae.p99_ms, " ms"),
    )
}

fn write_outputs(
    out: &Path,
    outcome: &Outcome,
    zone: &TimeZone,
    summary: &Summary,
    verdict: &str,
) -> Result<(), Error> {
    std::fs::create_dir_all(out)
        .map_err(|e| Error::failed(format!("cannot create {}: {e}", out.display())))?;
    report::write_timeline(&out.join("timeline.csv"), &outcome.rows, zone)?;
    if let Some(cmp) = &summary.compare {
        compare::write_csv(&out.join("compare.csv"), cmp)?;
    }
    let text = serde_json::to_string_pretty(summary).map_err(|e| Error::failed(e.to_string()))?;
    std::fs::write(out.join("summary.json"), text + "\n")
        .map_err(|e| Error::failed(format!("cannot write summary.json: {e}")))?;
    std::fs::write(out.join("summary.txt"), verdict)
        .map_err(|e| Error::failed(format!("cannot write summary.txt: {e}")))
}

/// Everything a rehearsal reads and decides before the minute loop (the variables, the
/// group, the load, the workload), apart from the loop and the report.
#[derive(Debug)]
pub struct Prepared {
    pub vars: Variables,
    pub terraform_verdict: terraform::Verdict,
    pub assumptions: Assumptions,
    pub group: Group,
    /// Warnings about the variables, the checks and the start (not the load's).
    pub warnings: Vec<String>,
    pub prices: Prices,
    pub load: load::Load,
    pub zone: TimeZone,
    pub start: Start,
    pub clock_time: bool,
    pub notes: Vec<String>,
    compare_windows: Option<Vec<Window>>,
    fit: Option<Fit>,
    cost: Option<Cost>,
    pub workload: Option<Workload>,
    pub retry: Option<RetryPolicy>,
}

impl Prepared {
    /// The scenario of `group` on this load (`None` in `--check` mode: no workload yet).
    pub fn scenario<'a>(
        &'a self,
        group: &'a Group,
        instance: crate::prices::InstancePrice,
        faults: &'a [Fault],
    ) -> Option<Scenario<'a>> {
        Some(Scenario {
            group,
            assumptions: &self.assumptions,
            prices: &self.prices,
            instance,
            workload: self.workload?,
            load: &self.load.rps,
            start: self.start.zoned.timestamp(),
            faults,
            retry: self.retry,
        })
    }

    /// Requests per second one instance of `vcpus` serves at 100 % CPU.
    pub fn instance_rps(&self, vcpus: u32) -> Option<f64> {
        self.workload.map(|w| f64::from(vcpus) / w.service_secs)
    }
}

/// Reads the variables, Terraform's checks, the group, the load and the workload (the
/// calibration, unless `--check`).
pub fn prepare(o: &Options, env: &[(String, String)]) -> Result<Prepared, Error> {
    let vars = variables::load(&o.infra, &o.assignments, env)?;
    let terraform_verdict = terraform_checks(o, &vars)?;
    let mut assumptions = Assumptions::default();
    for a in &o.assumptions {
        assumptions.set(a).map_err(Error::usage)?;
    }
    let model::Read {
        group,
        mut warnings,
    } = model::group(&vars, &assumptions, &o.env, &o.infra)?;
    warnings.extend(vars.warnings.iter().cloned());
    warnings.extend(terraform_verdict.warnings.iter().cloned());
    let prices = Prices::load(o.prices.as_deref())?;
    let instance = prices.instance(&group.instance_type)?;
    let load = match &o.load_csv {
        Some(path) => load::from_csv(path)?,
        None => load::from_steps(&o.rates, o.duration_secs),
    };
    faults::check(&o.faults, group.az_count, load.rps.len())?;
    let zone = start_zone(&group);
    let mut notes = o.notes.clone();
    let (start, clock_time) = start(o, &load, &zone, &mut notes, &group)?;
    warnings.extend(start.warning.clone());
    let compare_windows: Option<Vec<Window>> = o
        .compare
        .as_deref()
        .map(|p| compare::read_samples(p, "--compare"))
        .transpose()?;
    let fit = o
        .calibrate_from
        .as_deref()
        .map(|p| {
            compare::read_samples(p, "--calibrate-from")
                .and_then(|w| compare::fit(p, &w, assumptions.idle_cpu_percent))
        })
        .transpose()?;
    let retry = (o.retries > 0).then(|| RetryPolicy {
        retries: o.retries,
        backoff: o.backoff,
        base_secs: o.retry_base_ms / 1000.0,
        max_backoff_secs: assumptions.retry_max_backoff_ms / 1000.0,
    });
    let (cost, workload) = if o.check_only {
        (None, None)
    } else {
        let cost = workload_cost(o, &assumptions, f64::from(instance.vcpus), fit.as_ref())?;
        let profiles = Profiles::shipped();
        let fixed_ms = assumptions.alb_latency_ms
            + if profiles.uses_store(&o.profile) {
                assumptions.store_latency_ms
            } else {
                0.0
            };
        let workload = Workload {
            service_secs: cost.service_secs,
            fixed_secs: fixed_ms / 1000.0,
            store: profiles.store_mix(&o.profile),
        };
        (Some(cost), Some(workload))
    };
    Ok(Prepared {
        vars,
        terraform_verdict,
        assumptions,
        group,
        warnings,
        prices,
        load,
        zone,
        start,
        clock_time,
        notes,
        compare_windows,
        fit,
        cost,
        workload,
        retry,
    })
}

/// The header lines about the failures and the retries.
fn failure_and_retry_lines(summary: &Summary) -> Vec<(String, String)> {
    let mut lines = Vec::new();
    if let Some(f) = &summary.failures {
        lines.push((
            "failures".to_owned(),
            format!(
                "{}: {} instance-minutes not answering, {} replaced; {} requests failed for good in minutes {}-{}",
                f.faults.join(" "),
                f.instance_minutes_not_answering,
                f.replacements,
                report::thousands(f.failed_requests),
                f.from_minute,
                f.to_minute
            ),
        ));
    }
    if let Some(r) = &summary.retries {
        lines.push((
            "retries".to_owned(),
            format!(
                "up to {} a request, {} backoff from {} ms: {} retries, {:.3} attempts a request, {} failed for good{}",
                r.policy.retries,
                r.policy.backoff.as_str(),
                r.policy.base_secs * 1000.0,
                report::thousands(r.retries),
                r.amplification,
                report::thousands(r.failed_for_good),
                if r.pending_at_end > 0.5 {
                    format!(", {} still waiting to be retried at the end", report::thousands(r.pending_at_end))
                } else {
                    String::new()
                }
            ),
        ));
    }
    lines
}

/// Runs a rehearsal; writes timeline.csv, summary.json, summary.txt (and compare.csv) when
/// `o.out` is set.
pub fn rehearse(o: &Options, env: &[(String, String)]) -> Result<Report, Error> {
    let prepared = prepare(o, env)?;
    if o.check_only {
        return Ok(Report {
            exit_code: EXIT_SLO_MET,
            verdict: String::new(),
            summary: None,
            outcome: Outcome::default(),
            notes: prepared.notes,
        });
    }
    let instance = prepared.prices.instance(&prepared.group.instance_type)?;
    let scenario = prepared
        .scenario(&prepared.group, instance, &o.faults)
        .ok_or_else(|| Error::failed("no workload to rehearse"))?;
    let outcome = simulate::run(&scenario);
    finish(o, prepared, outcome)
}

/// The report of a rehearsed `outcome`: comparison, totals, SLO, summary, verdict, files.
fn finish(o: &Options, p: Prepared, outcome: Outcome) -> Result<Report, Error> {
    let Prepared {
        vars,
        terraform_verdict,
        assumptions,
        group,
        mut warnings,
        prices,
        load,
        start,
        clock_time,
        mut notes,
        compare_windows,
        fit,
        cost,
        workload,
        retry,
        ..
    } = p;
    let (Some(cost), Some(workload)) = (cost, workload) else {
        return Err(Error::failed("no workload to rehearse"));
    };
    let instance = prices.instance(&group.instance_type)?;
    let vcpus = f64::from(instance.vcpus);
    let fixed_ms = workload.fixed_secs * 1000.0;
    let store = workload.store;
    let instance_rps = vcpus / cost.service_secs;
    let comparison = o
        .compare
        .as_deref()
        .zip(compare_windows.as_deref())
        .map(|(path, windows)| compare::compare(path, windows, &outcome.rows));
    let totals = report::totals(&outcome.rows);
    let slo = Slo {
        rps: o.slo.rps.unwrap_or(totals.peak_offered_rps),
        mean_ms: o.slo.mean_ms,
        success_percent: o.slo.success_percent,
    };
    warnings.extend(outcome.warnings.iter().cloned());
    warnings.extend(report::load_warnings(
        &outcome,
        &group,
        instance_rps,
        &totals,
        &slo,
        start.zoned.time_zone(),
    ));
    let c = &outcome.costs;
    if c.surplus_credits_usd > c.instances_usd {
        warnings.push(format!(
            "unlimited-mode surplus CPU credits charged (${:.2}) cost more than the {} instances themselves (${:.2}): at this CPU level a fixed-performance type (c7i, m7i) may be cheaper; rehearse it with -var instance_type=...",
            c.surplus_credits_usd, group.instance_type, c.instances_usd
        ));
    }
    if c.surplus_credits_outstanding_usd > 0.005 {
        notes.push(format!(
            "the instances still owe ${:.4} of surplus CPU credits at the end: repaid by quieter hours, or charged if they stop first (./destroy.sh right after a test)",
            c.surplus_credits_outstanding_usd
        ));
    }
    let checks = report::checks(&totals, &slo);
    let slo_met = checks.iter().all(|c| c.met);
    let summary = Summary {
        slo_met,
        max_desired: totals.max_desired,
        instance_hours: c.instance_hours,
        cost_usd: c.total_usd,
        failed_fraction: totals.failed_fraction,
        warnings: warnings.clone(),
        environment: o.env.clone(),
        scaling_mode: group.mode(),
        instance_type: group.instance_type.clone(),
        profile: o.profile.clone(),
        start: start.zoned.to_string(),
        clock_time,
        minutes: outcome.rows.len(),
        load: LoadSummary {
            source: load.description.clone(),
            peak_offered_rps: totals.peak_offered_rps,
        },
        initial: outcome.initial,
        totals,
        slo: SloSummary { goals: slo, checks },
        cost: *c,
        workload: WorkloadSummary {
            source: cost.source.clone(),
            cpu_us_per_request_per_vcpu: cost.service_secs * 1e6,
            instance_rps_at_100_percent_cpu: instance_rps,
            vcpus: instance.vcpus,
            fixed_latency_ms: fixed_ms,
            store_reads_per_request: store.reads,
            store_writes_per_request: store.writes,
        },
        calibration: cost.calibration.clone(),
        calibration_fit: fit,
        assumptions: assumptions.clone(),
        group: group.clone(),
        variables: vars
            .values
            .iter()
            .filter(|(name, _)| name.as_str() != "tags")
            .map(|(name, value)| {
                (
                    name.clone(),
                    VariableSummary {
                        value: value.clone(),
                        from: vars.origin.get(name).cloned(),
                    },
                )
            })
            .collect(),
        variable_files: vars.files.clone(),
        terraform_undecided: terraform_verdict.undecided,
        prices: PricesSummary {
            region: prices.region.clone(),
            as_of: prices.as_of.clone(),
            sources: prices.sources.clone(),
        },
        compare: comparison,
        failures: faults::summarize(&o.faults, &outcome.rows),
        retries: retry.map(|policy| RetrySummary {
            policy,
            first_attempts: totals.offered_requests,
            retries: totals.retry_requests,
            amplification: totals.amplification,
            failed_attempts: totals.failed_attempts,
            failed_for_good: totals.failed_requests,
            pending_at_end: outcome.retries_pending_rps * 60.0,
        }),
        notes: notes.clone(),
    };
    let mut header_lines = header(&summary, &start);
    header_lines.extend(failure_and_retry_lines(&summary));
    let verdict = Verdict {
        header: header_lines,
        totals: &summary.totals,
        checks: &summary.slo.checks,
        warnings: &summary.warnings,
    }
    .render();
    if let Some(out) = &o.out {
        write_outputs(out, &outcome, start.zoned.time_zone(), &summary, &verdict)?;
    }
    Ok(Report {
        exit_code: if slo_met {
            EXIT_SLO_MET
        } else {
            EXIT_SLO_MISSED
        },
        verdict,
        summary: Some(summary),
        outcome,
        notes,
    })
}
