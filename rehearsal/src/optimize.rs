//! `--optimize`: the cheapest configuration that still meets the SLO on the given load (and
//! its `--fail` events and `--retries`), by coordinate descent over a bounded grid of the
//! variables a user tunes. Every candidate passes Terraform's own checks (the rehearsal's
//! evaluator) before it is rehearsed, so nothing `terraform plan` refuses is recommended.
//!
//! The search starts from today's configuration and, pass after pass, tries every value of
//! one variable with the others held, keeping a change only when it is strictly better:
//! first toward meeting the SLO (fewer failed requests, less latency over the goal), then
//! toward a lower predicted cost. It stops when a pass changes nothing (at most
//! `MAX_PASSES`). Candidates of one variable are rehearsed in parallel on all cores, and
//! the choice among them never depends on which thread finished first: deterministic.

use std::cmp::Ordering;
use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde_json::{Value, json};

use crate::cli::Options;
use crate::error::Error;
use crate::report::{self, Slo};
use crate::run::{self, Prepared};
use crate::simulate;
use crate::terraform;

/// Passes over all the variables before the search stops even if the last one moved.
pub const MAX_PASSES: usize = 4;

/// How many of the best configurations are reported.
pub const BEST_FEW: usize = 5;

/// The step-scaling shapes tried for `scale_out_steps` (lower bound above the threshold,
/// instances added): one at a time, the default, faster, and much faster on a steep rise.
fn step_shapes() -> Vec<Value> {
    vec![
        json!([{ "lower_bound": 0, "adjustment": 1 }]),
        json!([{ "lower_bound": 0, "adjustment": 1 }, { "lower_bound": 20, "adjustment": 2 }]),
        json!([{ "lower_bound": 0, "adjustment": 2 }]),
        json!([{ "lower_bound": 0, "adjustment": 1 }, { "lower_bound": 10, "adjustment": 2 }, { "lower_bound": 25, "adjustment": 4 }]),
    ]
}

/// The default grid: (variable, values). `--bound NAME=LO..HI` narrows a numeric one (or
/// sets min_size/max_size to every whole number in the range); `--bound NAME=A,B` lists
/// the values of instance_type or scaling_mode.
fn default_grid(prepared: &Prepared) -> Vec<(String, Vec<Value>)> {
    let numbers = |v: &[f64]| v.iter().map(|n| json!(n)).collect::<Vec<_>>();
    let types = prepared.prices.instances.keys().map(|t| json!(t)).collect();
    vec![
        (
            "min_size".to_owned(),
            numbers(&[1.0, 2.0, 3.0, 4.0, 5.0, 6.0]),
        ),
        (
            "max_size".to_owned(),
            numbers(&[1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 8.0, 10.0, 12.0, 16.0]),
        ),
        (
            "scale_out_cpu_threshold".to_owned(),
            numbers(&[40.0, 50.0, 60.0, 70.0, 80.0]),
        ),
        (
            "scale_out_evaluation_periods".to_owned(),
            numbers(&[1.0, 2.0, 3.0]),
        ),
        ("scale_out_steps".to_owned(), step_shapes()),
        (
            "scale_in_cpu_threshold".to_owned(),
            numbers(&[10.0, 20.0, 30.0, 40.0]),
        ),
        (
            "target_cpu_percent".to_owned(),
            numbers(&[30.0, 40.0, 50.0, 60.0, 70.0]),
        ),
        (
            "instance_warmup_secs".to_owned(),
            numbers(&[30.0, 60.0, 90.0, 120.0, 180.0]),
        ),
        ("instance_type".to_owned(), types),
        (
            "scaling_mode".to_owned(),
            vec![json!("step"), json!("target_tracking")],
        ),
    ]
}

/// The variables the search sets (the coordinates), and the schedules when there are some.
pub const TUNED: [&str; 10] = [
    "instance_type",
    "scaling_mode",
    "min_size",
    "max_size",
    "scale_out_cpu_threshold",
    "scale_out_evaluation_periods",
    "scale_out_steps",
    "scale_in_cpu_threshold",
    "target_cpu_percent",
    "instance_warmup_secs",
];

