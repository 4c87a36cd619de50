//! A real run against the prediction, as numbers: loadtest.sh's samples.csv turned into
//! minutes, the error of the predicted desired and in-service capacity, CPU and p99 minute
//! by minute, and their mean absolute error; and the per-instance throughput fitted from
//! the real run (`--calibrate-from`), so the next rehearsal starts calibrated.

use std::path::Path;

use serde::Serialize;

use crate::error::Error;
use crate::simulate::MinuteRow;

/// One window of loadtest.sh's samples.csv.
#[derive(Debug, Clone, PartialEq)]
pub struct Window {
    /// Seconds since the start at which the window ended, and its length.
    pub end_s: f64,
    pub length_s: f64,
    /// 2xx per second.
    pub rps: f64,
    pub p99_ms: Option<f64>,
    pub desired: Option<f64>,
    pub in_service: Option<f64>,
    pub cpu_percent: Option<f64>,
}

const COLUMNS: [&str; 7] = [
    "elapsed_s",
    "rps",
    "p99_ms",
    "desired",
    "in_service",
    "cpu_percent",
    "target_rps",
];

/// Reads a samples.csv.
pub fn read_samples(path: &Path, flag: &str) -> Result<Vec<Window>, Error> {
    let usage = |m: String| Error::usage(format!("{flag} {}: {m}", path.display()));
    let mut reader = csv::Reader::from_path(path).map_err(|e| usage(e.to_string()))?;
    let header: Vec<String> = reader
        .headers()
        .map_err(|e| usage(e.to_string()))?
        .iter()
        .map(str::to_owned)
        .collect();
    let missing: Vec<&str> = COLUMNS
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
    let mut windows = Vec::new();
    let mut previous = 0.0;
    for record in reader.records() {
        let record = record.map_err(|e| usage(e.to_string()))?;
        let get = |n: &str| {
            record
                .get(index(n))
                .and_then(|v| v.trim().parse::<f64>().ok())
                .filter(|v| v.is_finite())
        };
        let end_s = get("elapsed_s").ok_or_else(|| usage("a row without elapsed_s".to_owned()))?;
        if end_s <= previous {
            return Err(usage(format!(
                "elapsed_s must increase (row {})",
                windows.len() + 1
            )));
        }
        windows.push(Window {
            end_s,
            length_s: end_s - previous,
            rps: get("rps").unwrap_or(0.0),
            p99_ms: get("p99_ms"),
            desired: get("desired"),
            in_service: get("in_service"),
            cpu_percent: get("cpu_percent"),
        });
        previous = end_s;
    }
    if windows.is_empty() {
        return Err(usage("no data rows".to_owned()));
    }
    Ok(windows)
}

/// A quantity in one minute, predicted and measured.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct Pair {
    pub predicted: Option<f64>,
    pub real: Option<f64>,
}

impl Pair {
    /// Predicted minus real, when both exist.
    pub fn error(&self) -> Option<f64> {
        Some(self.predicted? - self.real?)
    }
}

/// One minute of the comparison.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MinuteComparison {
    pub minute: usize,
    pub desired: Pair,
    pub in_service: Pair,
    pub cpu_percent: Pair,
    pub p99_ms: Pair,
}

/// One number per quantity.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct PerQuantity {
    pub desired: Option<f64>,
    pub in_service: Option<f64>,
    pub cpu_percent: Option<f64>,
    pub p99_ms: Option<f64>,
}

/// The whole comparison.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Comparison {
    pub file: String,
    pub windows: usize,
    pub duration_s: f64,
    pub minutes: Vec<MinuteComparison>,
    /// Mean absolute error of each quantity over the minutes where both sides exist.
    pub mean_absolute_error: PerQuantity,
    /// Mean signed error (predicted - real): positive when the rehearsal overestimates.
    pub mean_error: PerQuantity,
}

/// The time-weighted average of `value` over the windows' parts inside [from, to).
fn weighted(
    windows: &[Window],
    from: f64,
    to: f64,
    value: impl Fn(&Window) -> Option<f64>,
) -> Option<f64> {
    let (mut sum, mut weight) = (0.0, 0.0);
    for w in windows {
        let overlap = (w.end_s.min(to) - (w.end_s - w.length_s).max(from)).max(0.0);
        if let (Some(v), true) = (value(w), overlap > 0.0) {
            sum += v * overlap;
            weight += overlap;
        }
    }
    (weight > 0.0).then(|| sum / weight)
}

