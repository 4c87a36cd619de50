//! `--optimize`: the cheapest configuration that meets the SLO, on the README's example load
//! (docs/REHEARSAL.md, "The cheapest configuration that holds").

mod common;

use common::{Files, rehearse, repo_root};
use rehearsal::cli;
use rehearsal::optimize::{self, Optimization};
use rehearsal::prices::Prices;
use rehearsal::summary::Summary;
use rehearsal::terraform::{self, Context};
use rehearsal::variables::{self, Assignment};

/// The README's example: a ramp to 600 rps that today's group (min 2, max 4 t3.micro)
/// does not hold.
const README: &[&str] = &[
    "dev",
    "--profile",
    "computation",
    "--ramp",
    "100,200,400,600,300,100",
    "--duration",
    "300",
    "--start",
    "2026-12-07T10:00",
    "--slo-rps",
    "600",
    "--instance-rps",
    "173",
];

fn options(args: &[&str], out: &std::path::Path) -> cli::Options {
    let mut all: Vec<String> = args.iter().map(|s| (*s).to_owned()).collect();
    all.extend([
        "--optimize".to_owned(),
        "--infra".to_owned(),
        repo_root().join("infra").display().to_string(),
        "--out".to_owned(),
        out.display().to_string(),
    ]);
    cli::parse(&all).expect("arguments")
}

/// Runs `--optimize`; returns the search, its printed report and recommended.tfvars.
fn optimize(args: &[&str]) -> (Optimization, String, String, Files) {
    let files = Files::new();
    let o = options(args, files.dir.path());
    let opt = optimize::optimize(&o, &[]).expect("the search");
    let (text, _) = optimize::recommend(&o, &[]).expect("the recommendation");
    let tfvars = std::fs::read_to_string(files.dir.path().join("recommended.tfvars"))
        .expect("recommended.tfvars written");
    (opt, text, tfvars, files)
}

/// --instance-rps is today's type's rate (`today_rps`, t3.micro's): another type's scales
/// with its vCPUs.
fn instance_rps_of(instance_type: &str, today_rps: f64) -> String {
    let prices = Prices::load(None).expect("the shipped price table");
    let today = prices.instance("t3.micro").expect("t3.micro").vcpus;
    let other = prices.instance(instance_type).expect("priced").vcpus;
    (today_rps * f64::from(other) / f64::from(today)).to_string()
}

#[test]
fn the_best_configuration_rehearses_cheaper_than_today_and_meets_the_slo() {
    let today = rehearse(README);
    let today = today.summary.expect("a summary");
    let (opt, _, _, files) = optimize(README);
    let best = opt
        .best
        .first()
        .expect("a configuration that meets the SLO");
    assert!(best.slo_met);
    // Rehearsed again, as a user would, from the file alone.
    let path = files.dir.path().join("recommended.tfvars");
    let instance_type = best.tuned["instance_type"].as_str().expect("a type");
    let rps = instance_rps_of(instance_type, 173.0);
    let mut args: Vec<&str> = README.iter().copied().filter(|a| *a != "173").collect();
    args.retain(|a| *a != "--instance-rps");
    let var_file = format!("-var-file={}", path.display());
    args.extend(["--instance-rps", &rps, &var_file]);
    let again = rehearse(&args).summary.expect("a summary");
    assert!(
        again.slo_met,
        "the recommended configuration misses the SLO"
    );
    assert_eq!(again.instance_type, instance_type);
    assert!(
        again.cost_usd < today.cost_usd,
        "recommended ${} is not cheaper than today's ${}",
        again.cost_usd,
        today.cost_usd
    );
    assert!(
        (again.cost_usd - best.cost_usd).abs() < 1e-9,
        "the search predicted ${}, the rehearsal from the file ${}",
        best.cost_usd,
        again.cost_usd
    );
    assert!(!today.slo_met, "the README's example misses the SLO today");
    assert_eq!(opt.today.slo_met, today.slo_met);
    assert!((opt.today.cost_usd - today.cost_usd).abs() < 1e-9);
}

#[test]
fn the_search_is_deterministic() {
    let (a, text_a, tfvars_a, dir_a) = optimize(README);
    let (b, text_b, tfvars_b, dir_b) = optimize(README);
    assert_eq!(a.best, b.best);
    let shown =
        |text: &str, files: &Files| text.replace(&files.dir.path().display().to_string(), "DIR");
    assert_eq!(shown(&text_a, &dir_a), shown(&text_b, &dir_b));
    assert_eq!(tfvars_a, tfvars_b);
    assert!(a.best.len() > 1, "the best few, not one: {text_a}");
}

/// `--optimize` on environment perf1 with the weekly example's schedules, from Monday
/// 06:00, at a steady `rate` for `duration` seconds, 150 rps an instance.
fn optimize_weekly(rate: &str, duration: &str) -> (Optimization, String, String, Files) {
    let weekly = repo_root().join("infra/examples/weekly-business.tfvars");
    let var_file = format!("-var-file={}", weekly.display());
    optimize(&[
        "perf1",
        &var_file,
        "--rate",
        rate,
        "--duration",
        duration,
        "--start",
        "2026-12-07T06:00",
        "--instance-rps",
        "150",
    ])
}

/// The names infra/variables.tf declares.
fn declared() -> Vec<String> {
    let text =
        std::fs::read_to_string(repo_root().join("infra/variables.tf")).expect("variables.tf");
    text.lines()
        .filter_map(|l| l.strip_prefix("variable \""))
        .filter_map(|l| l.split('"').next())
        .map(str::to_owned)
        .collect()
}