/// Applies `--bound NAME=SPEC` to the grid.
fn bound(grid: &mut [(String, Vec<Value>)], spec: &str) -> Result<(), Error> {
    let (name, range) = spec.split_once('=').ok_or_else(|| {
        Error::usage(format!(
            "--bound takes NAME=LO..HI or NAME=A,B, not '{spec}'"
        ))
    })?;
    let name = name.trim();
    let Some((_, values)) = grid.iter_mut().find(|(n, _)| n == name) else {
        return Err(Error::usage(format!(
            "--bound {name}: the search tunes {} (schedules' minimums follow min_size's bound)",
            TUNED.join(", ")
        )));
    };
    if let Some((lo, hi)) = range.split_once("..") {
        let parse = |t: &str| {
            t.trim()
                .parse::<f64>()
                .ok()
                .filter(|v| v.is_finite())
                .ok_or_else(|| Error::usage(format!("--bound {name}: '{t}' is not a number")))
        };
        let (lo, hi) = (parse(lo)?, parse(hi)?);
        if lo > hi {
            return Err(Error::usage(format!("--bound {name}: {lo} is above {hi}")));
        }
        if matches!(name, "min_size" | "max_size") {
            if hi - lo > 100.0 {
                return Err(Error::usage(format!(
                    "--bound {name}: at most 100 sizes, not {lo}..{hi}"
                )));
            }
            *values = (lo.ceil() as i64..=hi.floor() as i64)
                .map(|n| json!(n))
                .collect();
        } else {
            values.retain(|v| v.as_f64().is_some_and(|v| (lo..=hi).contains(&v)));
        }
    } else {
        if !matches!(name, "instance_type" | "scaling_mode") {
            return Err(Error::usage(format!(
                "--bound {name} takes a range LO..HI, not '{range}'"
            )));
        }
        *values = range.split(',').map(|v| json!(v.trim())).collect();
    }
    if values.is_empty() {
        return Err(Error::usage(format!(
            "--bound {spec}: leaves no value to try"
        )));
    }
    Ok(())
}

/// The tuned variables of one configuration, in name order.
pub type Tuned = BTreeMap<String, Value>;

/// One rehearsed configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct Evaluated {
    pub tuned: Tuned,
    pub cost_usd: f64,
    pub slo_met: bool,
    pub success_percent: f64,
    pub mean_ms: Option<f64>,
    pub max_desired: i64,
    pub instance_hours: f64,
}

impl Evaluated {
    /// How far from the SLO a failing configuration is (0 when it is met).
    fn shortfall(&self, slo: &Slo) -> f64 {
        if self.slo_met {
            return 0.0;
        }
        let success = (slo.success_percent - self.success_percent).max(0.0) / 100.0;
        let latency = self
            .mean_ms
            .map_or(1.0, |m| (m - slo.mean_ms).max(0.0) / slo.mean_ms);
        // The throughput goal: a configuration that fails nothing and is fast enough still
        // misses it if its best minute serves less than asked; count it as a small failure.
        success + latency + 1e-6
    }
}

/// The order of the search: SLO met first, then the smaller shortfall, then the lower cost.
/// Only a strictly better candidate moves the search, so a variable without effect (the
/// target-tracking target in step mode) keeps today's value.
fn rank(a: &Evaluated, b: &Evaluated, slo: &Slo) -> Ordering {
    b.slo_met
        .cmp(&a.slo_met)
        .then(a.shortfall(slo).total_cmp(&b.shortfall(slo)))
        .then(a.cost_usd.total_cmp(&b.cost_usd))
}

/// The order of the report: by `rank`, then the fewest changes from today, then the
/// configuration's text (a total order, so ties never depend on the threads).
fn report_order(a: &Evaluated, b: &Evaluated, today: &Tuned, slo: &Slo) -> Ordering {
    rank(a, b, slo)
        .then(
            changes(today, &a.tuned)
                .len()
                .cmp(&changes(today, &b.tuned).len()),
        )
        .then_with(|| key(&a.tuned).cmp(&key(&b.tuned)))
}

fn key(tuned: &Tuned) -> String {
    serde_json::to_string(tuned).unwrap_or_default()
}

