//! CloudWatch alarm evaluation: M of N datapoints, and what missing data does.
//!
//! Source: Amazon CloudWatch User Guide, "Configuring how CloudWatch alarms treat missing
//! data" (alarms-and-missing-data) and "Avoiding premature transitions to alarm state".
//! - CloudWatch reads an *evaluation range* longer than the N evaluation periods.
//! - With at least N real datapoints in the range it evaluates the N most recent real ones
//!   (missing data is not needed, whatever `treat_missing_data` says): ALARM when at least
//!   M of them breach.
//! - With fewer, it fills the gap with the `treat_missing_data` rule, using missing points
//!   as few times as possible: `breaching` fills with breaches, `notBreaching` with good
//!   points; `missing` and `ignore` do not count them, except that an alarm whose real
//!   datapoints all breach, the oldest at least M periods old, goes to ALARM (`missing`) or
//!   keeps its state (`ignore`).
//! - With no real datapoint at all: INSUFFICIENT_DATA (`missing`), unchanged (`ignore`),
//!   ALARM (`breaching`), OK (`notBreaching`).
//!
//! The two truth tables of that page are the unit tests below, row for row. One reading
//! is ours: the page's prose says the premature-alarm rule needs only the *more recent*
//! points to be breaching or missing, but its table keeps `0 - X - -` (M = 2) in OK; we
//! follow the table (every real point of the range breaches).

use serde::Serialize;

/// The three states of a CloudWatch alarm.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum AlarmState {
    #[serde(rename = "OK")]
    Ok,
    #[serde(rename = "ALARM")]
    Alarm,
    #[serde(rename = "INSUFFICIENT_DATA")]
    InsufficientData,
}

impl AlarmState {
    pub fn as_str(self) -> &'static str {
        match self {
            AlarmState::Ok => "OK",
            AlarmState::Alarm => "ALARM",
            AlarmState::InsufficientData => "INSUFFICIENT_DATA",
        }
    }
}

/// `treat_missing_data` of `aws_cloudwatch_metric_alarm`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum MissingData {
    #[serde(rename = "missing")]
    Missing,
    #[serde(rename = "ignore")]
    Ignore,
    #[serde(rename = "breaching")]
    Breaching,
    #[serde(rename = "notBreaching")]
    NotBreaching,
}

impl MissingData {
    /// The Terraform / API spelling.
    pub fn parse(text: &str) -> Option<MissingData> {
        match text {
            "missing" => Some(MissingData::Missing),
            "ignore" => Some(MissingData::Ignore),
            "breaching" => Some(MissingData::Breaching),
            "notBreaching" => Some(MissingData::NotBreaching),
            _ => None,
        }
    }
}

/// How one alarm decides.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct AlarmRule {
    /// N: evaluation periods.
    pub evaluation_periods: usize,
    /// M: datapoints to alarm (N unless `datapoints_to_alarm` is set).
    pub datapoints_to_alarm: usize,
    pub treat_missing_data: MissingData,
}

/// Evaluates an alarm over its evaluation range: `range[i]` is `Some(breaching)` for a real
/// datapoint and `None` for a missing one, oldest first, newest last. `previous` is the
/// state the alarm is in (kept by `ignore`).
pub fn evaluate(rule: &AlarmRule, range: &[Option<bool>], previous: AlarmState) -> AlarmState {
    let n = rule.evaluation_periods.max(1);
    let m = rule.datapoints_to_alarm.clamp(1, n);
    // (age, breaching) of the real datapoints, newest first; age 1 is the newest slot.
    let real: Vec<(usize, bool)> = range
        .iter()
        .rev()
        .enumerate()
        .filter_map(|(index, point)| point.map(|breaching| (index + 1, breaching)))
        .collect();
    let verdict = |breaches: usize| {
        if breaches >= m {
            AlarmState::Alarm
        } else {
            AlarmState::Ok
        }
    };
    if real.len() >= n {
        return verdict(real.iter().take(n).filter(|(_, b)| *b).count());
    }
    if real.is_empty() {
        return match rule.treat_missing_data {
            MissingData::Missing => AlarmState::InsufficientData,
            MissingData::Ignore => previous,
            MissingData::Breaching => AlarmState::Alarm,
            MissingData::NotBreaching => AlarmState::Ok,
        };
    }
    let breaches = real.iter().filter(|(_, b)| *b).count();
    let filled = n - real.len();
    match rule.treat_missing_data {
        MissingData::Breaching => verdict(breaches + filled),
        MissingData::NotBreaching => verdict(breaches),
        MissingData::Missing | MissingData::Ignore => {
            if breaches >= m {
                return AlarmState::Alarm;
            }
            let oldest_age = real.last().map_or(0, |(age, _)| *age);
            let premature = breaches == real.len() && oldest_age >= m;
            match (premature, rule.treat_missing_data) {
                (true, MissingData::Missing) => AlarmState::Alarm,
                (true, _) => previous,
                (false, _) => AlarmState::Ok,
            }
        }
    }
}

