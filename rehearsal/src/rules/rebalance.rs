//! Availability Zone rebalancing: after a zone comes back, the group evens its zones out by
//! launching first and terminating afterwards.
//!
//! Source: Amazon EC2 Auto Scaling User Guide, "Amazon EC2 Auto Scaling benefits",
//! "Instance distribution" and "Rebalancing activities": "When the Availability Zone
//! recovers, Amazon EC2 Auto Scaling automatically rebalances the Auto Scaling group. It does
//! this by launching instances in the enabled Availability Zones with the fewest instances and
//! terminating instances elsewhere"; "When rebalancing, Amazon EC2 Auto Scaling launches new
//! instances before terminating the earlier ones"; to do so "the system can temporarily
//! exceed the specified maximum capacity of a group during a rebalancing activity ... by a
//! margin of 10 percent or one instance, whichever is greater". "Use different termination
//! policies": Availability Zone rebalancing terminates by the termination policy (here the
//! default: `rules::termination`).
//!
//! Readings where AWS says no more: the rebalancing starts in the minute the zone is back;
//! the earlier instances are terminated once every new one passed its first health check
//! (serves); 10 % of the maximum is rounded up.

/// The margin above `max_size` a rebalancing may use.
pub fn margin(max_size: i64) -> i64 {
    ((max_size.max(0) as f64) * 0.1).ceil().max(1.0) as i64
}

/// The zones to launch into to even out `per_zone` (active instances in each zone) over the
/// zones that are `available`, within `max_size` + the margin for `active` instances in
/// all; empty when the zones are balanced (at most one apart) or a zone is unavailable.
pub fn launches(
    per_zone: &[usize],
    available: &[bool],
    active: usize,
    max_size: i64,
) -> Vec<usize> {
    if per_zone.is_empty() || available.iter().any(|a| !a) {
        return Vec::new();
    }
    let most = per_zone.iter().copied().max().unwrap_or(0);
    let fewest = per_zone.iter().copied().min().unwrap_or(0);
    if most - fewest <= 1 {
        return Vec::new();
    }
    let total: usize = per_zone.iter().sum();
    let zones = per_zone.len();
    // The balanced spread of the same total with the fewest moves: every zone gets
    // total / zones, and the remainder stays with the fullest zones (the first of equal ones).
    let mut by_size: Vec<usize> = (0..zones).collect();
    by_size.sort_by_key(|z| (std::cmp::Reverse(per_zone[*z]), *z));
    let mut targets = vec![total / zones; zones];
    for zone in by_size.iter().take(total % zones) {
        targets[*zone] += 1;
    }
    let target = |zone: usize| targets[zone];
    let room = (max_size + margin(max_size) - active as i64).max(0) as usize;
    let mut counts = per_zone.to_vec();
    let mut out = Vec::new();
    while out.len() < room {
        let Some(zone) = (0..zones)
            .filter(|z| counts[*z] < target(*z))
            .min_by_key(|z| (counts[*z], *z))
        else {
            break;
        };
        counts[zone] += 1;
        out.push(zone);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_margin_is_ten_percent_or_one_instance() {
        for (max, want) in [(4, 1), (10, 1), (15, 2), (20, 2), (100, 10)] {
            assert_eq!(margin(max), want, "max {max}");
        }
    }

    /// (per zone, available, active, max, zones to launch into, why)
    type Case = (Vec<usize>, Vec<bool>, usize, i64, Vec<usize>, &'static str);

    #[test]
    fn a_returning_zone_gets_launches_until_the_zones_are_even() {
        let cases: Vec<Case> = vec![
            (
                vec![0, 4],
                vec![true, true],
                4,
                8,
                vec![0, 0],
                "a 0 b 4: two into a",
            ),
            (vec![2, 2], vec![true, true], 4, 8, vec![], "balanced"),
            (
                vec![1, 2],
                vec![true, true],
                3,
                8,
                vec![],
                "one apart is balanced",
            ),
            (
                vec![0, 4],
                vec![false, true],
                4,
                8,
                vec![],
                "a is still dark",
            ),
            (
                vec![0, 4],
                vec![true, true],
                4,
                4,
                vec![0],
                "at max 4: one over, the margin",
            ),
            (
                vec![0, 3, 3],
                vec![true; 3],
                6,
                10,
                vec![0, 0],
                "three zones",
            ),
            (
                vec![0, 5],
                vec![true, true],
                5,
                10,
                vec![0, 0],
                "5 over 2 zones: b keeps 3, a gets 2",
            ),
        ];
        for (per_zone, available, active, max, want, why) in cases {
            assert_eq!(launches(&per_zone, &available, active, max), want, "{why}");
        }
    }
}