/// The real run minute by minute: capacity and CPU averaged over the time each window
/// covers of the minute; p99 the worst of its windows' (a minute's p99 is at most that,
/// and loadtest.sh keeps no raw latencies to merge).
pub fn real_minute(
    windows: &[Window],
    minute: usize,
) -> (Option<f64>, Option<f64>, Option<f64>, Option<f64>) {
    let (from, to) = (minute as f64 * 60.0, minute as f64 * 60.0 + 60.0);
    let p99 = windows
        .iter()
        .filter(|w| w.end_s > from && w.end_s - w.length_s < to)
        .filter_map(|w| w.p99_ms)
        .reduce(f64::max);
    (
        weighted(windows, from, to, |w| w.desired),
        weighted(windows, from, to, |w| w.in_service),
        weighted(windows, from, to, |w| w.cpu_percent),
        p99,
    )
}

fn mean(values: impl Iterator<Item = f64>) -> Option<f64> {
    let (sum, n) = values.fold((0.0, 0usize), |(s, n), v| (s + v, n + 1));
    (n > 0).then(|| sum / n as f64)
}

/// Compares the prediction with the real run of `path`.
pub fn compare(path: &Path, windows: &[Window], rows: &[MinuteRow]) -> Comparison {
    let duration_s = windows.last().map_or(0.0, |w| w.end_s);
    let real_minutes = (duration_s / 60.0).ceil() as usize;
    let minutes: Vec<MinuteComparison> = rows
        .iter()
        .take(real_minutes)
        .map(|row| {
            let (desired, in_service, cpu, p99) = real_minute(windows, row.minute);
            MinuteComparison {
                minute: row.minute,
                desired: Pair {
                    predicted: Some(row.desired as f64),
                    real: desired,
                },
                in_service: Pair {
                    predicted: Some(row.in_service as f64),
                    real: in_service,
                },
                cpu_percent: Pair {
                    predicted: row.cpu_percent,
                    real: cpu,
                },
                p99_ms: Pair {
                    predicted: row.p99_ms,
                    real: p99,
                },
            }
        })
        .collect();
    let per = |f: &dyn Fn(&Pair) -> Option<f64>| PerQuantity {
        desired: mean(minutes.iter().filter_map(|m| f(&m.desired))),
        in_service: mean(minutes.iter().filter_map(|m| f(&m.in_service))),
        cpu_percent: mean(minutes.iter().filter_map(|m| f(&m.cpu_percent))),
        p99_ms: mean(minutes.iter().filter_map(|m| f(&m.p99_ms))),
    };
    let mean_absolute_error = per(&|p: &Pair| p.error().map(f64::abs));
    let mean_error = per(&|p: &Pair| p.error());
    Comparison {
        file: path.display().to_string(),
        windows: windows.len(),
        duration_s,
        minutes,
        mean_absolute_error,
        mean_error,
    }
}

fn cell(v: Option<f64>) -> String {
    v.map_or_else(String::new, |v| {
        let text = format!("{v:.3}");
        text.trim_end_matches('0').trim_end_matches('.').to_owned()
    })
}

/// compare.csv: per minute, each quantity predicted, real and the error.
pub fn write_csv(path: &Path, comparison: &Comparison) -> Result<(), Error> {
    let failed = |e: csv::Error| Error::failed(format!("cannot write {}: {e}", path.display()));
    let mut out = csv::Writer::from_path(path).map_err(failed)?;
    let mut header = vec!["minute".to_owned()];
    for q in ["desired", "in_service", "cpu_percent", "p99_ms"] {
        for part in ["predicted", "real", "error"] {
            header.push(format!("{q}_{part}"));
        }
    }
    out.write_record(&header).map_err(failed)?;
    for m in &comparison.minutes {
        let mut record = vec![m.minute.to_string()];
        for pair in [m.desired, m.in_service, m.cpu_percent, m.p99_ms] {
            record.extend([cell(pair.predicted), cell(pair.real), cell(pair.error())]);
        }
        out.write_record(&record).map_err(failed)?;
    }
    out.flush()
        .map_err(|e| Error::failed(format!("cannot write {}: {e}", path.display())))
}

/// The per-instance throughput a real run shows.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Fit {
    pub file: String,
    /// Requests per second one instance serves at 100 % CPU.
    pub instance_rps: f64,
    /// Windows the fit used (traffic, CPU and in-service capacity known, CPU below
    /// `SATURATED_CPU`).
    pub windows: usize,
    /// Root mean square of the fit's CPU error over those windows, in CPU points.
    pub rms_cpu_error: f64,
}

/// Above this CPU a window is saturated: its CPU no longer grows with the load.
pub const SATURATED_CPU: f64 = 95.0;

