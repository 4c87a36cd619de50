//! The command line: loadtest.sh's load arguments with their meaning, apply.sh's ENV,
//! -var and -var-file, and the rehearsal's own options. Every mistake is a usage error.

use std::path::PathBuf;

use crate::error::Error;
use crate::faults::Fault;
use crate::profiles::Profiles;
use crate::rules::retry::Backoff;
use crate::variables::Assignment;

/// The SLO goals asked for: loadtest.sh's defaults (scripts/lib/load-profiles.env), except
/// the throughput, which defaults to the load's own peak.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Goals {
    pub rps: Option<f64>,
    pub mean_ms: f64,
    pub success_percent: f64,
}

impl Default for Goals {
    fn default() -> Self {
        let p = Profiles::shipped();
        Goals {
            rps: None,
            mean_ms: p.slo_mean_ms,
            success_percent: p.slo_success_percent,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Options {
    pub env: String,
    pub assignments: Vec<Assignment>,
    pub profile: String,
    /// `--rate` (one) or `--ramp` (several).
    pub rates: Vec<f64>,
    pub duration_secs: f64,
    pub load_csv: Option<PathBuf>,
    pub start: Option<String>,
    pub instance_rps: Option<f64>,
    pub slo: Goals,
    pub compare: Option<PathBuf>,
    /// A real run's samples.csv to fit the per-instance throughput from.
    pub calibrate_from: Option<PathBuf>,
    pub out: Option<PathBuf>,
    pub infra: PathBuf,
    pub prices: Option<PathBuf>,
    pub assumptions: Vec<String>,
    /// Failures injected during the load (`--fail`, `--fail-az`), in command-line order.
    pub faults: Vec<Fault>,
    /// Retries a client makes after a failed request (`--retries`; 0: none).
    pub retries: u32,
    pub backoff: Backoff,
    pub retry_base_ms: f64,
    pub service_binary: Option<PathBuf>,
    pub cache_dir: Option<PathBuf>,
    pub calibration_secs: f64,
    pub recalibrate: bool,
    /// Check the arguments, variables and load, then stop (before any calibration).
    pub check_only: bool,
    /// Print the loadtest.sh command that runs this load for real.
    pub print_loadtest: bool,
    /// loadtest.sh's own options (`--concurrency`, `--window`), for that command.
    pub loadtest_options: Vec<(String, String)>,
    /// Notes for the user about arguments accepted but without effect.
    pub notes: Vec<String>,
    /// Search for the cheapest configuration that meets the SLO (`--optimize`).
    pub optimize: bool,
    /// `--bound NAME=LO..HI` (or `NAME=A,B`): the search's bounds, in order.
    pub bounds: Vec<String>,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            env: "dev".to_owned(),
            assignments: Vec::new(),
            profile: "gtg".to_owned(),
            rates: Vec::new(),
            duration_secs: 30.0,
            load_csv: None,
            start: None,
            instance_rps: None,
            slo: Goals::default(),
            compare: None,
            calibrate_from: None,
            out: None,
            infra: PathBuf::from("infra"),
            prices: None,
            assumptions: Vec::new(),
            faults: Vec::new(),
            retries: 0,
            backoff: Backoff::ExponentialJitter,
            retry_base_ms: 100.0,
            service_binary: None,
            cache_dir: None,
            calibration_secs: 2.0,
            recalibrate: false,
            check_only: false,
            print_loadtest: false,
            loadtest_options: Vec::new(),
            notes: Vec::new(),
            optimize: false,
            bounds: Vec::new(),
        }
    }
}

fn positive_whole(flag: &str, text: &str) -> Result<f64, Error> {
    text.parse::<u64>()
        .ok()
        .filter(|v| *v > 0)
        .map(|v| v as f64)
        .ok_or_else(|| {
            Error::usage(format!(
                "{flag} must be a positive whole number, not '{text}'"
            ))
        })
}

fn number(flag: &str, text: &str, ok: impl Fn(f64) -> bool, rule: &str) -> Result<f64, Error> {
    text.parse::<f64>()
        .ok()
        .filter(|v| v.is_finite() && ok(*v))
        .ok_or_else(|| Error::usage(format!("{flag} must be {rule}, not '{text}'")))
}

/// Parses the arguments (without the program name).
pub fn parse(args: &[String]) -> Result<Options, Error> {
    let mut o = Options::default();
    let mut env_given = false;
    let mut retry_shape: Option<&str> = None;
    let (mut rate, mut ramp) = (None, None);
    let mut i = 0;
    while i < args.len() {
        let arg = args[i].as_str();
        // `--flag value` or `--flag=value` (and Terraform's single-dash -var forms).
        let (flag, inline) = match arg.split_once('=') {
            Some((f, v)) if f.starts_with('-') => (f, Some(v.to_owned())),
            _ => (arg, None),
        };
        let takes_value = !matches!(
            flag,
            "--recalibrate" | "--check" | "--print-loadtest" | "--optimize"
        ) && flag.starts_with('-');
        let value = if takes_value {
            match inline {
                Some(v) => v,
                None => {
                    i += 1;
                    args.get(i)
                        .cloned()
                        .ok_or_else(|| Error::usage(format!("{flag} needs a value")))?
                }
            }
        } else {
            String::new()
        };
        match flag {
            "-var-file" | "--var-file" => o.assignments.push(Assignment::File(value.into())),
            "-var" | "--var" => o.assignments.push(Assignment::Var(value)),
            "--profile" => {
                let profiles = Profiles::shipped();
                if !profiles.knows(&value) {
                    return Err(Error::usage(format!(
                        "unknown profile '{value}' (one of {})",
                        profiles.names.join(", ")
                    )));
                }
                o.profile = value;
            }
            "--rate" => rate = Some(positive_whole("--rate", &value)?),
            "--ramp" => {
                let steps = value
                    .split(',')
                    .map(|s| positive_whole("--ramp", s.trim()))
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(|_| {
                        Error::usage(format!(
                            "--ramp takes positive whole rates like 100,200,400, not '{value}'"
                        ))
                    })?;
                ramp = Some(steps);
            }
            "--duration" => o.duration_secs = positive_whole("--duration", &value)?,
            "--load-csv" => o.load_csv = Some(value.into()),
            "--start" => o.start = Some(value),
            "--instance-rps" => {
                o.instance_rps = Some(number(flag, &value, |v| v > 0.0, "a positive number")?)
            }
            "--slo-rps" => o.slo.rps = Some(number(flag, &value, |v| v >= 0.0, "a number >= 0")?),
            "--slo-mean-ms" => {
                o.slo.mean_ms = number(flag, &value, |v| v > 0.0, "a positive number")?
            }
            "--slo-success" => {
                o.slo.success_percent = number(
                    flag,
                    &value,
                    |v| (0.0..=100.0).contains(&v),
                    "a percentage from 0 to 100",
                )?;
            }
            "--compare" => o.compare = Some(value.into()),
            "--calibrate-from" => o.calibrate_from = Some(value.into()),
            "--out" => o.out = Some(value.into()),
            "--infra" => o.infra = value.into(),
            "--prices" => o.prices = Some(value.into()),
            "--assume" => o.assumptions.push(value),
            "--fail" => o.faults.push(Fault::parse_instances(&value)?),
            "--fail-az" => o.faults.push(Fault::parse_zone(&value)?),
            "--retries" => {
                o.retries = value
                    .parse::<u32>()
                    .ok()
                    .filter(|n| *n <= 10)
                    .ok_or_else(|| {
                        Error::usage(format!(
                            "--retries must be a whole number from 0 to 10, not '{value}'"
                        ))
                    })?;
            }
            "--backoff" => {
                o.backoff = value.parse().map_err(Error::usage)?;
                retry_shape = Some("--backoff");
            }
            "--retry-base-ms" => {
                o.retry_base_ms = number(flag, &value, |v| v >= 0.0, "milliseconds, at least 0")?;
                retry_shape = Some("--retry-base-ms");
            }
            "--service-binary" => o.service_binary = Some(value.into()),
            "--cache-dir" => o.cache_dir = Some(value.into()),
            "--calibration-secs" => {
                o.calibration_secs = number(
                    flag,
                    &value,
                    |v| (0.5..=60.0).contains(&v),
                    "seconds from 0.5 to 60",
                )?;
            }
            "--recalibrate" => o.recalibrate = true,
            "--check" => o.check_only = true,
            "--print-loadtest" => o.print_loadtest = true,
            "--optimize" => o.optimize = true,
            "--bound" => {
                let name = value.split_once('=').map(|(n, _)| n.trim());
                if !name.is_some_and(|n| crate::optimize::TUNED.contains(&n)) {
                    return Err(Error::usage(format!(
                        "--bound takes NAME=LO..HI or NAME=A,B with NAME one of {}, not '{value}'",
                        crate::optimize::TUNED.join(", ")
                    )));
                }
                o.bounds.push(value);
            }
            "--concurrency" | "--window" => {
                positive_whole(flag, &value)?;
                o.loadtest_options.push((flag.to_owned(), value.clone()));
                o.notes.push(format!("{flag} is loadtest.sh's and does not change a rehearsal (the model's clients are the load balancer's, not oha's connections)"));
            }
            _ if flag.starts_with('-') => {
                return Err(Error::usage(format!("unknown option {flag}")));
            }
            _ => {
                if env_given {
                    return Err(Error::usage(format!(
                        "one environment only: '{}' and '{arg}'",
                        o.env
                    )));
                }
                o.env = arg.to_owned();
                env_given = true;
            }
        }
        i += 1;
    }
    // A backoff without retries would be accepted and change nothing: a user who gave one
    // meant the clients to retry.
    if let (Some(flag), 0) = (retry_shape, o.retries) {
        return Err(Error::usage(format!(
            "{flag} shapes the clients' retries: give --retries N (1 to 10) with it"
        )));
    }
    match (rate, ramp, &o.load_csv) {
        (_, Some(steps), None) => o.rates = steps,
        (Some(r), None, None) => o.rates = vec![r],
        (None, None, Some(_)) => {}
        (None, None, None) => {
            return Err(Error::usage(
                "give the load: --rate RPS or --ramp R1,R2,... with --duration SECS, or --load-csv FILE",
            ));
        }
        _ => return Err(Error::usage("give --load-csv or --rate/--ramp, not both")),
    }
    if o.instance_rps.is_some() && o.calibrate_from.is_some() {
        return Err(Error::usage(
            "give --instance-rps or --calibrate-from, not both: the fit is an instance rate",
        ));
    }
    if !o.bounds.is_empty() && !o.optimize {
        return Err(Error::usage(
            "--bound limits the search of --optimize: give --optimize",
        ));
    }
    Ok(o)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(text: &str) -> Vec<String> {
        text.split_whitespace().map(str::to_owned).collect()
    }

    #[test]
    fn loadtest_and_apply_arguments_are_understood() {
        let o = parse(&args("perf1 -var-file=a.tfvars -var min_size=3 --profile read --ramp 200,400 --duration 60 --slo-rps 600 --out x")).expect("valid");
        assert_eq!(o.env, "perf1");
        assert_eq!(
            o.assignments,
            vec![
                Assignment::File("a.tfvars".into()),
                Assignment::Var("min_size=3".into())
            ]
        );
        assert_eq!(
            (o.profile.as_str(), o.rates.clone(), o.duration_secs),
            ("read", vec![200.0, 400.0], 60.0)
        );
        assert_eq!(o.slo.rps, Some(600.0));
        assert_eq!(
            o.slo.mean_ms,
            Profiles::shipped().slo_mean_ms,
            "loadtest.sh's default"
        );
        assert_eq!(
            parse(&args("--rate 5")).expect("valid").slo.rps,
            None,
            "the load's peak"
        );
        let o =
            parse(&args("--rate 100 --ramp 1,2")).expect("ramp overrides rate, as in loadtest.sh");
        assert_eq!(o.rates, vec![1.0, 2.0]);
    }

    #[test]
    fn failures_and_retries_are_options() {
        let o = parse(&args(
            "--rate 5 --fail instance@3x2 --fail-az b@4-9 --retries 3 --backoff fixed --retry-base-ms 250",
        ))
        .expect("valid");
        assert_eq!(
            o.faults,
            vec![
                Fault::Instances {
                    minute: 3,
                    count: 2
                },
                Fault::Zone {
                    zone: 1,
                    from: 4,
                    to: Some(9)
                }
            ]
        );
        assert_eq!(
            (o.retries, o.backoff, o.retry_base_ms),
            (3, Backoff::Fixed, 250.0)
        );
    }

    #[test]
    fn bad_arguments_are_usage_errors() {
        for (line, reason) in [
            ("--rate -5", "positive whole number"),
            ("--rate 0", "positive whole number"),
            ("--profile bogus --rate 5", "unknown profile 'bogus'"),
            ("--ramp 1,x", "--ramp takes"),
            ("--duration", "needs a value"),
            ("--rate 5 --load-csv f.csv", "not both"),
            ("", "give the load"),
            ("--rate 5 --nope 1", "unknown option --nope"),
            ("a b --rate 5", "one environment only"),
            ("--rate 5 --slo-success 101", "percentage"),
            ("--rate 5 --fail node@3", "--fail takes instance@MINUTE"),
            ("--rate 5 --fail-az a@9-3", "TO > FROM"),
            ("--rate 5 --retries 11", "from 0 to 10"),
            ("--rate 5 --bound max_size=1..4", "give --optimize"),
            ("--rate 5 --optimize --bound ami_id=x", "--bound takes NAME"),
            (
                "--rate 5 --backoff fixed",
                "--backoff shapes the clients' retries",
            ),
            ("--rate 5 --retry-base-ms 50", "give --retries N"),
            (
                "--rate 5 --backoff linear",
                "fixed, exponential or exponential-jitter",
            ),
            (
                "--rate 5 --instance-rps 9 --calibrate-from s.csv",
                "not both",
            ),
        ] {
            let err = parse(&args(line)).expect_err(line);
            assert!(
                matches!(err, Error::Usage(_)) && err.to_string().contains(reason),
                "{line}: {err}"
            );
        }
    }
}
