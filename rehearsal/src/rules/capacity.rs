//! What the group's desired capacity becomes when policies ask for changes.
//!
//! Sources: Amazon EC2 Auto Scaling User Guide.
//! - "Step and simple scaling policies", instance warm-up: while scaling out, instances
//!   still warming up are not part of the current capacity but count toward the desired
//!   capacity (desired 11 with 10 current, +30 % gives 13: only 2 more launch), so a second
//!   breach during warm-up only adds the difference between the steps; while scaling in,
//!   terminating instances count as current capacity, and scale-in waits until no instance
//!   is warming up.
//! - "Scaling cooldowns": cooldowns apply to simple scaling only, not step scaling or
//!   target tracking, so nothing here waits for one.
//! - "Multiple scaling policies" (as-scale-based-on-demand): when several policies ask at
//!   once, the one that gives the largest capacity wins, out and in.
//! - "Set capacity limits": the desired capacity always stays within [min, max].

use serde::Serialize;

/// The instances of the group that scaling decisions look at.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Counts {
    /// Launched, not terminating, past the warm-up.
    pub warm: i64,
    /// Launched, not terminating, still warming up (pending ones included).
    pub warming: i64,
    /// Deregistering or shutting down.
    pub terminating: i64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    Out,
    In,
}

/// The capacity a policy's adjustment applies to.
pub fn current_capacity(direction: Direction, counts: Counts) -> i64 {
    match direction {
        Direction::Out => counts.warm,
        Direction::In => counts.warm + counts.warming + counts.terminating,
    }
}

/// One policy's answer: the capacity it asks for, computed from `current_capacity`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Request {
    pub direction: Direction,
    pub capacity: i64,
}

/// The desired capacity after the policies' requests (before clamping): a scale-out never
/// lowers it, a scale-in never raises it and waits while anything warms up, and the largest
/// capacity wins.
pub fn resolve(desired: i64, counts: Counts, requests: &[Request]) -> i64 {
    requests
        .iter()
        .filter_map(|r| match r.direction {
            Direction::Out => Some(r.capacity.max(desired)),
            Direction::In if counts.warming > 0 => None,
            Direction::In => Some(r.capacity.min(desired)),
        })
        .max()
        .unwrap_or(desired)
}

/// `desired` within the group's limits.
pub fn clamp(desired: i64, min: i64, max: i64) -> i64 {
    desired.max(min).min(max)
}

#[cfg(test)]
mod tests {
    use super::*;
    use Direction::*;

    fn out(capacity: i64) -> Request {
        Request {
            direction: Out,
            capacity,
        }
    }
    fn scale_in(capacity: i64) -> Request {
        Request {
            direction: In,
            capacity,
        }
    }

    #[test]
    fn a_second_breach_during_warm_up_adds_only_the_difference() {
        // 2 warm instances; the first breach (+1) launched a third, still warming: desired 3.
        let counts = Counts {
            warm: 2,
            warming: 1,
            terminating: 0,
        };
        // The alarm is still in ALARM, now in the +2 step: 2 warm + 2 = 4, one more launch,
        // not two.
        let asked = current_capacity(Out, counts) + 2;
        assert_eq!(resolve(3, counts, &[out(asked)]), 4);
        // Re-invoked in the +1 step: 2 + 1 = 3 asks for nothing new.
        let asked = current_capacity(Out, counts) + 1;
        assert_eq!(resolve(3, counts, &[out(asked)]), 3);
    }

    #[test]
    fn scale_in_is_blocked_while_an_instance_warms_up() {
        let warming = Counts {
            warm: 3,
            warming: 1,
            terminating: 0,
        };
        assert_eq!(resolve(4, warming, &[scale_in(3)]), 4);
        let settled = Counts {
            warm: 4,
            warming: 0,
            terminating: 0,
        };
        assert_eq!(resolve(4, settled, &[scale_in(3)]), 3);
    }

    #[test]
    fn terminating_instances_count_as_current_capacity_when_scaling_in() {
        // One instance already draining after the last scale-in: -1 from 4 keeps 3.
        let counts = Counts {
            warm: 3,
            warming: 0,
            terminating: 1,
        };
        let asked = current_capacity(In, counts) - 1;
        assert_eq!(resolve(3, counts, &[scale_in(asked)]), 3);
    }

    #[test]
    fn the_largest_capacity_wins_out_and_in() {
        let counts = Counts {
            warm: 4,
            warming: 0,
            terminating: 0,
        };
        // (desired, requests, expected)
        let cases: Vec<(i64, Vec<Request>, i64)> = vec![
            (4, vec![out(5), out(7)], 7),
            (4, vec![scale_in(3), scale_in(2)], 3),
            (4, vec![out(6), scale_in(2)], 6),
            (4, vec![out(3)], 4),      // a scale-out never lowers the capacity
            (4, vec![scale_in(6)], 4), // a scale-in never raises it
            (4, vec![], 4),
        ];
        for (desired, requests, want) in cases {
            assert_eq!(resolve(desired, counts, &requests), want, "{requests:?}");
        }
    }

    #[test]
    fn capacity_is_clamped_to_min_and_max() {
        // (desired, min, max, expected)
        for (desired, min, max, want) in [(6, 2, 4, 4), (1, 2, 4, 2), (3, 2, 4, 3), (0, 4, 8, 4)] {
            assert_eq!(
                clamp(desired, min, max),
                want,
                "{desired} in [{min}, {max}]"
            );
        }
    }
}
