//! The load to replay, one offered request rate per minute: from loadtest.sh's arguments
//! (`--rate`, `--ramp`, `--duration`, with the same meaning), or from a CSV of a day or a
//! week (`minute,rps`, `time,rps`, or a samples.csv that loadtest.sh wrote). loadtest.sh
//! plays the same CSVs with the same meaning (scripts/python/loadplan.py).

use std::path::Path;

use jiff::civil::{DateTime, Time};
use jiff::tz::{AmbiguousOffset, TimeZone};
use jiff::{Timestamp, Zoned};

use crate::error::Error;

/// Offered requests per second, minute by minute.
#[derive(Debug, Clone, PartialEq)]
pub struct Load {
    pub rps: Vec<f64>,
    /// The wall-clock start the CSV's own times give, if they are full dates.
    pub start: Option<CsvStart>,
    pub description: String,
}

/// Where a CSV's own times put its first row.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum CsvStart {
    /// A date and time without an offset (`2026-12-07T06:30`): local to the schedules' time
    /// zone, as `--start` is.
    Local(DateTime),
    /// An instant (`2026-12-07T06:30Z`, `2026-12-07T07:30+01:00`), as CloudWatch gives them.
    Instant(Timestamp),
}

/// One row's time in a `time,rps` CSV.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Moment {
    Instant(Timestamp),
    Local(DateTime),
    Clock(Time),
}

/// A rate held from `from` to `to` seconds.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Segment {
    from: f64,
    to: f64,
    rps: f64,
}

/// Per-minute averages of piecewise-constant segments; a minute the load covers only in
/// part is averaged over the part it covers (a 30-second run is one minute at its rate).
fn per_minute(segments: &[Segment]) -> Vec<f64> {
    let end = segments.iter().map(|s| s.to).fold(0.0, f64::max);
    let minutes = (end / 60.0).ceil() as usize;
    let (mut requests, mut covered) = (vec![0.0; minutes], vec![0.0; minutes]);
    // Each segment only touches the minutes it overlaps: linear in segments + minutes (a
    // week of one-minute rows is 10,080 of each).
    for s in segments {
        let first = (s.from / 60.0).floor().max(0.0) as usize;
        let last = ((s.to / 60.0).ceil() as usize).min(minutes);
        for m in first..last {
            let (start, stop) = (m as f64 * 60.0, (m as f64 + 1.0) * 60.0);
            let overlap = (s.to.min(stop) - s.from.max(start)).max(0.0);
            requests[m] += overlap * s.rps;
            covered[m] += overlap;
        }
    }
    requests
        .iter()
        .zip(&covered)
        .map(|(r, c)| if *c > 0.0 { r / c } else { 0.0 })
        .collect()
}

/// loadtest.sh's `--rate` (one step) or `--ramp` (several), each lasting `duration_secs`.
pub fn from_steps(rates: &[f64], duration_secs: f64) -> Load {
    let segments: Vec<Segment> = rates
        .iter()
        .enumerate()
        .map(|(i, rps)| Segment {
            from: i as f64 * duration_secs,
            to: (i + 1) as f64 * duration_secs,
            rps: *rps,
        })
        .collect();
    let shown: Vec<String> = rates.iter().map(|r| format!("{r}")).collect();
    Load {
        rps: per_minute(&segments),
        start: None,
        description: format!("{} rps, {duration_secs} s per step", shown.join(" → ")),
    }
}

fn usage(path: &Path, message: impl std::fmt::Display) -> Error {
    Error::usage(format!("{}: {message}", path.display()))
}

fn number(path: &Path, line: usize, column: &str, text: &str) -> Result<f64, Error> {
    let value: f64 = text.trim().parse().map_err(|_| {
        usage(
            path,
            format!("line {line}: {column} '{text}' is not a number"),
        )
    })?;
    if !value.is_finite() || value < 0.0 {
        return Err(usage(
            path,
            format!("line {line}: {column} {value} must be a number >= 0"),
        ));
    }
    Ok(value)
}

/// A CSV's data rows, each with its line number.
type Rows = Vec<(usize, Vec<String>)>;

/// Reads a CSV's header and rows.
fn read_csv(path: &Path) -> Result<(Vec<String>, Rows), Error> {
    let mut reader = csv::ReaderBuilder::new()
        .trim(csv::Trim::All)
        .from_path(path)
        .map_err(|e| usage(path, e))?;
    let header: Vec<String> = reader
        .headers()
        .map_err(|e| usage(path, e))?
        .iter()
        .map(str::to_owned)
        .collect();
    let mut rows = Vec::new();
    for (i, record) in reader.records().enumerate() {
        let record = record.map_err(|e| usage(path, e))?;
        rows.push((i + 2, record.iter().map(str::to_owned).collect()));
    }
    if rows.is_empty() {
        return Err(usage(path, "no data rows"));
    }
    Ok((header, rows))
}

