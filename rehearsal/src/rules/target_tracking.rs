//! Target tracking: the alarms AWS creates for a policy, and the capacity it asks for.
//!
//! Source: Amazon EC2 Auto Scaling User Guide, "Target tracking scaling policies"
//! (as-scaling-target-tracking): AWS creates and owns two alarms, a high one (scale out)
//! and a low one (scale in, "more gradually"); capacity changes proportionally to the metric,
//! rounding conservatively ("adding 1.5 instances ... we round up and add two"; "removing 1.5
//! instances ... we remove just one"); with several policies the group scales out if any
//! policy is ready to and in only if all of them are; no scale-in on insufficient data,
//! except for ALBRequestCountPerTarget, which reports zeros.
//! Not documented, so named assumptions: the high alarm is 3 of 3 one-minute datapoints
//! above the target, the low alarm 15 of 15 below `tt_scale_in_fraction` x target. The
//! alarms EC2 Auto Scaling creates for a group are observed at 0.7 x the target (50 -> 35,
//! 40 -> 28, 75 -> 52.5, 30 -> 21); the 0.9 of Application Auto Scaling's wording ("usually
//! more than 10 % lower") is not what an EC2 group gets.
//!
//! How a policy re-invoked every minute while its alarm stays in ALARM sizes the group is
//! not documented either. The rehearsal reads the metric as a load: the datapoints'
//! average, times the capacity that produced them, over the target. Scaling out, that
//! capacity is the current warm capacity (warming instances are left out of both the metric
//! and the capacity, so repeating the request adds nothing until they count). Scaling in,
//! it is the capacity the datapoints were recorded with (the targets that served in those
//! minutes): ten instances at 28 % against a target of 50 ask for six, and the same
//! datapoints, seen again next minute, ask for six again, not for 6 x 28 / 50 = 4 (which
//! would compound 10 -> 6 -> 4 -> 3 on datapoints that no longer describe the group).

use super::capacity::{Direction, Request};

/// The capacity that brings `metric` to `target` on `current` instances, rounded up: up when
/// adding (1.5 more becomes 2) and, the same formula, up when removing (1.5 fewer removes 1).
pub fn proportional_capacity(current: f64, metric: f64, target: f64) -> i64 {
    let exact = current * metric / target;
    // A hair of tolerance so that 8 x 50 / 50 stays 8 despite floating point.
    (exact - 1e-9).ceil().max(0.0) as i64
}

/// One datapoint a low alarm evaluated: the metric and the capacity that produced it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Datapoint {
    pub value: f64,
    pub capacity: f64,
}

/// The capacity a scale-in asks for: the load the datapoints describe (each one's metric
/// times the capacity that produced it, averaged) over the target.
pub fn scale_in_capacity(points: &[Datapoint], target: f64) -> Option<i64> {
    if points.is_empty() {
        return None;
    }
    let load = points.iter().map(|p| p.value * p.capacity).sum::<f64>() / points.len() as f64;
    Some(proportional_capacity(1.0, load, target))
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
}

/// The requests several target-tracking policies make together: out if any, in only if
/// every policy is ready to (then the largest of their capacities).
pub fn combine(policies: &[PolicyView]) -> Vec<Request> {
    let mut requests: Vec<Request> = policies
        .iter()
        .filter(|p| p.high)
        .map(|p| Request {
            direction: Direction::Out,
            capacity: p.out_capacity,
        })
        .collect();
    if !policies.is_empty()
        && policies.iter().all(|p| p.low)
        && let Some(capacity) = policies.iter().map(|p| p.in_capacity).max()
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
            (2.0, 75.0, 50.0, 3),  // the User Guide's group of two kept at 50 %: 1.5 x 2 = 3
            (2.0, 100.0, 50.0, 4), // saturated: doubles
            (3.0, 75.0, 50.0, 5),  // 4.5: adding 1.5 instances rounds up to 2
            (5.0, 35.0, 50.0, 4),  // 3.5: removing 1.5 instances removes just 1
            (8.0, 50.0, 50.0, 8),  // on target: unchanged
            (4.0, 100.0, 50.0, 8),
            (10.0, 28.0, 50.0, 6), // 5.6
        ];
        for (current, metric, target, want) in cases {
            assert_eq!(
                proportional_capacity(current, metric, target),
                want,
                "{current} at {metric}"
            );
        }
    }

    #[test]
    fn a_re_invoked_scale_in_does_not_compound_on_old_datapoints() {
        let at = |value: f64, capacity: f64, n: usize| vec![Datapoint { value, capacity }; n];
        // (datapoints the low alarm evaluates, target, expected capacity)
        let cases: Vec<(Vec<Datapoint>, f64, Option<i64>)> = vec![
            // Ten instances at 28 % for 15 minutes, target 50: 5.6, six.
            (at(28.0, 10.0, 15), 50.0, Some(6)),
            // A minute later the same datapoints are still in the window (the group is
            // already at 6): six again, not ceil(6 x 28 / 50) = 4.
            (at(28.0, 10.0, 15), 50.0, Some(6)),
            // Two newer datapoints from the six (46.7 % each): the same load, still six.
            (
                [at(28.0, 10.0, 13), at(280.0 / 6.0, 6.0, 2)].concat(),
                50.0,
                Some(6),
            ),
            (Vec::new(), 50.0, None),
        ];
        for (points, target, want) in cases {
            assert_eq!(scale_in_capacity(&points, target), want, "{points:?}");
        }
    }

    fn view(high: bool, low: bool, out: i64, inn: i64) -> PolicyView {
        PolicyView {
            high,
            out_capacity: out,
            low,
            in_capacity: inn,
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
    }
}
