//! A 24-hour weekly-business day at one-minute resolution: the whole rehearsal (reading
//! infra/ and the example's variables, the minute loop, the summary), without writing files.
//!
//!     cargo bench -p rehearsal --bench weekly_day

use std::path::Path;

use criterion::{Criterion, criterion_group, criterion_main};
use rehearsal::cli;
use rehearsal::run;

/// A business day's load: quiet at night, a morning and an afternoon peak.
fn day_csv() -> String {
    let mut csv = String::from("minute,rps\n");
    for minute in 0..1440 {
        let hour = minute as f64 / 60.0;
        let rps = match hour {
            h if (7.0..9.0).contains(&h) || (13.0..15.0).contains(&h) => 500.0,
            h if (6.0..21.0).contains(&h) => 200.0 + 50.0 * (h * 3.0).sin(),
            _ => 30.0,
        };
        csv.push_str(&format!("{minute},{rps:.1}\n"));
    }
    csv
}

fn bench(c: &mut Criterion) {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let dir = tempfile::tempdir().expect("temp dir");
    let load = dir.path().join("day.csv");
    std::fs::write(&load, day_csv()).expect("write the load");
    let args: Vec<String> = [
        "bench".to_owned(),
        format!(
            "-var-file={}",
            repo.join("infra/examples/weekly-business.tfvars").display()
        ),
        "--load-csv".to_owned(),
        load.display().to_string(),
        "--instance-rps".to_owned(),
        "150".to_owned(),
        "--start".to_owned(),
        "2026-12-07T00:00".to_owned(),
        "--infra".to_owned(),
        repo.join("infra").display().to_string(),
    ]
    .into_iter()
    .collect();
    let options = cli::parse(&args).expect("arguments");
    c.bench_function(
        "rehearse a 24-hour weekly-business day (1,440 minutes)",
        |b| {
            b.iter(|| {
                let report = run::rehearse(&options, &[]).expect("rehearsal");
                assert_eq!(report.outcome.rows.len(), 1440);
                report
            })
        },
    );
}

criterion_group!(benches, bench);
criterion_main!(benches);