/// What the search found.
#[derive(Debug)]
pub struct Optimization {
    pub today: Evaluated,
    /// The best few that meet the SLO, cheapest first (empty when none does).
    pub best: Vec<Evaluated>,
    pub rehearsed: usize,
    /// Candidates Terraform's checks refuse (never rehearsed).
    pub refused: usize,
    pub passes: usize,
    pub threads: usize,
    pub slo: Slo,
}

/// Rehearses `candidates` on all cores; `None` for those Terraform refuses.
fn evaluate_all(
    o: &Options,
    prepared: &Prepared,
    candidates: &[Tuned],
    threads: usize,
) -> Vec<Option<Evaluated>> {
    let mut results: Vec<Option<Evaluated>> = vec![None; candidates.len()];
    std::thread::scope(|scope| {
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                scope.spawn(move || {
                    let mut vars = prepared.vars.clone();
                    (t..candidates.len())
                        .step_by(threads)
                        .map(|i| (i, evaluate(o, prepared, &mut vars, &candidates[i])))
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        for handle in handles {
            for (i, result) in handle.join().unwrap_or_default() {
                results[i] = result;
            }
        }
    });
    results
}

/// Rehearses one configuration: Terraform's checks, the group, the minute loop, the SLO.
fn evaluate(
    o: &Options,
    p: &Prepared,
    vars: &mut crate::variables::Variables,
    tuned: &Tuned,
) -> Option<Evaluated> {
    vars.values.clone_from(&p.vars.values);
    for (name, value) in tuned {
        vars.values.insert(name.clone(), value.clone());
    }
    if !run::verify_values(o, vars).refusals.is_empty() {
        return None;
    }
    let group = crate::model::group(vars, &p.assumptions, &o.env, &o.infra)
        .ok()?
        .group;
    let instance = p.prices.instance(&group.instance_type).ok()?;
    let scenario = p.scenario(&group, instance, &o.faults)?;
    let outcome = simulate::run(&scenario);
    let totals = report::totals(&outcome.rows);
    let slo = slo(o, &totals);
    let slo_met = report::checks(&totals, &slo).iter().all(|c| c.met);
    Some(Evaluated {
        tuned: tuned.clone(),
        cost_usd: outcome.costs.total_usd,
        slo_met,
        success_percent: totals.success_percent,
        mean_ms: totals.mean_ms,
        max_desired: totals.max_desired,
        instance_hours: outcome.costs.instance_hours,
    })
}

fn slo(o: &Options, totals: &report::Totals) -> Slo {
    Slo {
        rps: o.slo.rps.unwrap_or(totals.peak_offered_rps),
        mean_ms: o.slo.mean_ms,
        success_percent: o.slo.success_percent,
    }
}

/// The coordinates: the grid's variables, then each schedule's min_size (1 to the
/// schedule's max_size, within min_size's bound) when the schedules set one.
fn coordinates(grid: &[(String, Vec<Value>)], today: &Tuned) -> Vec<(Vec<String>, Vec<Value>)> {
    let mut coords: Vec<(Vec<String>, Vec<Value>)> = grid
        .iter()
        .map(|(name, values)| (vec![name.clone()], values.clone()))
        .collect();
    let sizes: Vec<f64> = grid
        .iter()
        .find(|(n, _)| n == "min_size")
        .map(|(_, v)| v.iter().filter_map(Value::as_f64).collect())
        .unwrap_or_default();
    if let Some(Value::Object(schedules)) = today.get("schedules") {
        for (name, s) in schedules {
            let min = s.get("min_size").and_then(Value::as_f64).unwrap_or(-1.0);
            if min < 0.0 {
                continue;
            }
            let max = s.get("max_size").and_then(Value::as_f64).unwrap_or(-1.0);
            // The same JSON number kind as the value read (1 and 1.0 differ as JSON).
            let whole = s.get("min_size").is_some_and(|v| v.is_i64() || v.is_u64());
            let values: Vec<Value> = sizes
                .iter()
                .filter(|n| max < 0.0 || **n <= max)
                .map(|n| if whole { json!(*n as i64) } else { json!(n) })
                .collect();
            coords.push((
                vec!["schedules".to_owned(), name.clone(), "min_size".to_owned()],
                values,
            ));
        }
    }
    coords
}

fn with(tuned: &Tuned, path: &[String], value: &Value) -> Tuned {
    let mut next = tuned.clone();
    match path {
        [name] => {
            next.insert(name.clone(), value.clone());
        }
        [name, rest @ ..] => {
            if let Some(mut slot) = next.get_mut(name) {
                for key in rest {
                    match slot.get_mut(key) {
                        Some(s) => slot = s,
                        None => return next,
                    }
                }
                *slot = value.clone();
            }
        }
        [] => {}
    }
    next
}

/// The state of a search: what has been rehearsed so far.
struct Search<'a> {
    o: &'a Options,
    prepared: &'a Prepared,
    memo: BTreeMap<String, Option<Evaluated>>,
    threads: usize,
    slo: Slo,
}

impl Search<'_> {
    /// Rehearses those of `candidates` not rehearsed yet.
    fn rehearse(&mut self, candidates: &[Tuned]) {
        let fresh: Vec<Tuned> = candidates
            .iter()
            .filter(|t| !self.memo.contains_key(&key(t)))
            .cloned()
            .collect();
        let results = evaluate_all(self.o, self.prepared, &fresh, self.threads);
        for (t, r) in fresh.iter().zip(results) {
            self.memo.insert(key(t), r);
        }
    }

    /// Coordinate descent from `start`; returns the passes made.
    fn descend(&mut self, start: &Tuned, coords: &[(Vec<String>, Vec<Value>)]) -> usize {
        self.rehearse(std::slice::from_ref(start));
        let Some(Some(mut current)) = self.memo.get(&key(start)).cloned() else {
            return 0;
        };
        let slo = self.slo;
        let mut passes = 0;
        for _ in 0..MAX_PASSES {
            passes += 1;
            let mut moved = false;
            for (path, values) in coords {
                let candidates: Vec<Tuned> = values
                    .iter()
                    .map(|v| with(&current.tuned, path, v))
                    .collect();
                self.rehearse(&candidates);
                let best = candidates
                    .iter()
                    .filter_map(|t| self.memo.get(&key(t))?.clone())
                    .min_by(|a, b| report_order(a, b, &current.tuned, &slo));
                if let Some(best) = best
                    && rank(&best, &current, &slo) == Ordering::Less
                {
                    current = best;
                    moved = true;
                }
            }
            if !moved {
                break;
            }
        }
        passes
    }
}