fn column(header: &[String], names: &[&str]) -> Option<usize> {
    names
        .iter()
        .find_map(|n| header.iter().position(|h| h == n))
}

/// An instant (`2026-12-07T06:30Z`), a date and time (`2026-12-07T06:30`) or a clock time
/// (`06:30`). An offset makes an instant: a civil parse would drop it.
fn parse_time(text: &str) -> Option<Moment> {
    if let Ok(ts) = text.parse::<Timestamp>() {
        return Some(Moment::Instant(ts));
    }
    if let Ok(dt) = text.parse::<DateTime>() {
        return Some(Moment::Local(dt));
    }
    text.parse::<Time>().ok().map(Moment::Clock)
}

/// A load from a CSV: `minute,rps`, `time,rps`, or loadtest.sh's samples.csv.
pub fn from_csv(path: &Path) -> Result<Load, Error> {
    let (header, rows) = read_csv(path)?;
    let cell = |row: &[String], i: usize| row.get(i).cloned().unwrap_or_default();
    let mut segments = Vec::new();
    let mut start = None;
    if let (Some(elapsed), Some(target)) = (
        column(&header, &["elapsed_s"]),
        column(&header, &["target_rps"]),
    ) {
        // loadtest.sh: each row is the window that ends at elapsed_s; the target rate, or
        // (an unlimited run, target 0) the requests it sent.
        let requests = column(&header, &["requests"]);
        let mut from = 0.0;
        for (line, row) in &rows {
            let to = number(path, *line, "elapsed_s", &cell(row, elapsed))?;
            if to <= from {
                return Err(usage(path, format!("line {line}: elapsed_s must increase")));
            }
            let mut rps = number(path, *line, "target_rps", &cell(row, target))?;
            if rps == 0.0
                && let Some(r) = requests
            {
                rps = number(path, *line, "requests", &cell(row, r))? / (to - from);
            }
            segments.push(Segment { from, to, rps });
            from = to;
        }
    } else if let (Some(minute), Some(rate)) = (
        column(&header, &["minute"]),
        column(&header, &["rps", "offered_rps"]),
    ) {
        let points: Vec<(f64, f64)> = rows
            .iter()
            .map(|(line, row)| {
                Ok((
                    number(path, *line, "minute", &cell(row, minute))?,
                    number(path, *line, "rps", &cell(row, rate))?,
                ))
            })
            .collect::<Result<_, Error>>()?;
        segments = held(path, &points)?;
    } else if let (Some(time), Some(rate)) = (column(&header, &["time"]), column(&header, &["rps"]))
    {
        let mut points = Vec::new();
        let mut first: Option<DateTime> = None;
        let mut first_instant: Option<Timestamp> = None;
        let mut day_offset = 0i64;
        let mut previous_clock: Option<Time> = None;
        for (line, row) in &rows {
            let text = cell(row, time);
            let moment = parse_time(&text);
            let mixed = match moment {
                Some(Moment::Instant(_)) => first.is_some(),
                Some(_) => first_instant.is_some(),
                None => false,
            };
            if mixed {
                return Err(usage(
                    path,
                    format!(
                        "line {line}: time '{text}' mixes times with and without an offset (Z, +01:00)"
                    ),
                ));
            }
            let at = match moment {
                Some(Moment::Instant(ts)) => {
                    let origin = *first_instant.get_or_insert(ts);
                    let minutes = ts.duration_since(origin).as_secs_f64() / 60.0;
                    points.push((minutes, number(path, *line, "rps", &cell(row, rate))?));
                    continue;
                }
                Some(Moment::Local(dt)) => dt,
                Some(Moment::Clock(clock)) => {
                    // Clock times: a time earlier than the one before is the next day.
                    if previous_clock.is_some_and(|p| clock < p) {
                        day_offset += 1;
                    }
                    previous_clock = Some(clock);
                    jiff::civil::date(2000, 1, 1)
                        .to_datetime(clock)
                        .checked_add(jiff::Span::new().days(day_offset))
                        .map_err(|e| usage(path, e))?
                }
                None => {
                    return Err(usage(
                        path,
                        format!(
                            "line {line}: time '{text}' is neither HH:MM nor a date and time such as 2026-12-07T06:30"
                        ),
                    ));
                }
            };
            let origin = *first.get_or_insert(at);
            // A plain duration: rows may span days (a week of dated rows).
            let minutes = at.duration_since(origin).as_secs_f64() / 60.0;
            points.push((minutes, number(path, *line, "rps", &cell(row, rate))?));
        }
        if let Some(ts) = first_instant {
            start = Some(CsvStart::Instant(ts));
        } else if previous_clock.is_none() {
            start = first.map(CsvStart::Local);
        }
        segments = held(path, &points)?;
    } else {
        return Err(usage(
            path,
            format!(
                "expected the columns minute,rps or time,rps, or loadtest.sh's samples.csv (elapsed_s,target_rps,...); found: {}",
                header.join(",")
            ),
        ));
    }
    let description = format!("{} ({} rows)", path.display(), rows.len());
    Ok(Load {
        rps: per_minute(&segments),
        start,
        description,
    })
}

