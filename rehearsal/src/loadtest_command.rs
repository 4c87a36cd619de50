//! `--print-loadtest`: the `scripts/loadtest.sh` command that offers the rehearsed load to the
//! deployed environment for real — the same profile, the same load (loadtest.sh's `--rate`,
//! `--ramp` and `--duration` mean what they mean here, and its `--load-csv` reads the same
//! CSVs), the goals the rehearsal judged (its throughput goal written out, as loadtest.sh's
//! default is not the load's peak; a peak rounded down to a whole rate, as loadtest.sh sends
//! whole requests) — so that a prediction is checked with one more command, and the run's
//! samples.csv laid over it with `--compare`.

use std::path::Path;

use crate::cli::Options;
use crate::report::Slo;

/// A number the command line shows as loadtest.sh reads it (whole rates and seconds).
fn whole(value: f64) -> String {
    format!("{value}")
}

/// The CSV's path as given, made absolute so the command works from any folder.
fn absolute(path: &Path) -> String {
    std::path::absolute(path)
        .unwrap_or_else(|_| path.to_path_buf())
        .display()
        .to_string()
}

/// loadtest.sh's arguments (without the script itself), judged by `goals`.
pub fn arguments(o: &Options, goals: &Slo) -> Vec<String> {
    let mut args = vec![
        "--env".to_owned(),
        o.env.clone(),
        "--profile".to_owned(),
        o.profile.clone(),
    ];
    match (&o.load_csv, o.rates.as_slice()) {
        (Some(csv), _) => args.extend(["--load-csv".to_owned(), absolute(csv)]),
        (None, [rate]) => args.extend(["--rate".to_owned(), whole(*rate)]),
        (None, steps) => {
            let steps: Vec<String> = steps.iter().map(|r| whole(*r)).collect();
            args.extend(["--ramp".to_owned(), steps.join(",")]);
        }
    }
    if o.load_csv.is_none() {
        args.extend(["--duration".to_owned(), whole(o.duration_secs)]);
    }
    for (flag, value) in &o.loadtest_options {
        args.extend([flag.clone(), value.clone()]);
    }
    args.extend([
        "--slo-rps".to_owned(),
        whole(o.slo.rps.unwrap_or(goals.rps.floor())),
        "--slo-mean-ms".to_owned(),
        whole(goals.mean_ms),
        "--slo-success".to_owned(),
        whole(goals.success_percent),
    ]);
    args
}

/// A word as a POSIX shell reads it back: bare when it is plainly safe, else single-quoted.
fn quote(word: &str) -> String {
    let plain = !word.is_empty()
        && word
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./:,=@%+".contains(c));
    if plain {
        word.to_owned()
    } else {
        format!("'{}'", word.replace('\'', r"'\''"))
    }
}

/// The command line to print.
pub fn command_line(o: &Options, goals: &Slo) -> String {
    std::iter::once("scripts/loadtest.sh".to_owned())
        .chain(arguments(o, goals).iter().map(|a| quote(a)))
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::parse;

    /// The command for these arguments, judged as the rehearsal would (a load peaking at
    /// 50.5 rps when no throughput goal is given).
    fn command(text: &str) -> String {
        let args: Vec<String> = text.split_whitespace().map(str::to_owned).collect();
        let o = parse(&args).expect("valid arguments");
        let goals = Slo {
            rps: o.slo.rps.unwrap_or(50.5),
            mean_ms: o.slo.mean_ms,
            success_percent: o.slo.success_percent,
        };
        command_line(&o, &goals)
    }

    #[test]
    fn rates_ramps_and_goals_are_loadtests_own_arguments() {
        assert_eq!(
            command("perf1 --profile read --ramp 200,400 --duration 120 --slo-rps 600"),
            "scripts/loadtest.sh --env perf1 --profile read --ramp 200,400 --duration 120 \
             --slo-rps 600 --slo-mean-ms 400 --slo-success 99.99"
        );
        assert_eq!(
            command("--rate 50 --concurrency 8 --window 5 --slo-mean-ms 12.5"),
            "scripts/loadtest.sh --env dev --profile gtg --rate 50 --duration 30 \
             --concurrency 8 --window 5 --slo-rps 50 --slo-mean-ms 12.5 --slo-success 99.99"
        );
    }

    #[test]
    fn a_csv_load_is_given_by_its_absolute_path_quoted_for_the_shell() {
        let line = command("prod --load-csv monday.csv --profile mixed");
        let expected = std::env::current_dir().expect("cwd").join("monday.csv");
        assert!(
            line.starts_with(&format!(
                "scripts/loadtest.sh --env prod --profile mixed --load-csv {} --slo-rps",
                expected.display()
            )),
            "{line}"
        );
        assert!(
            !line.contains("--duration"),
            "the CSV gives the duration: {line}"
        );
        assert_eq!(quote("a b"), "'a b'");
        assert_eq!(quote("it's"), r"'it'\''s'");
        assert_eq!(quote(""), "''");
    }
}