/// Searches for the cheapest configuration that meets the SLO.
pub fn optimize(o: &Options, env: &[(String, String)]) -> Result<Optimization, Error> {
    let prepared = run::prepare(o, env)?;
    let mut grid = default_grid(&prepared);
    for spec in &o.bounds {
        bound(&mut grid, spec)?;
    }
    let mut today: Tuned = TUNED
        .iter()
        .filter_map(|n| prepared.vars.get(n).map(|v| ((*n).to_owned(), v.clone())))
        .collect();
    if let Some(s) = prepared
        .vars
        .get("schedules")
        .filter(|s| s.as_object().is_some_and(|m| !m.is_empty()))
    {
        today.insert("schedules".to_owned(), s.clone());
    }
    let threads = std::thread::available_parallelism().map_or(1, usize::from);
    let mut memo: BTreeMap<String, Option<Evaluated>> = BTreeMap::new();
    let today_eval = evaluate_all(o, &prepared, std::slice::from_ref(&today), 1)
        .pop()
        .flatten()
        .ok_or_else(|| Error::failed("today's configuration could not be rehearsed"))?;
    memo.insert(key(&today), Some(today_eval.clone()));
    // The SLO's throughput goal is the load's peak unless given: the same for every candidate.
    let slo = Slo {
        rps: o
            .slo
            .rps
            .unwrap_or_else(|| prepared.load.rps.iter().copied().fold(0.0, f64::max)),
        mean_ms: o.slo.mean_ms,
        success_percent: o.slo.success_percent,
    };
    let coords = coordinates(&grid, &today);
    let mut search = Search {
        o,
        prepared: &prepared,
        memo,
        threads,
        slo,
    };
    // Two starts: today's configuration, and today's in each other scaling mode the bounds
    // allow (the two modes' variables are disjoint, so one descent rarely crosses over).
    let mut starts = vec![today.clone()];
    for mode in grid
        .iter()
        .find(|(n, _)| n == "scaling_mode")
        .map(|(_, v)| v.clone())
        .unwrap_or_default()
    {
        if today.get("scaling_mode") != Some(&mode) {
            starts.push(with(&today, &["scaling_mode".to_owned()], &mode));
        }
    }
    let mut passes = 0;
    for start in &starts {
        passes += search.descend(start, &coords);
    }
    let Search { memo, .. } = search;
    let refused = memo.values().filter(|e| e.is_none()).count();
    let rehearsed = memo.len() - refused;
    let mut met: Vec<Evaluated> = memo.into_values().flatten().filter(|e| e.slo_met).collect();
    met.sort_by(|a, b| report_order(a, b, &today, &slo));
    // Configurations that rehearse identically differ only in variables without effect on
    // this load: the one closest to today stands for them.
    met.dedup_by(|b, a| {
        a.cost_usd == b.cost_usd
            && a.success_percent == b.success_percent
            && a.mean_ms == b.mean_ms
            && a.max_desired == b.max_desired
    });
    met.truncate(BEST_FEW);
    Ok(Optimization {
        today: today_eval,
        best: met,
        rehearsed,
        refused,
        passes,
        threads,
        slo,
    })
}