/// Fits CPU = idle + 100 x (2xx per second per instance) / instance_rps through the
/// windows by least squares, the model `rules::cpu` and `rules::queueing` use.
pub fn fit(path: &Path, windows: &[Window], idle_percent: f64) -> Result<Fit, Error> {
    let points: Vec<(f64, f64)> = windows
        .iter()
        .filter_map(|w| {
            let (cpu, n) = (w.cpu_percent?, w.in_service?);
            (n > 0.0 && w.rps > 0.0 && cpu < SATURATED_CPU).then(|| (w.rps / n, cpu - idle_percent))
        })
        .collect();
    let sxy: f64 = points.iter().map(|(x, y)| x * y).sum();
    let sxx: f64 = points.iter().map(|(x, _)| x * x).sum();
    if points.is_empty() || sxy <= 0.0 {
        return Err(Error::usage(format!(
            "--calibrate-from {}: no window with traffic, in-service capacity and a CPU below {SATURATED_CPU} % above the idle {idle_percent} % to fit (was the Auto Scaling group sampled?)",
            path.display()
        )));
    }
    // y = k x with k = 100 / instance_rps.
    let k = sxy / sxx;
    let rms =
        (points.iter().map(|(x, y)| (y - k * x).powi(2)).sum::<f64>() / points.len() as f64).sqrt();
    Ok(Fit {
        file: path.display().to_string(),
        instance_rps: 100.0 / k,
        windows: points.len(),
        rms_cpu_error: rms,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn window(
        end_s: f64,
        length_s: f64,
        rps: f64,
        cpu: Option<f64>,
        in_service: f64,
        p99: f64,
    ) -> Window {
        Window {
            end_s,
            length_s,
            rps,
            p99_ms: Some(p99),
            desired: Some(in_service),
            in_service: Some(in_service),
            cpu_percent: cpu,
        }
    }

    #[test]
    fn windows_become_minutes_weighted_by_the_time_they_cover() {
        // Four 15 s windows in minute 0; in minute 1 the capacity goes 2 -> 3 half-way.
        let windows = vec![
            window(15.0, 15.0, 10.0, Some(20.0), 2.0, 5.0),
            window(30.0, 15.0, 10.0, Some(20.0), 2.0, 9.0),
            window(45.0, 15.0, 10.0, Some(40.0), 2.0, 5.0),
            window(60.0, 15.0, 10.0, Some(40.0), 2.0, 5.0),
            window(90.0, 30.0, 10.0, None, 2.0, 7.0),
            window(120.0, 30.0, 10.0, Some(10.0), 3.0, 8.0),
        ];
        // (minute, desired, in service, CPU, p99)
        assert_eq!(
            real_minute(&windows, 0),
            (Some(2.0), Some(2.0), Some(30.0), Some(9.0))
        );
        assert_eq!(
            real_minute(&windows, 1),
            (Some(2.5), Some(2.5), Some(10.0), Some(8.0))
        );
        assert_eq!(real_minute(&windows, 2), (None, None, None, None));
    }

    #[test]
    fn the_fit_recovers_the_throughput_behind_the_cpu() {
        // An instance serving 150 rps at 100 %: 30 rps on 2 instances is 10 %, 60 on 1 is 40 %.
        let windows = vec![
            window(15.0, 15.0, 30.0, Some(10.0), 2.0, 1.0),
            window(30.0, 15.0, 60.0, Some(40.0), 1.0, 1.0),
            window(45.0, 15.0, 300.0, Some(100.0), 1.0, 1.0), // saturated: left out
            window(60.0, 15.0, 0.0, Some(1.0), 1.0, 1.0),     // no traffic: left out
        ];
        let fit = fit(Path::new("s.csv"), &windows, 0.0).expect("fit");
        assert!((fit.instance_rps - 150.0).abs() < 1e-9, "{fit:?}");
        assert_eq!(fit.windows, 2);
        assert!(fit.rms_cpu_error < 1e-9);
        let none = fit_error(&[window(15.0, 15.0, 10.0, None, 1.0, 1.0)]);
        assert!(none.contains("no window"), "{none}");
    }

    fn fit_error(windows: &[Window]) -> String {
        fit(Path::new("s.csv"), windows, 0.0)
            .expect_err("nothing to fit")
            .to_string()
    }

    #[test]
    fn errors_are_predicted_minus_real_and_their_mean_absolute_value() {
        let pairs = [
            Pair {
                predicted: Some(3.0),
                real: Some(2.0),
            },
            Pair {
                predicted: Some(1.0),
                real: Some(2.0),
            },
            Pair {
                predicted: None,
                real: Some(2.0),
            },
        ];
        let errors: Vec<Option<f64>> = pairs.iter().map(Pair::error).collect();
        assert_eq!(errors, vec![Some(1.0), Some(-1.0), None]);
        assert_eq!(mean(errors.iter().flatten().map(|e| e.abs())), Some(1.0));
        assert_eq!(mean(errors.iter().flatten().copied()), Some(0.0));
    }
}
