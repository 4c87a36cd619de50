//! The group's instances, zone by zone: the state the minute loop changes with the rules
//! (`rules::placement` to launch, `rules::termination` to scale in, `rules::lifecycle` for
//! each instance's phase, `rules::credits` for its CPU credits).
//!
//! Zones are part of the state, not a detail of one rule: every instance lives in one of
//! the group's `az_count` zones, launches go where a zone is short and scale-in takes from
//! the fullest, and the counts per zone are reported minute by minute.
//!
//! Failures act on the same state: an instance that stops answering carries an outage
//! (`rules::health` says when the load balancer stops routing to it and when the group
//! replaces it), a zone that goes dark takes every instance in it and refuses launches, and
//! when it comes back the group rebalances (`rules::rebalance`).

use crate::rules::alb::Targets;
use crate::rules::capacity::Counts;
use crate::rules::credits::CreditAccount;
use crate::rules::health::{self, HealthCheck, Replacement};
use crate::rules::lifecycle::{Instance, LONG_AGO, Timings};
use crate::rules::metric::MinuteSamples;
use crate::rules::placement;
use crate::rules::rebalance;
use crate::rules::termination::{self, Candidate};

/// Zone names as the console shows their suffixes: a, b, c...
pub fn zone_name(zone: usize) -> char {
    char::from(b'a' + (zone % 26) as u8)
}

/// Why an instance stopped answering.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutageKind {
    /// The instance itself (`--fail instance@...`): it still runs, so EC2 still measures
    /// its CPU, idle.
    Instance,
    /// Its zone went dark (`--fail-az`): nothing reaches it, no datapoint leaves it.
    Zone,
}

/// When an instance does not answer: from `from` until `until` (never, if `None`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Outage {
    pub kind: OutageKind,
    pub from: f64,
    pub until: Option<f64>,
}

impl Outage {
    pub fn covers(&self, t: f64) -> bool {
        self.from <= t && self.until.is_none_or(|u| t < u)
    }
}

/// Why an instance was launched.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Launch {
    /// The desired capacity asked for it (or it was there at the start).
    Capacity,
    /// It replaces an unhealthy instance.
    Replacement,
    /// A rebalancing launched it ahead of terminating another elsewhere.
    Rebalance,
}

/// Seconds of the intersection of half-open intervals.
fn span(parts: &[(f64, f64)]) -> f64 {
    let start = parts.iter().map(|p| p.0).fold(f64::NEG_INFINITY, f64::max);
    let end = parts.iter().map(|p| p.1).fold(f64::INFINITY, f64::min);
    (end - start).max(0.0)
}

/// What a rebalancing did this minute.
#[derive(Debug, Clone, PartialEq)]
pub enum Rebalancing {
    Idle,
    /// Launched into these zones, ahead of terminations.
    Launched(Vec<usize>),
    /// Its new instances serve: as many may now be terminated elsewhere.
    Served(usize),
}

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
    pub outage: Option<Outage>,
    pub launch: Launch,
}

impl Member {
    /// Seconds of the minute starting at `t` the load balancer routes to it, of those it
    /// answers, and the seconds it is registered but found unhealthy.
    pub fn routing_secs(&self, t: f64, timings: &Timings, check: &HealthCheck) -> (f64, f64, f64) {
        let window = (t, t + 60.0);
        let serving = (
            self.life.serving_from(timings),
            self.life.draining_from.unwrap_or(f64::INFINITY),
        );
        let registered = span(&[window, serving]);
        let Some(o) = self.outage else {
            return (registered, registered, 0.0);
        };
        let down = (o.from, o.until.unwrap_or(f64::INFINITY));
        let found = o.from + check.detection_secs();
        // Unhealthy from the verdict until it has answered long enough again (never, if it
        // came back before the verdict).
        let unhealthy = match o.until {
            Some(until) if until <= found => (0.0, 0.0),
            Some(until) => (found, until + check.recovery_secs()),
            None => (found, f64::INFINITY),
        };
        let not_routed = span(&[window, serving, unhealthy]);
        let routed = registered - not_routed;
        let unanswered = span(&[window, serving, down]) - span(&[window, serving, down, unhealthy]);
        (routed, routed - unanswered, not_routed)
    }