/// The changes from `today` to `tuned`, as `name a -> b`.
pub fn changes(today: &Tuned, tuned: &Tuned) -> Vec<String> {
    let mut out = Vec::new();
    for (name, value) in tuned {
        let before = today.get(name);
        if before == Some(value) {
            continue;
        }
        match (name.as_str(), before, value) {
            ("schedules", Some(Value::Object(old)), Value::Object(new)) => {
                for (s, v) in new {
                    let (a, b) = (
                        old.get(s).and_then(|o| o.get("min_size")),
                        v.get("min_size"),
                    );
                    if a != b {
                        out.push(format!(
                            "schedules.{s}.min_size {} -> {}",
                            a.map_or("-".to_owned(), hcl),
                            b.map_or("-".to_owned(), hcl)
                        ));
                    }
                }
            }
            _ => out.push(format!(
                "{name} {} -> {}",
                before.map_or("-".to_owned(), hcl),
                hcl(value)
            )),
        }
    }
    out
}

/// A value as HCL (the syntax of a .tfvars file).
pub fn hcl(value: &Value) -> String {
    match value {
        Value::Null => "null".to_owned(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => terraform::eval::format_number(n.as_f64().unwrap_or(f64::NAN)),
        Value::String(s) => {
            // JSON's escapes are HCL's; HCL also reads ${ and %{ as templates.
            serde_json::to_string(s)
                .unwrap_or_default()
                .replace("${", "$${")
                .replace("%{", "%%{")
        }
        Value::Array(items) => {
            format!("[{}]", items.iter().map(hcl).collect::<Vec<_>>().join(", "))
        }
        Value::Object(map) => format!(
            "{{ {} }}",
            map.iter()
                .map(|(k, v)| format!("{} = {}", hcl(&json!(k)), hcl(v)))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

/// recommended.tfvars: every tuned variable of `best`, so `./apply.sh ENV
/// -var-file=recommended.tfvars` deploys it whatever else the environment sets.
pub fn tfvars(o: &Options, opt: &Optimization, best: &Evaluated) -> String {
    let mut out = format!(
        "# The cheapest configuration found by scripts/rehearse.sh {} --optimize that meets the SLO\n# on the rehearsed load: predicted ${:.4} (today's configuration: ${:.4}{}).\n# Deploy it with: ./apply.sh {} -var-file=recommended.tfvars\n\n",
        o.env,
        best.cost_usd,
        opt.today.cost_usd,
        if opt.today.slo_met {
            ", meets the SLO"
        } else {
            ", misses the SLO"
        },
        o.env
    );
    for (name, value) in &best.tuned {
        match value {
            Value::Object(map) if name == "schedules" => {
                let _ = writeln!(out, "{name} = {{");
                for (k, v) in map {
                    let _ = writeln!(out, "  {} = {}", hcl(&json!(k)), hcl(v));
                }
                let _ = writeln!(out, "}}");
            }
            _ => {
                let _ = writeln!(out, "{name} = {}", hcl(value));
            }
        }
    }
    out
}

/// The SLO margin of a configuration: success points above the goal, latency under it.
pub fn margin(e: &Evaluated, slo: &Slo) -> String {
    format!(
        "{:.3} % 2xx ({:+.3} points), mean {} (goal < {} ms)",
        e.success_percent,
        e.success_percent - slo.success_percent,
        e.mean_ms.map_or("n/a".to_owned(), |m| format!("{m:.1} ms")),
        slo.mean_ms
    )
}

/// The printed report of the search.
pub fn render(o: &Options, opt: &Optimization) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "optimize        {}: {} configurations rehearsed, {} refused by Terraform's checks, {} passes on {} threads",
        o.env, opt.rehearsed, opt.refused, opt.passes, opt.threads
    );
    let _ = writeln!(
        out,
        "today           ${:.4}, SLO {}: {}, max desired {}",
        opt.today.cost_usd,
        if opt.today.slo_met { "met" } else { "MISSED" },
        margin(&opt.today, &opt.slo),
        opt.today.max_desired
    );
    if opt.best.is_empty() {
        let _ = writeln!(
            out,
            "no configuration within the bounds meets the SLO on this load: widen them (--bound max_size=1..30, --bound instance_type=...)"
        );
    }
    for (i, e) in opt.best.iter().enumerate() {
        let diff = changes(&opt.today.tuned, &e.tuned);
        let _ = writeln!(
            out,
            "#{}              ${:.4} ({:+.1} % vs today), {}, max desired {}\n                changes: {}",
            i + 1,
            e.cost_usd,
            (e.cost_usd / opt.today.cost_usd - 1.0) * 100.0,
            margin(e, &opt.slo),
            e.max_desired,
            if diff.is_empty() {
                "none (today's configuration)".to_owned()
            } else {
                diff.join(", ")
            }
        );
    }
    out
}

/// `--optimize` from start to end: the search, its report, recommended.tfvars (in `--out`,
/// else the working directory), then the best configuration rehearsed as usual from that
/// file (its timeline, summary and verdict), or today's when none meets the SLO.
pub fn recommend(o: &Options, env: &[(String, String)]) -> Result<(String, run::Report), Error> {
    let opt = optimize(o, env)?;
    let mut text = render(o, &opt);
    let Some(best) = opt.best.first() else {
        let report = run::rehearse(o, env)?;
        return Ok((text, report));
    };
    let dir = o.out.clone().unwrap_or_else(|| ".".into());
    std::fs::create_dir_all(&dir)
        .map_err(|e| Error::failed(format!("cannot create {}: {e}", dir.display())))?;
    let path = dir.join("recommended.tfvars");
    std::fs::write(&path, tfvars(o, &opt, best))
        .map_err(|e| Error::failed(format!("cannot write {}: {e}", path.display())))?;
    let _ = writeln!(
        text,
        "wrote {}: ./apply.sh {} -var-file={0}\nthe best configuration, rehearsed from that file:",
        path.display(),
        o.env
    );
    let mut with_file = o.clone();
    with_file
        .assignments
        .push(crate::variables::Assignment::File(path));
    // The search reads --instance-rps as the rate of today's type and scales it by vCPUs
    // for the others (a calibration's cost is per vCPU): rehearse the best one alike.
    if let (Some(rps), Some(Value::String(best_type)), Some(Value::String(today_type))) = (
        o.instance_rps,
        best.tuned.get("instance_type"),
        opt.today.tuned.get("instance_type"),
    ) {
        let prices = crate::prices::Prices::load(o.prices.as_deref())?;
        let (b, t) = (prices.instance(best_type)?, prices.instance(today_type)?);
        if b.vcpus != t.vcpus {
            let scaled = rps * f64::from(b.vcpus) / f64::from(t.vcpus);
            with_file.instance_rps = Some(scaled);
            let _ = writeln!(
                text,
                "--instance-rps {rps} is {today_type}'s ({} vCPUs): {best_type} ({} vCPUs) is rehearsed at {scaled}",
                t.vcpus, b.vcpus
            );
        }
    }
    let report = run::rehearse(&with_file, env)?;
    Ok((text, report))
}
