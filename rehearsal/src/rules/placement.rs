//! Which Availability Zone a new instance goes to.
//!
//! Source: Amazon EC2 Auto Scaling User Guide, "Auto Scaling group Availability Zone
//! distribution" (ec2-auto-scaling-availability-zone-balanced): with the default strategy,
//! balanced best effort, "Auto Scaling maintains an equal number of instances across
//! enabled Availability Zones", launching where a zone is short; "Rebalancing activities":
//! a launch goes to the zone with the fewest instances. The group spans the `az_count`
//! zones of its subnets (infra/network.tf: one public subnet per zone). Which of several
//! equally short zones AWS picks is not documented: the rehearsal takes the first (the
//! lowest zone index), so runs are reproducible.

/// The zone for the next launch, given how many instances each zone holds (terminating
/// ones excluded: they are leaving).
pub fn launch_zone(per_zone: &[usize]) -> usize {
    launch_zone_among(per_zone, &[]).unwrap_or(0)
}

/// The same among the zones that can launch (`available[zone]`; a zone missing from it
/// can): "If the attempt fails, however, Amazon EC2 Auto Scaling attempts to launch in
/// other Availability Zones until it succeeds" ("Instance distribution"). `None` when no
/// zone can.
pub fn launch_zone_among(per_zone: &[usize], available: &[bool]) -> Option<usize> {
    per_zone
        .iter()
        .enumerate()
        .filter(|(zone, _)| available.get(*zone).copied().unwrap_or(true))
        .min_by_key(|(zone, count)| (**count, *zone))
        .map(|(zone, _)| zone)
}

/// The zones of `count` instances launched one after another into empty zones: how a
/// settled group is spread.
pub fn spread(count: usize, zones: usize) -> Vec<usize> {
    let mut per_zone = vec![0; zones.max(1)];
    (0..count)
        .map(|_| {
            let zone = launch_zone(&per_zone);
            per_zone[zone] += 1;
            zone
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_launch_goes_to_the_zone_with_the_fewest_instances() {
        // (instances per zone, expected zone)
        let cases: [(&[usize], usize); 5] = [
            (&[2, 1], 1),
            (&[1, 1], 0), // balanced: the first zone
            (&[3, 2, 2], 1),
            (&[0, 0, 0], 0),
            (&[4], 0), // one zone
        ];
        for (per_zone, want) in cases {
            assert_eq!(launch_zone(per_zone), want, "{per_zone:?}");
        }
    }

    #[test]
    fn a_zone_that_cannot_launch_is_passed_over() {
        // (instances per zone, available, expected zone)
        let cases: [(&[usize], &[bool], Option<usize>); 4] = [
            (&[0, 2], &[false, true], Some(1)), // a is dark: b, though fuller
            (&[1, 1, 1], &[true, false, true], Some(0)),
            (&[0, 0], &[false, false], None),
            (&[3, 1], &[], Some(1)), // nothing said: every zone can
        ];
        for (per_zone, available, want) in cases {
            assert_eq!(launch_zone_among(per_zone, available), want, "{per_zone:?}");
        }
    }

    #[test]
    fn a_settled_group_is_spread_evenly() {
        assert_eq!(spread(4, 2), vec![0, 1, 0, 1]);
        assert_eq!(spread(5, 3), vec![0, 1, 2, 0, 1]);
        assert_eq!(spread(2, 1), vec![0, 0]);
    }
}