    fn down_at(&self, t: f64) -> bool {
        self.outage.is_some_and(|o| o.covers(t))
    }

    fn down_during(&self, t: f64) -> Option<OutageKind> {
        self.outage
            .filter(|o| span(&[(t, t + 60.0), (o.from, o.until.unwrap_or(f64::INFINITY))]) > 0.0)
            .map(|o| o.kind)
    }
}

/// The instances of the group and its zones.
#[derive(Debug, Clone, PartialEq)]
pub struct Fleet {
    pub zones: usize,
    pub members: Vec<Member>,
    next_id: usize,
    /// Surplus credits charged to instances that have left.
    pub charged_credits: f64,
    /// Per zone: dark since (seconds), or `None` when it is up.
    pub dark_since: Vec<Option<f64>>,
    /// Instances a rebalancing launched above the desired capacity, until they serve.
    pub rebalance_extra: usize,
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
                outage: None,
                launch: Launch::Capacity,
            })
            .collect();
        Fleet {
            zones,
            members,
            next_id: count,
            charged_credits: 0.0,
            dark_since: vec![None; zones],
            rebalance_extra: 0,
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

    /// Zones that can launch (not dark).
    pub fn available(&self) -> Vec<bool> {
        self.dark_since.iter().map(Option::is_none).collect()
    }

    /// Launches one instance at `t` into the zone the placement rule picks among those that
    /// can launch; its zone, or `None` when every zone is dark.
    pub fn launch(&mut self, t: f64, why: Launch) -> Option<usize> {
        let zone = placement::launch_zone_among(&self.per_zone(), &self.available())?;
        self.launch_into(zone, t, why);
        Some(zone)
    }

    fn launch_into(&mut self, zone: usize, t: f64, why: Launch) {
        self.members.push(Member {
            id: self.next_id,
            zone,
            template_version: 1,
            life: Instance::launched(t),
            credits: CreditAccount::default(),
            outage: None,
            launch: why,
        });
        self.next_id += 1;
    }

    /// `n` InService instances stop answering at `t`: the longest-running ones (lowest
    /// instance numbers) that still answer. Their ids and zones.
    pub fn fail_instances(&mut self, n: usize, t: f64, timings: &Timings) -> Vec<(usize, usize)> {
        let mut failed = Vec::new();
        for m in self.members.iter_mut().filter(|m| {
            m.life.draining_from.is_none() && m.life.is_in_service(t, timings) && !m.down_at(t)
        }) {
            if failed.len() == n {
                break;
            }
            m.outage = Some(Outage {
                kind: OutageKind::Instance,
                from: t,
                until: None,
            });
            failed.push((m.id, m.zone));
        }
        failed
    }

    /// Zone `zone` goes dark at `t`: every instance in it stops answering; how many.
    pub fn darken(&mut self, zone: usize, t: f64) -> usize {
        if let Some(slot) = self.dark_since.get_mut(zone) {
            *slot = Some(t);
        }
        let mut hit = 0;
        for m in self
            .members
            .iter_mut()
            .filter(|m| m.zone == zone && !m.down_at(t))
        {
            m.outage = Some(Outage {
                kind: OutageKind::Zone,
                from: t,
                until: None,
            });
            hit += 1;
        }
        hit
    }

    /// Zone `zone` is back at `t`: its instances that are still in the group answer again.
    pub fn restore(&mut self, zone: usize, t: f64) {
        if let Some(slot) = self.dark_since.get_mut(zone) {
            *slot = None;
        }
        for m in self.members.iter_mut().filter(|m| m.zone == zone) {
            if let Some(o) = m
                .outage
                .as_mut()
                .filter(|o| o.kind == OutageKind::Zone && o.until.is_none())
            {
                o.until = Some(t);
            }
        }
    }

    /// Active instances that do not answer at `t`.
    pub fn not_answering(&self, t: f64) -> i64 {
        self.active().filter(|m| m.down_at(t)).count() as i64
    }

    /// The minute's targets as the load balancer sees them.
    pub fn targets(&self, t: f64, timings: &Timings, check: &HealthCheck) -> Targets {
        let mut targets = Targets::default();
        for m in &self.members {
            let (routed, answering, unhealthy) = m.routing_secs(t, timings, check);
            targets.routed += routed / 60.0;
            targets.answering += answering / 60.0;
            targets.unhealthy += unhealthy / 60.0;
        }
        targets
    }

    /// The group's CPU samples of the minute starting at `t`: every warm InService instance
    /// at `busy_percent`, one that stopped answering by itself at `idle_percent` (it runs
    /// and serves nothing), none from a dark zone.
    pub fn cpu_samples(
        &self,
        t: f64,
        timings: &Timings,
        busy_percent: f64,
        idle_percent: f64,
    ) -> MinuteSamples {
        let mut samples = MinuteSamples::default();
        for m in self.members.iter().filter(|m| m.life.is_warm(t, timings)) {
            let value = match m.down_during(t) {
                None => busy_percent,
                Some(OutageKind::Instance) => idle_percent,
                Some(OutageKind::Zone) => continue,
            };
            samples.sum += value;
            samples.count += 1.0;
        }
        samples
    }

    /// The unhealthy instances the group replaces at `t` (the desired capacity `desired`),
    /// deregistered now: their ids, zones and when they stopped answering. Their
    /// replacements are launched by the next reconciliation (`Launch::Replacement`).
    pub fn replace_unhealthy(
        &mut self,
        t: f64,
        desired: i64,
        timings: &Timings,
        check: &HealthCheck,
        replacement: &Replacement,
    ) -> Vec<(usize, usize, f64)> {
        let mut eligible: Vec<(f64, usize)> = self
            .active()
            .filter_map(|m| {
                let o = m.outage?;
                let marked =
                    health::marked_at(o.from, m.life.in_service_at(timings), check, replacement);
                (marked <= t && o.covers(marked)).then_some((marked, m.id))
            })
            .collect();
        eligible.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
        let in_progress = self
            .active()
            .filter(|m| m.launch == Launch::Replacement && !m.life.is_warm(t, timings))
            .count();
        let n = health::replace_now(eligible.len(), desired, in_progress);
        let mut replaced = Vec::with_capacity(n);
        for (_, id) in eligible.into_iter().take(n) {
            if let Some(m) = self.members.iter_mut().find(|m| m.id == id) {
                m.life.draining_from = Some(t);
                replaced.push((m.id, m.zone, m.outage.map_or(t, |o| o.from)));
            }
        }
        replaced
    }

    /// Availability Zone rebalancing at `t`: launches into the short zones when every zone is
    /// up and they are uneven, then, once those serve, lets as many go elsewhere.
    pub fn rebalance(&mut self, t: f64, max_size: i64, timings: &Timings) -> Rebalancing {
        if self.rebalance_extra > 0 {
            let waiting = self
                .active()
                .any(|m| m.launch == Launch::Rebalance && m.life.serving_from(timings) > t);
            if waiting {
                return Rebalancing::Idle;
            }
            let done = self.rebalance_extra;
            self.rebalance_extra = 0;
            for m in &mut self.members {
                if m.launch == Launch::Rebalance {
                    m.launch = Launch::Capacity;
                }
            }
            return Rebalancing::Served(done);
        }
        let zones = rebalance::launches(
            &self.per_zone(),
            &self.available(),
            self.active_count(),
            max_size,
        );
        for zone in &zones {
            self.launch_into(*zone, t, Launch::Rebalance);
        }
        self.rebalance_extra = zones.len();
        if zones.is_empty() {
            Rebalancing::Idle
        } else {
            Rebalancing::Launched(zones)
        }
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
        let zones: Vec<Option<usize>> = (0..3)
            .map(|_| fleet.launch(120.0, Launch::Capacity))
            .collect();
        assert_eq!(zones, vec![Some(0), Some(1), Some(0)]);
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

    const CHECK: HealthCheck = HealthCheck {
        interval_secs: 5.0,
        unhealthy_threshold: 2.0,
        healthy_threshold: 2.0,
    };

    #[test]
    fn a_target_that_stops_answering_is_routed_to_until_found_unhealthy() {
        let mut fleet = Fleet::settled(4, 2, CreditAccount::default());
        assert_eq!(fleet.darken(0, 300.0), 2);
        // (minute start, routed, answering, unhealthy), in target-minutes
        let cases = [
            (240.0, 4.0, 4.0, 0.0),
            (300.0, 2.0 + 2.0 * 10.0 / 60.0, 2.0, 2.0 * 50.0 / 60.0),
            (360.0, 2.0, 2.0, 2.0),
        ];
        for (t, routed, answering, unhealthy) in cases {
            let got = fleet.targets(t, &T, &CHECK);
            assert!((got.routed - routed).abs() < 1e-9, "{t}: {got:?}");
            assert!((got.answering - answering).abs() < 1e-9, "{t}: {got:?}");
            assert!((got.unhealthy - unhealthy).abs() < 1e-9, "{t}: {got:?}");
        }
        assert_eq!(fleet.not_answering(300.0), 2);
        assert_eq!(
            fleet.launch(300.0, Launch::Capacity),
            Some(1),
            "a is dark: b"
        );
        // Back at 420 s: answering at once, routed to again after two passing checks (and
        // the instance launched in b at 300 s serves since 365 s).
        fleet.restore(0, 420.0);
        let got = fleet.targets(420.0, &T, &CHECK);
        assert!(
            (got.routed - (3.0 + 2.0 * 50.0 / 60.0)).abs() < 1e-9,
            "{got:?}"
        );
        assert!((got.answering - got.routed).abs() < 1e-9, "{got:?}");
        assert_eq!(fleet.not_answering(420.0), 0);
    }

    #[test]
    fn an_outage_shorter_than_the_verdict_only_loses_its_own_seconds() {
        let mut fleet = Fleet::settled(2, 2, CreditAccount::default());
        fleet.darken(0, 300.0);
        fleet.restore(0, 305.0);
        let got = fleet.targets(300.0, &T, &CHECK);
        assert!(
            (got.routed - 2.0).abs() < 1e-9,
            "never found unhealthy: {got:?}"
        );
        assert!((got.answering - (2.0 - 5.0 / 60.0)).abs() < 1e-9, "{got:?}");
    }

    #[test]
    fn unhealthy_instances_are_replaced_one_batch_at_a_time() {
        let replacement = Replacement {
            elb_health_checks: true,
            grace_secs: 120.0,
            unhealthy_replace_secs: 60.0,
            status_check_replace_secs: 300.0,
        };
        let mut fleet = Fleet::settled(4, 2, CreditAccount::default());
        fleet.darken(0, 300.0);
        // Found at 310, marked at 370: nothing at 360, one of the two at 420.
        assert!(
            fleet
                .replace_unhealthy(360.0, 4, &T, &CHECK, &replacement)
                .is_empty()
        );
        let first = fleet.replace_unhealthy(420.0, 4, &T, &CHECK, &replacement);
        assert_eq!(first, vec![(0, 0, 300.0)]);
        assert_eq!(fleet.launch(420.0, Launch::Replacement), Some(1));
        // The replacement warms up at 420 + 60 + 90 = 570: the second waits until then.
        assert!(
            fleet
                .replace_unhealthy(540.0, 4, &T, &CHECK, &replacement)
                .is_empty()
        );
        let second = fleet.replace_unhealthy(600.0, 4, &T, &CHECK, &replacement);
        assert_eq!(second, vec![(2, 0, 300.0)]);
    }

    #[test]
    fn a_zone_back_is_rebalanced_launch_first() {
        let mut fleet = Fleet::settled(0, 2, CreditAccount::default());
        for _ in 0..4 {
            fleet.launch_into(1, LONG_AGO, Launch::Capacity);
        }
        assert_eq!(
            fleet.rebalance(900.0, 8, &T),
            Rebalancing::Launched(vec![0, 0])
        );
        assert_eq!((fleet.active_count(), fleet.rebalance_extra), (6, 2));
        // Serving from 900 + 60 + 5 = 965: not yet at 960.
        assert_eq!(fleet.rebalance(960.0, 8, &T), Rebalancing::Idle);
        assert_eq!(fleet.rebalance(1020.0, 8, &T), Rebalancing::Served(2));
        assert_eq!(fleet.rebalance_extra, 0);
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
