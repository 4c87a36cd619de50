//! Which instance a scale-in terminates: the default termination policy.
//!
//! Source: Amazon EC2 Auto Scaling User Guide, "Use different termination policies"
//! (ec2-auto-scaling-termination-policies), "How the default termination policy works":
//! keeping the Availability Zones balanced comes first, so the choice is made among the
//! instances of the zone(s) with the most instances; within them, instances with the
//! oldest launch template (a group with one template: those of its oldest version); then
//! the instance closest to the next billing hour; ties at random. The rehearsal breaks the
//! last ties by the lowest instance number instead of at random, so runs are reproducible.
//! Several instances leave one after another, each choice seeing the zones as the
//! previous one left them.

/// An instance that may be terminated.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Candidate {
    pub id: usize,
    pub zone: usize,
    /// The launch template version it was launched from.
    pub template_version: u32,
    /// Seconds since it entered the billed `running` state.
    pub running_secs: f64,
}

/// Seconds until the next whole billing hour of an instance that has run `running_secs`.
pub fn to_next_billing_hour(running_secs: f64) -> f64 {
    3600.0 - running_secs.max(0.0).rem_euclid(3600.0)
}

/// The instance the default termination policy picks, given how many active instances each
/// zone holds (the candidates' zones among them).
pub fn choose(candidates: &[Candidate], per_zone: &[usize]) -> Option<Candidate> {
    let zone_size = |c: &Candidate| per_zone.get(c.zone).copied().unwrap_or(0);
    let most = candidates.iter().map(zone_size).max()?;
    let in_fullest: Vec<&Candidate> = candidates.iter().filter(|c| zone_size(c) == most).collect();
    let oldest_template = in_fullest.iter().map(|c| c.template_version).min()?;
    in_fullest
        .into_iter()
        .filter(|c| c.template_version == oldest_template)
        .min_by(|a, b| {
            to_next_billing_hour(a.running_secs)
                .total_cmp(&to_next_billing_hour(b.running_secs))
                .then(a.id.cmp(&b.id))
        })
        .copied()
}

/// `n` instances to terminate, one after another.
pub fn choose_many(candidates: &[Candidate], per_zone: &[usize], n: usize) -> Vec<Candidate> {
    let mut left = candidates.to_vec();
    let mut zones = per_zone.to_vec();
    let mut chosen = Vec::with_capacity(n);
    for _ in 0..n {
        let Some(pick) = choose(&left, &zones) else {
            break;
        };
        left.retain(|c| c.id != pick.id);
        if let Some(count) = zones.get_mut(pick.zone) {
            *count = count.saturating_sub(1);
        }
        chosen.push(pick);
    }
    chosen
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(id: usize, zone: usize, template_version: u32, running_secs: f64) -> Candidate {
        Candidate {
            id,
            zone,
            template_version,
            running_secs,
        }
    }

    #[test]
    fn the_default_policy_balances_zones_then_template_then_billing_hour() {
        // (candidates, instances per zone, expected id, why)
        let cases: Vec<(Vec<Candidate>, Vec<usize>, usize, &str)> = vec![
            (
                vec![c(0, 0, 1, 9000.0), c(1, 1, 1, 100.0), c(2, 1, 1, 200.0)],
                vec![1, 2],
                2,
                "zone 1 has more instances: not the oldest instance (0) but one of zone 1",
            ),
            (
                vec![c(0, 0, 2, 100.0), c(1, 1, 1, 100.0)],
                vec![1, 1],
                1,
                "balanced zones: the oldest launch template first",
            ),
            (
                vec![c(0, 0, 1, 3000.0), c(1, 1, 1, 3500.0), c(2, 0, 1, 600.0)],
                vec![2, 1],
                0,
                "in zone 0, 3,000 s of running is 600 s from its next hour, 600 s is 3,000 s away",
            ),
            (
                vec![c(3, 0, 1, 500.0), c(1, 1, 1, 500.0)],
                vec![1, 1],
                1,
                "a full tie: the lowest instance number",
            ),
        ];
        for (candidates, per_zone, want, why) in cases {
            let got = choose(&candidates, &per_zone).map(|c| c.id);
            assert_eq!(got, Some(want), "{why}");
        }
        assert_eq!(choose(&[], &[0, 0]), None);
    }

    #[test]
    fn several_terminations_keep_the_zones_balanced() {
        // 3 instances in zone 0, 1 in zone 1: removing two leaves one in each zone.
        let candidates = vec![
            c(0, 0, 1, 10.0),
            c(1, 0, 1, 20.0),
            c(2, 0, 1, 30.0),
            c(3, 1, 1, 40.0),
        ];
        let chosen: Vec<usize> = choose_many(&candidates, &[3, 1], 2)
            .iter()
            .map(|c| c.id)
            .collect();
        assert_eq!(
            chosen,
            vec![2, 1],
            "both from zone 0, closest to the hour first"
        );
        let three: Vec<usize> = choose_many(&candidates, &[3, 1], 3)
            .iter()
            .map(|c| c.zone)
            .collect();
        // Then the zones are even (1 and 1): the one closer to its next hour, in zone 1.
        assert_eq!(three, vec![0, 0, 1]);
    }

    #[test]
    fn the_next_billing_hour_is_counted_from_running() {
        for (running, want) in [
            (0.0, 3600.0),
            (3599.0, 1.0),
            (3600.0, 3600.0),
            (5400.0, 1800.0),
        ] {
            assert_eq!(to_next_billing_hour(running), want, "{running}");
        }
    }
}
