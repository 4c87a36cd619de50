//! `rehearse`: see scripts/rehearse.sh, which builds it, finds the binary to calibrate and
//! draws the chart. Prints the verdict; exits 0 (SLO met), 1 (missed), 2 (bad usage) or 3.

use rehearsal::error::Error;
use rehearsal::{cli, loadtest_command, optimize, run};

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let env: Vec<(String, String)> = std::env::vars().collect();
    let result = cli::parse(&args).and_then(|options| {
        if options.optimize && !options.check_only {
            optimize::recommend(&options, &env).map(|(text, report)| (options, text, report))
        } else {
            run::rehearse(&options, &env).map(|report| (options, String::new(), report))
        }
    });
    match result {
        Ok((options, search, report)) => {
            for note in &report.notes {
                eprintln!("NOTE: {note}");
            }
            print!("{search}");
            print!("{}", report.verdict);
            if let Some(summary) = report.summary.as_ref().filter(|_| options.print_loadtest) {
                println!(
                    "To run this load for real against {} (then rehearse again with --compare and its samples.csv):",
                    options.env
                );
                println!(
                    "  {}",
                    loadtest_command::command_line(&options, &summary.slo.goals)
                );
            }
            std::process::exit(report.exit_code);
        }
        Err(err) => {
            eprintln!("ERROR: {err}");
            if matches!(err, Error::Usage(_)) {
                eprintln!("NOTE: scripts/rehearse.sh --help shows the usage");
            }
            std::process::exit(err.exit_code());
        }
    }
}
