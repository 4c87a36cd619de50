//! Step scaling: which step a metric value falls in, and the capacity it asks for.
//!
//! Source: Amazon EC2 Auto Scaling User Guide, "Step and simple scaling policies"
//! (as-scaling-simple-step): step bounds are relative to the alarm threshold; above the
//! threshold the lower bound is inclusive and the upper exclusive, below it the lower bound
//! is exclusive and the upper inclusive; a null bound is infinity. Adjustment types:
//! ChangeInCapacity, ExactCapacity, PercentChangeInCapacity, where a percentage "greater
//! than 1 is rounded down, between 0 and 1 is rounded to 1, between 0 and -1 is rounded to
//! -1, less than -1 is rounded up" and MinAdjustmentMagnitude is the least it moves
//! (API PutScalingPolicy: 25 % of 4 is 1, with MinAdjustmentMagnitude 2 it adds 2).
//! A value in no step ("No step adjustment found") does nothing.

use serde::Serialize;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum AdjustmentType {
    ChangeInCapacity,
    ExactCapacity,
    PercentChangeInCapacity,
}

impl AdjustmentType {
    pub fn parse(text: &str) -> Option<AdjustmentType> {
        match text {
            "ChangeInCapacity" => Some(AdjustmentType::ChangeInCapacity),
            "ExactCapacity" => Some(AdjustmentType::ExactCapacity),
            "PercentChangeInCapacity" => Some(AdjustmentType::PercentChangeInCapacity),
            _ => None,
        }
    }
}

/// One `step_adjustment`: bounds relative to the threshold, `None` for infinity.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Step {
    pub lower: Option<f64>,
    pub upper: Option<f64>,
    pub adjustment: f64,
}

/// The step `metric` falls in for an alarm at `threshold`. At the threshold itself a step
/// that starts there (lower bound 0, inclusive above) is preferred to one that ends there
/// (upper bound 0, inclusive below).
pub fn matching_step(steps: &[Step], threshold: f64, metric: f64) -> Option<&Step> {
    let delta = metric - threshold;
    let above = |s: &&Step| s.lower.is_none_or(|l| l <= delta) && s.upper.is_none_or(|u| delta < u);
    let below = |s: &&Step| s.lower.is_none_or(|l| l < delta) && s.upper.is_none_or(|u| delta <= u);
    if delta > 0.0 {
        steps.iter().find(above)
    } else if delta < 0.0 {
        steps.iter().find(below)
    } else {
        steps
            .iter()
            .find(above)
            .or_else(|| steps.iter().find(below))
    }
}

/// The change a percentage asks for, rounded as Auto Scaling does, then raised to
/// `min_magnitude` when it is smaller.
pub fn percent_change(current: i64, percent: f64, min_magnitude: Option<i64>) -> i64 {
    let raw = current as f64 * percent / 100.0;
    let rounded = if raw > 1.0 {
        raw.floor()
    } else if raw > 0.0 {
        1.0
    } else if raw == 0.0 {
        0.0
    } else if raw > -1.0 {
        -1.0
    } else {
        raw.ceil()
    } as i64;
    match min_magnitude {
        Some(m) if rounded != 0 && rounded.abs() < m => rounded.signum() * m,
        _ => rounded,
    }
}

/// The capacity an adjustment asks for from `current`.
pub fn adjusted_capacity(
    kind: AdjustmentType,
    adjustment: f64,
    current: i64,
    min_magnitude: Option<i64>,
) -> i64 {
    match kind {
        AdjustmentType::ChangeInCapacity => current + adjustment as i64,
        AdjustmentType::ExactCapacity => adjustment as i64,
        AdjustmentType::PercentChangeInCapacity => {
            current + percent_change(current, adjustment, min_magnitude)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The project's default scale-out policy: +1 from the threshold, +2 from 20 above it.
    fn out_steps() -> Vec<Step> {
        vec![
            Step {
                lower: Some(0.0),
                upper: Some(20.0),
                adjustment: 1.0,
            },
            Step {
                lower: Some(20.0),
                upper: None,
                adjustment: 2.0,
            },
        ]
    }

    #[test]
    fn bounds_match_as_the_user_guide_says() {
        let out = out_steps();
        let scale_in = vec![Step {
            lower: None,
            upper: Some(0.0),
            adjustment: -1.0,
        }];
        // (steps, threshold, metric, expected adjustment or None)
        let cases: Vec<(&[Step], f64, f64, Option<f64>)> = vec![
            (&out, 60.0, 60.0, Some(1.0)), // exactly at the threshold: lower bound 0 is inclusive
            (&out, 60.0, 79.9, Some(1.0)), // below the next step's lower bound
            (&out, 60.0, 80.0, Some(2.0)), // a step's lower bound is inclusive above the threshold
            (&out, 60.0, 100.0, Some(2.0)), // the last step is open-ended
            (&out, 60.0, 59.0, None), // below the threshold: no step ("No step adjustment found")
            (&scale_in, 30.0, 30.0, Some(-1.0)), // below the threshold the upper bound is inclusive
            (&scale_in, 30.0, 3.0, Some(-1.0)),
            (&scale_in, 30.0, 31.0, None),
        ];
        for (steps, threshold, metric, want) in cases {
            let got = matching_step(steps, threshold, metric).map(|s| s.adjustment);
            assert_eq!(got, want, "metric {metric} against threshold {threshold}");
        }
    }

    #[test]
    fn a_lower_bound_below_the_threshold_is_exclusive() {
        // Two steps below a threshold of 50: (-inf, -10] and (-10, 0].
        let steps = vec![
            Step {
                lower: None,
                upper: Some(-10.0),
                adjustment: -2.0,
            },
            Step {
                lower: Some(-10.0),
                upper: Some(0.0),
                adjustment: -1.0,
            },
        ];
        assert_eq!(
            matching_step(&steps, 50.0, 40.0).map(|s| s.adjustment),
            Some(-2.0)
        );
        assert_eq!(
            matching_step(&steps, 50.0, 40.5).map(|s| s.adjustment),
            Some(-1.0)
        );
    }

    #[test]
    fn percentages_round_as_auto_scaling_does_both_ways() {
        // (current, percent, min magnitude, expected change)
        let cases = [
            (10, 30.0, None, 3),   // 3.0
            (11, 30.0, None, 3),   // 3.3 > 1: rounded down
            (5, 10.0, None, 1),    // 0.5 in (0, 1): 1
            (5, -10.0, None, -1),  // -0.5 in (-1, 0): -1
            (11, -30.0, None, -3), // -3.3 < -1: rounded up (towards zero)
            (4, 25.0, Some(2), 2), // the API reference's MinAdjustmentMagnitude example
            (4, -25.0, Some(2), -2),
            (20, 25.0, Some(2), 5), // already larger than the minimum
            (0, 50.0, Some(2), 0),  // nothing to scale
        ];
        for (current, percent, min, want) in cases {
            assert_eq!(
                percent_change(current, percent, min),
                want,
                "{percent} % of {current}"
            );
        }
    }

    #[test]
    fn adjustment_types_compute_the_new_capacity() {
        use AdjustmentType::*;
        assert_eq!(adjusted_capacity(ChangeInCapacity, 2.0, 3, None), 5);
        assert_eq!(adjusted_capacity(ChangeInCapacity, -1.0, 3, None), 2);
        assert_eq!(adjusted_capacity(ExactCapacity, 6.0, 3, None), 6);
        // The User Guide's warm-up example: 10 current instances, +30 % gives 13.
        assert_eq!(
            adjusted_capacity(PercentChangeInCapacity, 30.0, 10, None),
            13
        );
    }
}