#[test]
fn recommended_tfvars_sets_only_declared_variables_that_terraform_accepts() {
    let (opt, _, tfvars, files) = optimize_weekly("200", "3600");
    let best = opt
        .best
        .first()
        .expect("a configuration that meets the SLO");
    let declared = declared();
    let names: Vec<&str> = tfvars
        .lines()
        .filter(|l| !l.starts_with('#') && !l.starts_with(' ') && l.contains(" = "))
        .filter_map(|l| l.split(" = ").next())
        .collect();
    assert!(
        names.contains(&"schedules"),
        "schedules are tuned: {tfvars}"
    );
    for name in &names {
        assert!(
            declared.iter().any(|d| d == name),
            "{name} is not declared in infra/variables.tf"
        );
    }
    // Read alone, as `./apply.sh perf1 -var-file=recommended.tfvars` would.
    let infra = repo_root().join("infra");
    let path = files.dir.path().join("recommended.tfvars");
    let vars = variables::load(&infra, &[Assignment::File(path)], &[]).expect("Terraform reads it");
    assert!(vars.warnings.is_empty(), "warnings: {:?}", vars.warnings);
    let verdict = terraform::verify(
        &vars.checks,
        &Context {
            values: &vars.values,
            workspace: "perf1",
            path: &infra.display().to_string(),
        },
    );
    assert!(
        verdict.refusals.is_empty(),
        "refused: {:?}",
        verdict.refusals
    );
    for (name, value) in &best.tuned {
        assert_eq!(vars.get(name), Some(value), "{name} read back differently");
    }
}

#[test]
fn nothing_terraform_refuses_is_recommended_and_bounds_hold() {
    // The price table lists Graviton types (t4g), which infra/ refuses (the AMI is x86_64).
    let (opt, text, _, _) = optimize(README);
    assert!(
        opt.refused > 0,
        "Terraform's checks refused nothing: {text}"
    );
    for e in &opt.best {
        let t = e.tuned["instance_type"].as_str().expect("a type");
        assert!(!t.starts_with("t4g."), "a refused type recommended: {t}");
    }
    let mut bounded: Vec<&str> = README.to_vec();
    bounded.extend([
        "--bound",
        "instance_type=t3.micro",
        "--bound",
        "max_size=1..6",
        "--bound",
        "scaling_mode=step",
    ]);
    let (opt, text, _, _) = optimize(&bounded);
    assert!(!opt.best.is_empty(), "{text}");
    for e in &opt.best {
        assert_eq!(e.tuned["instance_type"], "t3.micro");
        assert_eq!(e.tuned["scaling_mode"], "step");
        let max = e.tuned["max_size"].as_f64().expect("a size");
        assert!((1.0..=6.0).contains(&max), "max_size {max} outside 1..6");
    }
}

#[test]
fn the_schedules_minimums_are_tuned() {
    // A quiet Monday of the weekly schedule: its peak minimum of 4 instances is not needed.
    let (opt, text, _, _) = optimize_weekly("30", "43200");
    let best = opt
        .best
        .first()
        .expect("a configuration that meets the SLO");
    let peak = best.tuned["schedules"]["peak-start"]["min_size"]
        .as_f64()
        .expect("a minimum");
    assert!(peak < 4.0, "the peak's minimum stayed at {peak}:\n{text}");
    assert!(best.cost_usd < opt.today.cost_usd, "{text}");
}

/// A steady 240 rps for 40 minutes at 150 rps an instance, judged at 98 % success.
const STEADY: &[&str] = &[
    "dev",
    "--rate",
    "240",
    "--duration",
    "2400",
    "--start",
    "2026-12-07T10:00",
    "--slo-success",
    "98",
];

/// Rehearses the steady load with the zone failure, from a recommended.tfvars alone.
fn rehearse_zone_failure(files: &Files, instance_type: &str) -> Summary {
    let rps = instance_rps_of(instance_type, 150.0);
    let var_file = format!(
        "-var-file={}",
        files.dir.path().join("recommended.tfvars").display()
    );
    let mut args: Vec<&str> = STEADY.to_vec();
    args.extend(["--instance-rps", &rps, "--fail-az", "a@10-25", &var_file]);
    rehearse(&args).summary.expect("a summary")
}

#[test]
fn a_search_asked_to_hold_through_a_zone_failure_buys_the_headroom_it_needs() {
    let plain: Vec<&str> = STEADY
        .iter()
        .copied()
        .chain(["--instance-rps", "150"])
        .collect();
    let (calm, calm_text, _, calm_files) = optimize(&plain);
    let calm_best = calm
        .best
        .first()
        .expect("a configuration for the calm load");
    let calm_type = calm_best.tuned["instance_type"].as_str().expect("a type");
    let calm_under_failure = rehearse_zone_failure(&calm_files, calm_type);
    assert!(
        !calm_under_failure.slo_met,
        "the calm load's cheapest configuration already holds through the zone failure, \
         so this test cannot tell whether the search honours --fail-az:\n{calm_text}"
    );

    let mut failing = plain.clone();
    failing.extend(["--fail-az", "a@10-25"]);
    let (held, held_text, _, held_files) = optimize(&failing);
    let held_best = held
        .best
        .first()
        .unwrap_or_else(|| panic!("no configuration holds through the failure:\n{held_text}"));
    assert!(held_best.slo_met);
    let held_type = held_best.tuned["instance_type"].as_str().expect("a type");
    let held_under_failure = rehearse_zone_failure(&held_files, held_type);
    assert!(
        held_under_failure.slo_met,
        "the configuration searched with the failure misses the SLO through it:\n{held_text}"
    );
    assert!(
        held_best.cost_usd > calm_best.cost_usd,
        "holding through a zone failure costs nothing more (${} vs ${})",
        held_best.cost_usd,
        calm_best.cost_usd
    );
}
