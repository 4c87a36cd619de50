//! Target tracking: the alarms AWS creates for a policy, and the capacity it asks for.
//!
//! Source: Amazon EC2 Auto Scaling User Guide, "Target tracking scaling policies"
//! (as-scaling-target-tracking): AWS creates and owns two alarms, a high one (scale out)
//! and a low one (scale in, "more gradually"); capacity changes proportionally to the metric,
//! rounding conservatively ("adding 1.5 instances ... we round up and add two"; "removing 1.5
//! instances ... we remove just one"); with several policies the group scales out if any
//! policy is ready to and in only if all of them (with scale-in enabled) are; no scale-in
//! on insufficient data, except for ALBRequestCountPerTarget, which reports zeros.
//! Not documented, so named assumptions: the high alarm is 3 of 3 one-minute datapoints
//! above the target and the low alarm 15 of 15 below `tt_scale_in_fraction` x target (the
//! alarms AWS shows in the console for an EC2 group).

use super::capacity::{Direction, Request};

/// The capacity that brings `metric` to `target` on `current` instances, rounded up: up when
/// adding (1.5 more becomes 2) and, the same formula, up when removing (1.5 fewer removes 1).
pub fn proportional_capacity(current: i64, metric: f64, target: f64) -> i64 {
    let exact = current as f64 * metric / target;
    // A hair of tolerance so that 8 x 50 / 50 stays 8 despite floating point.
    (exact - 1e-9).ceil().max(0.0) as i64
}

/// One policy's state this minute.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PolicyView {
    /// Its high alarm is in ALARM; `out_capacity` is what it asks for then.
    pub high: bool,
    pub out_capacity: i64,
    /// Its low alarm is in ALARM; `in_capacity` is what it asks for then.
    pub low: bool,
    pub in_capacity: i64,
    pub scale_in_enabled: bool,
}

/// The requests several target-tracking policies make together: out if any, in only if
/// every policy with scale-in enabled is ready (then the largest of their capacities).
pub fn combine(policies: &[PolicyView]) -> Vec<Request> {
    let mut requests: Vec<Request> = policies
        .iter()
        .filter(|p| p.high)
        .map(|p| Request {
            direction: Direction::Out,
            capacity: p.out_capacity,
        })
        .collect();
    let scaling_in: Vec<&PolicyView> = policies.iter().filter(|p| p.scale_in_enabled).collect();
    if !scaling_in.is_empty()
        && scaling_in.iter().all(|p| p.low)
        && let Some(capacity) = scaling_in.iter().map(|p| p.in_capacity).max()
    {
        requests.push(Request {
            direction: Direction::In,
            capacity,
        });
    }
    requests
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn capacity_is_proportional_and_rounded_conservatively() {
        // (current, metric, target, expected)
        let cases = [
            (2, 75.0, 50.0, 3),  // the User Guide's group of two kept at 50 %: 1.5 x 2 = 3
            (2, 100.0, 50.0, 4), // saturated: doubles
            (3, 75.0, 50.0, 5),  // 4.5: adding 1.5 instances rounds up to 2
            (5, 35.0, 50.0, 4),  // 3.5: removing 1.5 instances removes just 1
            (8, 50.0, 50.0, 8),  // on target: unchanged
            (4, 100.0, 50.0, 8),
        ];
        for (current, metric, target, want) in cases {
            assert_eq!(
                proportional_capacity(current, metric, target),
                want,
                "{current} at {metric}"
            );
        }
    }

    fn view(high: bool, low: bool, out: i64, inn: i64) -> PolicyView {
        PolicyView {
            high,
            out_capacity: out,
            low,
            in_capacity: inn,
            scale_in_enabled: true,
        }
    }

    #[test]
    fn several_policies_scale_out_if_any_and_in_only_if_all() {
        let both_low = combine(&[view(false, true, 0, 3), view(false, true, 0, 2)]);
        assert_eq!(
            both_low,
            vec![Request {
                direction: Direction::In,
                capacity: 3
            }]
        );
        let one_low = combine(&[view(false, true, 0, 3), view(false, false, 0, 0)]);
        assert!(one_low.is_empty(), "{one_low:?}");
        let one_high = combine(&[view(true, false, 6, 0), view(false, true, 0, 2)]);
        assert_eq!(
            one_high,
            vec![Request {
                direction: Direction::Out,
                capacity: 6
            }]
        );
        // A policy with scale-in disabled does not hold the others back.
        let mut no_in = view(false, false, 0, 0);
        no_in.scale_in_enabled = false;
        let others_low = combine(&[view(false, true, 0, 3), no_in]);
        assert_eq!(
            others_low,
            vec![Request {
                direction: Direction::In,
                capacity: 3
            }]
        );
    }
}