/// Rates at minute offsets, each held until the next one; the last one lasts a minute.
fn held(path: &Path, points: &[(f64, f64)]) -> Result<Vec<Segment>, Error> {
    let origin = points.first().map_or(0.0, |p| p.0);
    let mut segments = Vec::new();
    for (i, (minute, rps)) in points.iter().enumerate() {
        let next = points.get(i + 1).map_or(minute + 1.0, |p| p.0);
        if next <= *minute {
            return Err(usage(
                path,
                format!("minutes and times must increase (row {})", i + 1),
            ));
        }
        segments.push(Segment {
            from: (minute - origin) * 60.0,
            to: (next - origin) * 60.0,
            rps: *rps,
        });
    }
    Ok(segments)
}

/// A wall-clock start, and a warning when daylight saving skips or repeats it.
#[derive(Debug, Clone, PartialEq)]
pub struct Start {
    pub zoned: Zoned,
    pub warning: Option<String>,
}

/// A civil date and time in `zone`: a time that daylight saving skips is taken after the
/// jump, one it repeats at its first occurrence (jiff's "compatible" choice, as RFC 5545),
/// with a warning either way.
pub fn civil_start(dt: DateTime, zone: &TimeZone, what: &str) -> Result<Start, Error> {
    let ambiguous = zone.to_ambiguous_zoned(dt);
    let warning = match ambiguous.offset() {
        AmbiguousOffset::Unambiguous { .. } => None,
        AmbiguousOffset::Gap { before, after } => Some(format!(
            "{what} {dt} does not exist in {}: daylight saving skips from {before} to {after}; the rehearsal starts after the jump",
            zone.iana_name().unwrap_or("the time zone")
        )),
        AmbiguousOffset::Fold { before, after } => Some(format!(
            "{what} {dt} happens twice in {} (daylight saving goes from {before} back to {after}); the rehearsal takes the first",
            zone.iana_name().unwrap_or("the time zone")
        )),
    };
    let zoned = ambiguous
        .compatible()
        .map_err(|e| Error::usage(format!("{what} {dt}: {e}")))?;
    Ok(Start { zoned, warning })
}

