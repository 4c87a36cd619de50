//! loadtest.sh's `--load-csv` reads the rehearsal's load CSVs with the same meaning
//! (scripts/lib/loadplan.py).

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::{Files, repo_root};
use rehearsal::load;

/// The per-minute rates loadtest.sh would play from a CSV, or its ERROR.
fn played(csv: &Path) -> Result<Vec<f64>, String> {
    let output = Command::new("python3")
        .arg(repo_root().join("scripts/lib/loadplan.py"))
        .arg("minutes")
        .arg(csv)
        .output()
        .expect("run loadplan.py");
    if !output.status.success() {
        assert_eq!(output.status.code(), Some(2), "bad input is bad usage");
        return Err(String::from_utf8_lossy(&output.stderr).into_owned());
    }
    Ok(String::from_utf8_lossy(&output.stdout)
        .lines()
        .map(|l| l.parse().expect("a rate"))
        .collect())
}

#[test]
fn loadtest_plays_every_csv_the_rehearsal_reads_minute_for_minute() {
    let files = Files::new();
    let cases = [
        ("minutes.csv", "minute,rps\n0,100\n2,300\n3,50\n"),
        ("clock.csv", "time,rps\n23:58,10\n23:59,20\n00:00,30\n"),
        (
            "dates.csv",
            "time,rps\n2026-12-07T06:30,10\n2026-12-07T06:32,20.5\n",
        ),
        (
            "instants.csv",
            "time,rps\n2026-12-07T06:30Z,1.5\n2026-12-07T08:31:30+01:00,2.25\n",
        ),
        (
            "timeline.csv",
            "minute,time,offered_rps,desired\n0,x,5,2\n1,x,7.25,2\n3,x,1,3\n",
        ),
        (
            "unlimited.csv",
            "elapsed_s,target_rps,requests\n30,50,1500\n60,0,3000\n95,20,700\n",
        ),
    ];
    let mut paths: Vec<PathBuf> = cases
        .iter()
        .map(|(name, text)| files.write(name, text))
        .collect();
    paths.push(repo_root().join("tests/fixtures/loadtest-recorded.csv"));
    for path in &paths {
        let rehearsed = load::from_csv(path).expect("the rehearsal reads it").rps;
        let played = played(path).expect("loadtest.sh plays it");
        assert_eq!(rehearsed.len(), played.len(), "{}", path.display());
        for (minute, (r, p)) in rehearsed.iter().zip(&played).enumerate() {
            assert!(
                (r - p).abs() < 1e-5,
                "{} minute {minute}: rehearsed {r}, played {p}",
                path.display()
            );
        }
    }
    // What one refuses, the other refuses, for the same reason.
    for (text, reason) in [
        ("when,how_many\n0,1\n", "expected the columns minute,rps"),
        ("minute,rps\n0,-5\n", "must be a number >= 0"),
        ("minute,rps\n0,lots\n", "is not a number"),
        ("minute,rps\n", "no data rows"),
        ("minute,rps\n2,1\n1,1\n", "must increase"),
        ("time,rps\nnoon,1\n", "neither HH:MM"),
        (
            "time,rps\n2026-12-07T06:30Z,1\n2026-12-07T06:31,1\n",
            "mixes times",
        ),
    ] {
        let path = files.write("bad.csv", text);
        let rehearsal = load::from_csv(&path).expect_err(text).to_string();
        let loadtest = played(&path).expect_err(text);
        assert!(rehearsal.contains(reason), "{text}: {rehearsal}");
        assert!(loadtest.contains(reason), "{text}: {loadtest}");
    }
}
