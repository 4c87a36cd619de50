//! The group's instances, zone by zone: the state the minute loop changes with the rules
//! (`rules::placement` to launch, `rules::termination` to scale in, `rules::lifecycle` for
//! each instance's phase, `rules::credits` for its CPU credits).
//!
//! Zones are part of the state, not a detail of one rule: every instance lives in one of
//! the group's `az_count` zones, launches go where a zone is short and scale-in takes from
//! the fullest, and the counts per zone are reported minute by minute.

use crate::rules::capacity::Counts;
use crate::rules::credits::CreditAccount;
use crate::rules::lifecycle::{Instance, LONG_AGO, Timings};
use crate::rules::placement;
use crate::rules::termination::{self, Candidate};

/// One instance of the group.
#[derive(Debug, Clone, PartialEq)]
pub struct Member {
    /// Launch order: a stable name for an instance.
    pub id: usize,
    pub zone: usize,
    /// The launch template version it was launched from (one per rehearsal today; an
    /// instance refresh would add versions).
    pub template_version: u32,
    pub life: Instance,
    pub credits: CreditAccount,
}

/// The instances of the group and its zones.
#[derive(Debug, Clone, PartialEq)]
pub struct Fleet {
    pub zones: usize,
    pub members: Vec<Member>,
    next_id: usize,
    /// Surplus credits charged to instances that have left.
    pub charged_credits: f64,
}

impl Fleet {
    /// `count` instances running since long before the start, spread over `zones`.
    pub fn settled(count: usize, zones: usize, credits: CreditAccount) -> Fleet {
        let zones = zones.max(1);
        let members = placement::spread(count, zones)
            .into_iter()
            .enumerate()
            .map(|(id, zone)| Member {
                id,
                zone,
                template_version: 1,
                life: Instance::launched(LONG_AGO),
                credits,
            })
            .collect();
        Fleet {
            zones,
            members,
            next_id: count,
            charged_credits: 0.0,
        }
    }

    /// Instances not deregistered: the ones that count toward the desired capacity.
    pub fn active(&self) -> impl Iterator<Item = &Member> {
        self.members
            .iter()
            .filter(|m| m.life.draining_from.is_none())
    }

    pub fn active_count(&self) -> usize {
        self.active().count()
    }

    /// Active instances per zone.
    pub fn per_zone(&self) -> Vec<usize> {
        let mut counts = vec![0; self.zones];
        for m in self.active() {
            counts[m.zone] += 1;
        }
        counts
    }

    /// Launches one instance at `t` into the zone the placement rule picks; its zone.
    pub fn launch(&mut self, t: f64) -> usize {
        let zone = placement::launch_zone(&self.per_zone());
        self.members.push(Member {
            id: self.next_id,
            zone,
            template_version: 1,
            life: Instance::launched(t),
            credits: CreditAccount::default(),
        });
        self.next_id += 1;
        zone
    }

    /// Deregisters `n` instances at `t`, chosen by the default termination policy; their
    /// ids and zones.
    pub fn drain(&mut self, n: usize, t: f64, timings: &Timings) -> Vec<(usize, usize)> {
        let candidates: Vec<Candidate> = self
            .active()
            .map(|m| Candidate {
                id: m.id,
                zone: m.zone,
                template_version: m.template_version,
                running_secs: m.life.running_secs_at(t, timings),
            })
            .collect();
        let chosen = termination::choose_many(&candidates, &self.per_zone(), n);
        for c in &chosen {
            if let Some(m) = self.members.iter_mut().find(|m| m.id == c.id) {
                m.life.draining_from = Some(t);
            }
        }
        chosen.iter().map(|c| (c.id, c.zone)).collect()
    }

    /// Removes the instances terminated by `t`; their surplus credits are charged.
    pub fn remove_terminated(&mut self, t: f64, timings: &Timings) {
        let mut charged = 0.0;
        self.members.retain_mut(|m| {
            let gone = m.life.is_gone(t, timings);
            if gone {
                m.credits.terminate();
                charged += m.credits.charged;
            }
            !gone
        });
        self.charged_credits += charged;
    }

    /// The instances scaling decisions look at.
    pub fn counts(&self, t: f64, timings: &Timings) -> Counts {
        let mut counts = Counts::default();
        for m in &self.members {
            if m.life.is_terminating(t) {
                counts.terminating += 1;
            } else if m.life.is_warm(t, timings) {
                counts.warm += 1;
            } else {
                counts.warming += 1;
            }
        }
        counts
    }

    /// InService instances per zone.
    pub fn in_service_by_zone(&self, t: f64, timings: &Timings) -> Vec<i64> {
        let mut counts = vec![0; self.zones];
        for m in self
            .members
            .iter()
            .filter(|m| m.life.is_in_service(t, timings))
        {
            counts[m.zone] += 1;
        }
        counts
    }

    /// Surplus credits charged so far, and those still owed by the instances running.
    pub fn credits(&self) -> (f64, f64) {
        let charged =
            self.charged_credits + self.members.iter().map(|m| m.credits.charged).sum::<f64>();
        let outstanding = self.members.iter().map(|m| m.credits.surplus).sum();
        (charged, outstanding)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rules::lifecycle::EXAMPLE_TIMINGS as T;

    #[test]
    fn launches_fill_the_short_zone_and_scale_in_empties_the_full_one() {
        let mut fleet = Fleet::settled(2, 2, CreditAccount::default());
        assert_eq!(fleet.per_zone(), vec![1, 1]);
        // Three launches: zone 0, then 1, then 0.
        let zones: Vec<usize> = (0..3).map(|_| fleet.launch(120.0)).collect();
        assert_eq!(zones, vec![0, 1, 0]);
        assert_eq!(fleet.per_zone(), vec![3, 2]);
        // Scale in by 2: one from zone 0 first (3 > 2), then the zones are even.
        let drained = fleet.drain(2, 600.0, &T);
        assert_eq!(
            drained.iter().filter(|(_, z)| *z == 0).count(),
            1,
            "{drained:?}"
        );
        assert_eq!(fleet.per_zone().iter().sum::<usize>(), 3);
        let per_zone = fleet.per_zone();
        assert!(per_zone[0].abs_diff(per_zone[1]) <= 1, "{per_zone:?}");
        // Gone 30 s later (15 s delay + 15 s shutdown).
        fleet.remove_terminated(629.0, &T);
        assert_eq!(fleet.members.len(), 5);
        fleet.remove_terminated(630.0, &T);
        assert_eq!(fleet.members.len(), 3);
    }

    #[test]
    fn a_terminated_instance_pays_its_surplus() {
        let mut fleet = Fleet::settled(1, 2, CreditAccount::default());
        fleet.members[0].credits.surplus = 30.0;
        fleet.drain(1, 0.0, &T);
        fleet.remove_terminated(60.0, &T);
        assert_eq!(fleet.credits(), (30.0, 0.0));
    }
}