/// The metric value a scaling policy compares with its step bounds when the alarm invokes
/// it: the `metric_aggregation_type` (Terraform's default and the project's: Average) of
/// the N newest real datapoints of the range, the ones the alarm decided on.
///
/// Sources: Amazon EC2 Auto Scaling User Guide, "Step and simple scaling policies" (the
/// breach size is the aggregated metric value minus the threshold) and Terraform's
/// `aws_autoscaling_policy` (`metric_aggregation_type`: Minimum, Maximum or Average,
/// default Average). Which datapoints are aggregated is not documented: the rehearsal takes
/// those the alarm evaluated.
pub fn policy_metric(range: &[Option<f64>], evaluation_periods: usize) -> Option<f64> {
    let used: Vec<f64> = range
        .iter()
        .rev()
        .flatten()
        .take(evaluation_periods.max(1))
        .copied()
        .collect();
    (!used.is_empty()).then(|| used.iter().sum::<f64>() / used.len() as f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `0` good, `X` breaching, `-` missing; oldest first, as the CloudWatch tables print.
    fn points(text: &str) -> Vec<Option<bool>> {
        text.split_whitespace()
            .map(|p| match p {
                "0" => Some(false),
                "X" => Some(true),
                _ => None,
            })
            .collect()
    }

    const RETAIN: Option<AlarmState> = None;

    /// One row: datapoints, then the state for missing, ignore, breaching, notBreaching
    /// (`RETAIN`: the previous state is kept).
    type Row = (&'static str, [Option<AlarmState>; 4]);

    fn check(m: usize, rows: &[Row]) {
        use AlarmState::*;
        let treatments = [
            MissingData::Missing,
            MissingData::Ignore,
            MissingData::Breaching,
            MissingData::NotBreaching,
        ];
        for (data, expected) in rows {
            for (treatment, want) in treatments.iter().zip(expected) {
                let rule = AlarmRule {
                    evaluation_periods: 3,
                    datapoints_to_alarm: m,
                    treat_missing_data: *treatment,
                };
                // Retaining is told apart from deciding by starting from two states.
                for previous in [Ok, Alarm] {
                    let got = evaluate(&rule, &points(data), previous);
                    let want = want.unwrap_or(previous);
                    assert_eq!(
                        got, want,
                        "{data} with {treatment:?}, M={m}, from {previous:?}"
                    );
                }
            }
        }
    }

    #[test]
    fn three_of_three_follows_the_cloudwatch_table() {
        use AlarmState::*;
        // CloudWatch User Guide, first table: Datapoints to Alarm = Evaluation Periods = 3,
        // evaluation range 5.
        check(
            3,
            &[
                ("0 - X - X", [Some(Ok), Some(Ok), Some(Ok), Some(Ok)]),
                ("0 - - - -", [Some(Ok), Some(Ok), Some(Ok), Some(Ok)]),
                (
                    "- - - - -",
                    [Some(InsufficientData), RETAIN, Some(Alarm), Some(Ok)],
                ),
                (
                    "0 X X - X",
                    [Some(Alarm), Some(Alarm), Some(Alarm), Some(Alarm)],
                ),
                ("- - X - -", [Some(Alarm), RETAIN, Some(Alarm), Some(Ok)]),
            ],
        );
    }

    #[test]
    fn two_of_three_with_a_missing_datapoint_follows_the_cloudwatch_table() {
        use AlarmState::*;
        // Second table: an M of N alarm, 2 out of 3, evaluation range 5.
        check(
            2,
            &[
                (
                    "0 - X - X",
                    [Some(Alarm), Some(Alarm), Some(Alarm), Some(Alarm)],
                ),
                (
                    "0 0 X 0 X",
                    [Some(Alarm), Some(Alarm), Some(Alarm), Some(Alarm)],
                ),
                ("0 - X - -", [Some(Ok), Some(Ok), Some(Alarm), Some(Ok)]),
                ("- - - - 0", [Some(Ok), Some(Ok), Some(Alarm), Some(Ok)]),
                ("- - - X -", [Some(Alarm), RETAIN, Some(Alarm), Some(Ok)]),
            ],
        );
    }

    #[test]
    fn a_lone_recent_breach_is_not_a_premature_alarm() {
        // The page: `- - - - X` and `- - - X -` do not go to ALARM at once with M = 3.
        let rule = AlarmRule {
            evaluation_periods: 3,
            datapoints_to_alarm: 3,
            treat_missing_data: MissingData::Missing,
        };
        for data in ["- - - - X", "- - - X -"] {
            assert_eq!(
                evaluate(&rule, &points(data), AlarmState::Ok),
                AlarmState::Ok,
                "{data}"
            );
        }
    }

    #[test]
    fn the_newest_n_real_points_decide_even_when_older_ones_breach() {
        let rule = AlarmRule {
            evaluation_periods: 2,
            datapoints_to_alarm: 2,
            treat_missing_data: MissingData::Missing,
        };
        assert_eq!(
            evaluate(&rule, &points("X X X 0 X"), AlarmState::Alarm),
            AlarmState::Ok
        );
        assert_eq!(
            evaluate(&rule, &points("0 0 0 X X"), AlarmState::Ok),
            AlarmState::Alarm
        );
    }

    #[test]
    fn a_policy_compares_the_average_of_the_datapoints_the_alarm_evaluated() {
        // (range oldest first, N, expected)
        let cases: Vec<(Vec<Option<f64>>, usize, Option<f64>)> = vec![
            (vec![Some(50.0), Some(70.0), Some(90.0)], 2, Some(80.0)),
            (
                vec![Some(10.0), None, Some(70.0), None, Some(90.0)],
                2,
                Some(80.0),
            ),
            (
                vec![Some(10.0), None, None, None, Some(90.0)],
                3,
                Some(50.0),
            ),
            (vec![None, None], 2, None),
        ];
        for (range, n, want) in cases {
            assert_eq!(policy_metric(&range, n), want, "{range:?}");
        }
    }
}