/// `--start`: a date and time with an offset (`Z`, `+01:00`), a zone (`[Europe/Paris]`),
/// or neither, in which case it is local to `zone` (the schedules' zone, else UTC).
pub fn parse_start(text: &str, zone: &TimeZone) -> Result<Start, Error> {
    if let Ok(z) = text.parse::<Zoned>() {
        return Ok(Start {
            zoned: z,
            warning: None,
        });
    }
    if let Ok(ts) = text.parse::<jiff::Timestamp>() {
        return Ok(Start {
            zoned: ts.to_zoned(TimeZone::UTC),
            warning: None,
        });
    }
    match text.parse::<DateTime>() {
        Ok(dt) => civil_start(dt, zone, "--start"),
        Err(_) => Err(Error::usage(format!(
            "--start '{text}' is not a date and time such as 2026-12-07T06:30 (local to the schedules' time zone), 2026-12-07T05:30Z or 2026-12-07T06:30[Europe/Paris]"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(text: &str) -> tempfile::NamedTempFile {
        let file = tempfile::NamedTempFile::new().expect("temp file");
        std::fs::write(file.path(), text).expect("write");
        file
    }

    #[test]
    fn rate_and_ramp_mean_what_they_mean_to_loadtest() {
        // --ramp 200,400 --duration 120: two minutes at each rate.
        assert_eq!(
            from_steps(&[200.0, 400.0], 120.0).rps,
            vec![200.0, 200.0, 400.0, 400.0]
        );
        // --rate 100 --duration 30: one (partial) minute at 100.
        assert_eq!(from_steps(&[100.0], 30.0).rps, vec![100.0]);
        // Steps of 90 s: the second minute is half of each.
        assert_eq!(
            from_steps(&[100.0, 300.0], 90.0).rps,
            vec![100.0, 200.0, 300.0]
        );
    }

    #[test]
    fn minute_rows_hold_until_the_next_row() {
        let f = write("minute,rps\n0,100\n2,300\n3,50\n");
        assert_eq!(
            from_csv(f.path()).expect("load").rps,
            vec![100.0, 100.0, 300.0, 50.0]
        );
    }

    #[test]
    fn times_are_offsets_from_the_first_row_and_dates_give_the_start() {
        let f = write("time,rps\n23:58,10\n23:59,20\n00:00,30\n");
        let load = from_csv(f.path()).expect("load");
        assert_eq!(load.rps, vec![10.0, 20.0, 30.0]);
        assert_eq!(load.start, None);
        let f = write("time,rps\n2026-12-07T06:30,10\n2026-12-07T06:32,20\n");
        let load = from_csv(f.path()).expect("load");
        assert_eq!(load.rps, vec![10.0, 10.0, 20.0]);
        assert_eq!(
            load.start,
            Some(CsvStart::Local(
                jiff::civil::date(2026, 12, 7).at(6, 30, 0, 0)
            ))
        );
    }

    #[test]
    fn dated_rows_may_span_a_week() {
        let mut csv = String::from("time,rps\n");
        for day in 7..=13 {
            csv.push_str(&format!("2026-12-{day:02}T00:00,{day}\n"));
        }
        csv.push_str("2026-12-13T23:59,13\n");
        let file = write(&csv);
        let load = from_csv(file.path()).expect("a week");
        assert_eq!(load.rps.len(), 7 * 1440);
        assert_eq!(
            (load.rps[0], load.rps[1440], load.rps[7 * 1440 - 1]),
            (7.0, 8.0, 13.0)
        );
    }

    #[test]
    fn times_with_an_offset_are_instants() {
        // An hour apart in UTC, whatever offset each row is written with.
        let f = write("time,rps\n2026-12-07T06:30Z,10\n2026-12-07T08:31+01:00,20\n");
        let load = from_csv(f.path()).expect("load");
        assert_eq!(load.rps.len(), 62);
        assert_eq!(
            (load.rps[0], load.rps[60], load.rps[61]),
            (10.0, 10.0, 20.0)
        );
        let start: Timestamp = "2026-12-07T06:30:00Z".parse().expect("instant");
        assert_eq!(load.start, Some(CsvStart::Instant(start)));
        let f = write("time,rps\n2026-12-07T06:30Z,10\n2026-12-07T06:31,20\n");
        let err = from_csv(f.path()).expect_err("mixed");
        assert!(err.to_string().contains("mixes times"), "{err}");
    }

    #[test]
    fn loadtest_samples_are_read_as_windows_of_their_target_rate() {
        let f = write(
            "elapsed_s,target_rps,requests,ok_2xx,failed,rps,mean_ms,p50_ms,p99_ms,desired,in_service,cpu_percent\n\
             30,50,1500,1500,0,50,1,1,1,2,2,10\n60,0,3000,3000,0,100,1,1,1,2,2,10\n",
        );
        // 30 s at 50 rps, then an unlimited window: 3000 requests in 30 s = 100 rps.
        assert_eq!(from_csv(f.path()).expect("load").rps, vec![75.0]);
    }

    #[test]
    fn start_times_take_their_zone_or_the_schedules_one() {
        let paris = TimeZone::get("Europe/Paris").expect("zone");
        // (text, zone, UTC start, warned)
        let cases = [
            ("2026-12-07T06:30", &paris, "2026-12-07T05:30:00Z", false),
            ("2026-12-07T06:30Z", &paris, "2026-12-07T06:30:00Z", false),
            (
                "2026-07-06T07:00[Europe/Paris]",
                &TimeZone::UTC,
                "2026-07-06T05:00:00Z",
                false,
            ),
            // 2026-03-29 02:30 does not exist in Paris (02:00 -> 03:00): after the jump.
            ("2026-03-29T02:30", &paris, "2026-03-29T01:30:00Z", true),
            // 2026-10-25 02:30 happens twice (03:00 -> 02:00): the first, still UTC+2.
            ("2026-10-25T02:30", &paris, "2026-10-25T00:30:00Z", true),
        ];
        for (text, zone, utc, warned) in cases {
            let start = parse_start(text, zone).expect(text);
            assert_eq!(start.zoned.timestamp().to_string(), utc, "{text}");
            assert_eq!(
                start.warning.is_some(),
                warned,
                "{text}: {:?}",
                start.warning
            );
        }
        assert!(parse_start("next monday", &paris).is_err());
    }
}
