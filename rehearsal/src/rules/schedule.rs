//! Scheduled actions: when they fire, and what they do to the group's sizes.
//!
//! Sources: Amazon EC2 Auto Scaling User Guide, "Scheduled scaling": a recurring action
//! runs when its cron expression matches, in UTC unless a time zone (IANA name) is given,
//! in which case it follows that zone's daylight saving time; it sets any of min, max and
//! desired capacity; the group keeps the new sizes and its dynamic policies keep acting
//! within them. Terraform's `aws_autoscaling_schedule`: -1 leaves a size unchanged. An
//! action that would leave min above max fails (the API refuses it). Whether AWS fires a
//! local time skipped by a daylight-saving jump, or twice one that repeats, is not
//! documented: the rehearsal converts every UTC minute to local time and fires on a match,
//! so a skipped time does not fire and a repeated one fires twice.

use jiff::Timestamp;
use jiff::tz::TimeZone;

use super::cron::Cron;

/// One `aws_autoscaling_schedule`.
#[derive(Debug, Clone)]
pub struct ScheduledAction {
    pub name: String,
    pub recurrence: String,
    pub cron: Cron,
    pub time_zone_name: String,
    pub time_zone: TimeZone,
    pub min_size: Option<i64>,
    pub max_size: Option<i64>,
    pub desired_capacity: Option<i64>,
}

impl ScheduledAction {
    /// Builds an action from its Terraform attributes (-1 is "unchanged").
    pub fn new(
        name: &str,
        recurrence: &str,
        time_zone: &str,
        sizes: [i64; 3],
    ) -> Result<ScheduledAction, String> {
        let cron = Cron::parse(recurrence).map_err(|e| format!("schedule '{name}': {e}"))?;
        let zone = TimeZone::get(time_zone).map_err(|_| {
            format!("schedule '{name}': '{time_zone}' is not an IANA time zone name")
        })?;
        let size = |v: i64| (v >= 0).then_some(v);
        Ok(ScheduledAction {
            name: name.to_owned(),
            recurrence: recurrence.to_owned(),
            cron,
            time_zone_name: time_zone.to_owned(),
            time_zone: zone,
            min_size: size(sizes[0]),
            max_size: size(sizes[1]),
            desired_capacity: size(sizes[2]),
        })
    }

    /// Whether the action fires in the minute that starts at `at`.
    pub fn fires_at(&self, at: Timestamp) -> bool {
        self.cron
            .matches(at.to_zoned(self.time_zone.clone()).datetime())
    }
}

/// The group's sizes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct Sizes {
    pub min: i64,
    pub max: i64,
    pub desired: i64,
}

/// The sizes after `action`, or why AWS would refuse it.
pub fn apply(action: &ScheduledAction, sizes: Sizes) -> Result<Sizes, String> {
    let min = action.min_size.unwrap_or(sizes.min);
    let max = action.max_size.unwrap_or(sizes.max);
    if min > max {
        return Err(format!(
            "scheduled action '{}' failed: min {min} above max {max}",
            action.name
        ));
    }
    let desired = action
        .desired_capacity
        .unwrap_or(sizes.desired)
        .clamp(min, max);
    Ok(Sizes { min, max, desired })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn utc(text: &str) -> Timestamp {
        text.parse().expect("timestamp")
    }

    #[test]
    fn seven_o_clock_in_paris_follows_daylight_saving_time() {
        let action =
            ScheduledAction::new("peak", "0 7 * * *", "Europe/Paris", [4, 8, -1]).expect("action");
        // (UTC minute, fires): winter is UTC+1, summer UTC+2; 2026-03-29 and 2026-10-25
        // are the days the clocks change.
        let cases = [
            ("2026-12-07T06:00:00Z", true), // winter: 07:00 CET
            ("2026-12-07T05:00:00Z", false),
            ("2026-07-06T05:00:00Z", true), // summer: 07:00 CEST
            ("2026-07-06T06:00:00Z", false),
            ("2026-03-28T06:00:00Z", true), // the day before the spring change
            ("2026-03-29T05:00:00Z", true), // the morning after it
            ("2026-10-25T06:00:00Z", true), // the morning after the autumn change
        ];
        for (when, want) in cases {
            assert_eq!(action.fires_at(utc(when)), want, "{when}");
        }
    }

    #[test]
    fn utc_is_the_default_zone_of_the_variable() {
        let action =
            ScheduledAction::new("a", "0 7 * * *", "Etc/UTC", [1, -1, -1]).expect("action");
        assert!(action.fires_at(utc("2026-07-06T07:00:00Z")));
    }

    #[test]
    fn an_action_sets_sizes_and_clamps_the_desired_capacity() {
        let start = Sizes {
            min: 2,
            max: 4,
            desired: 3,
        };
        let make =
            |sizes| ScheduledAction::new("x", "0 0 * * *", "Etc/UTC", sizes).expect("action");
        // (min, max, desired) of the action, -1 unchanged; expected sizes after it
        let cases = [
            (
                [4, 8, -1],
                Ok(Sizes {
                    min: 4,
                    max: 8,
                    desired: 4,
                }),
            ), // min raised: desired pulled up
            (
                [1, 2, -1],
                Ok(Sizes {
                    min: 1,
                    max: 2,
                    desired: 2,
                }),
            ), // max lowered: pulled down
            (
                [2, 4, -1],
                Ok(Sizes {
                    min: 2,
                    max: 4,
                    desired: 3,
                }),
            ), // inside: unchanged
            (
                [-1, -1, 4],
                Ok(Sizes {
                    min: 2,
                    max: 4,
                    desired: 4,
                }),
            ),
        ];
        for (sizes, want) in cases {
            assert_eq!(apply(&make(sizes), start), want, "{sizes:?}");
        }
        let refused = apply(&make([6, -1, -1]), start).expect_err("min above max");
        assert!(refused.contains("min 6 above max 4"), "{refused}");
    }

    #[test]
    fn unknown_time_zones_are_refused() {
        let err = ScheduledAction::new("a", "0 7 * * *", "Europe/Atlantis", [1, -1, -1])
            .expect_err("unknown zone");
        assert!(err.contains("Europe/Atlantis"), "{err}");
    }
}
