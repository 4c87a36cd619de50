//! One minute's requests: where they go (`rules::alb`), what each instance does with its
//! share (`rules::queueing`), and, when the clients retry (`rules::retry`), the retries that
//! come back within the minute or in the next one.
//!
//! A request fails in one of three ways, each after its own time (what the retry's timing
//! counts from): its instance is overloaded and the service answers 503 after the request
//! timeout; it was sent to a target that no longer answers, or to the load balancer node of
//! a dark zone, and fails after the 10 s connection timeout; there is no target at all and
//! the load balancer answers 503 at once.
//!
//! With retries, the requests of a minute are its first attempts, the retries carried from
//! the previous minute and the retries of its own failures that land in it; those raise the
//! load, which raises the failures: the minute is solved as a fixed point (every attempt of
//! the minute fails with the same probability, the load's). A request whose last allowed
//! attempt fails has failed for good.

use crate::rules::alb::{self, CONNECT_TIMEOUT_SECS, Targets};
use crate::rules::queueing::{Performance, Station};
use crate::rules::retry::RetryPolicy;

/// What the load balancer and the instances can do with a minute's requests.
#[derive(Debug, Clone, Copy)]
pub struct Capacity {
    pub targets: Targets,
    /// Share of the requests sent to the load balancer node of a dark zone.
    pub dark_node_share: f64,
    pub station: Station,
}

/// Requests per second of each outcome for a given load.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
struct Outcomes {
    served: f64,
    /// 503 after the request timeout (overload).
    timed_out: f64,
    /// No connection (a target or a node that does not answer).
    unconnected: f64,
    /// No target: 503 at once.
    refused: f64,
}

impl Outcomes {
    fn failed(&self) -> f64 {
        self.timed_out + self.unconnected + self.refused
    }
}

impl Capacity {
    fn outcomes(&self, load: f64) -> (Outcomes, Option<Performance>) {
        let dark = load * self.dark_node_share;
        let routing = alb::route(load - dark, self.targets);
        let Some(per_target) = routing.per_target_rps else {
            return (
                Outcomes {
                    unconnected: dark,
                    refused: load - dark,
                    ..Outcomes::default()
                },
                None,
            );
        };
        let performance = (routing.answering > 1e-9).then(|| self.station.perform(per_target));
        let (served, timed_out) = performance.map_or((0.0, 0.0), |p| {
            (
                p.served_rps * routing.answering,
                p.failed_rps * routing.answering,
            )
        });
        (
            Outcomes {
                served,
                timed_out,
                unconnected: dark + routing.unanswered_rps,
                refused: 0.0,
            },
            performance,
        )
    }
}

/// One minute's traffic.
#[derive(Debug, Clone, PartialEq)]
pub struct Minute {
    /// Requests per second arriving this minute, first attempts and retries.
    pub arrivals_rps: f64,
    pub retry_rps: f64,
    pub served_rps: f64,
    /// Attempts that failed.
    pub failed_rps: f64,
    /// Requests whose last allowed attempt failed.
    pub failed_for_good_rps: f64,
    /// The live instances' queue (latency, utilisation), when any instance answered.
    pub performance: Option<Performance>,
}

/// The retries in flight between minutes, by attempt number (1: the first retry).
#[derive(Debug, Clone, Default)]
pub struct Retries {
    policy: Option<RetryPolicy>,
    /// Requests per second arriving next minute, by attempt number (index 0 unused).
    carried: Vec<f64>,
}

impl Retries {
    pub fn new(policy: Option<RetryPolicy>) -> Retries {
        let attempts = policy.map_or(0, |p| p.retries as usize);
        Retries {
            policy: policy.filter(|p| p.retries > 0),
            carried: vec![0.0; attempts + 1],
        }
    }

    /// Retries still waiting when the load ends, per second of a minute.
    pub fn pending_rps(&self) -> f64 {
        self.carried.iter().sum()
    }

    /// The minute with `first_rps` first attempts, request timeout `timeout_secs`.
    pub fn minute(&mut self, first_rps: f64, capacity: &Capacity, timeout_secs: f64) -> Minute {
        let Some(policy) = self.policy else {
            let (o, performance) = capacity.outcomes(first_rps);
            return Minute {
                arrivals_rps: first_rps,
                retry_rps: 0.0,
                served_rps: o.served,
                failed_rps: o.failed(),
                failed_for_good_rps: o.failed(),
                performance,
            };
        };
        let last = policy.retries as usize;
        let carried = std::mem::replace(&mut self.carried, vec![0.0; last + 1]);
        let latency = [timeout_secs, CONNECT_TIMEOUT_SECS, 0.0];
        let mut arrivals = carried.clone();
        arrivals[0] = first_rps;
        let mut next = vec![0.0; last + 1];
        let (mut outcomes, mut performance) = capacity.outcomes(first_rps);
        // Each pass adds the same-minute retries of the last pass's failures; the load only
        // grows, and at most `last` generations fit in a minute.
        for _ in 0..=(4 * last + 16) {
            let load: f64 = arrivals.iter().sum();
            (outcomes, performance) = capacity.outcomes(load);
            let shares = if load > 0.0 {
                [
                    outcomes.timed_out / load,
                    outcomes.unconnected / load,
                    outcomes.refused / load,
                ]
            } else {
                [0.0; 3]
            };
            let mut same = vec![0.0; last + 1];
            next.iter_mut().for_each(|v| *v = 0.0);
            for k in 0..last {
                for (share, after) in shares.iter().zip(latency) {
                    let failed = arrivals[k] * share;
                    let later = policy.next_minute_share(k as u32 + 1, after);
                    same[k + 1] += failed * (1.0 - later);
                    next[k + 1] += failed * later;
                }
            }
            let updated: Vec<f64> = (0..=last)
                .map(|k| {
                    if k == 0 {
                        first_rps
                    } else {
                        carried[k] + same[k]
                    }
                })
                .collect();
            let change: f64 = updated
                .iter()
                .zip(&arrivals)
                .map(|(a, b)| (a - b).abs())
                .sum();
            arrivals = updated;
            if change <= 1e-9 * (1.0 + load) {
                break;
            }
        }
        let load: f64 = arrivals.iter().sum();
        let failed_share = if load > 0.0 {
            outcomes.failed() / load
        } else {
            0.0
        };
        self.carried = next;
        Minute {
            arrivals_rps: load,
            retry_rps: load - first_rps,
            served_rps: outcomes.served,
            failed_rps: outcomes.failed(),
            failed_for_good_rps: arrivals[last] * failed_share,
            performance,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rules::retry::Backoff;

    /// Two instances of 150 rps each (2 vCPUs, 2/150 s a request), all healthy.
    fn two_instances() -> Capacity {
        Capacity {
            targets: Targets {
                routed: 2.0,
                answering: 2.0,
                unhealthy: 0.0,
            },
            dark_node_share: 0.0,
            station: Station {
                servers: 2,
                service_secs: 2.0 / 150.0,
                timeout_secs: 60.0,
                fixed_secs: 0.0,
            },
        }
    }

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-6
    }

    #[test]
    fn without_retries_the_excess_fails_for_good() {
        let mut r = Retries::new(None);
        let m = r.minute(400.0, &two_instances(), 60.0);
        assert!(
            close(m.served_rps, 300.0) && close(m.failed_for_good_rps, 100.0),
            "{m:?}"
        );
        assert_eq!(m.retry_rps, 0.0);
    }

    #[test]
    fn requests_to_a_dark_node_or_a_silent_target_fail_and_none_without_targets_are_served() {
        let mut r = Retries::new(None);
        // Half the requests at a dark zone's node; of the rest, one of two targets silent.
        let half_dark = Capacity {
            targets: Targets {
                routed: 2.0,
                answering: 1.0,
                unhealthy: 0.0,
            },
            dark_node_share: 0.5,
            ..two_instances()
        };
        let m = r.minute(200.0, &half_dark, 60.0);
        assert!(
            close(m.served_rps, 50.0) && close(m.failed_for_good_rps, 150.0),
            "{m:?}"
        );
        let none = Capacity {
            targets: Targets::default(),
            ..two_instances()
        };
        let m = r.minute(100.0, &none, 60.0);
        assert!(
            close(m.served_rps, 0.0) && close(m.failed_for_good_rps, 100.0),
            "{m:?}"
        );
        assert!(m.performance.is_none());
    }

    #[test]
    fn retries_of_a_timed_out_minute_come_back_the_next_minute() {
        // A 60 s timeout: every retry lands in the next minute.
        let policy = RetryPolicy {
            retries: 3,
            backoff: Backoff::Fixed,
            base_secs: 1.0,
            max_backoff_secs: 20.0,
        };
        let mut r = Retries::new(Some(policy));
        let c = two_instances();
        let m1 = r.minute(400.0, &c, 60.0);
        assert!(
            close(m1.failed_rps, 100.0) && close(m1.failed_for_good_rps, 0.0),
            "{m1:?}"
        );
        // 290 first attempts and the 100 retries: 390, 90 fail (66.9 first attempts
        // retried once more, 23.1 first retries retried a second time).
        let m2 = r.minute(290.0, &c, 60.0);
        assert!(
            close(m2.arrivals_rps, 390.0) && close(m2.retry_rps, 100.0),
            "{m2:?}"
        );
        assert!(close(m2.failed_rps, 90.0), "{m2:?}");
        let m3 = r.minute(290.0, &c, 60.0);
        assert!(close(m3.arrivals_rps, 380.0), "{m3:?}");
    }

    #[test]
    fn with_no_target_every_attempt_fails_at_once_and_is_retried_within_the_minute() {
        let policy = RetryPolicy {
            retries: 2,
            backoff: Backoff::Fixed,
            base_secs: 0.0,
            max_backoff_secs: 20.0,
        };
        let mut r = Retries::new(Some(policy));
        let none = Capacity {
            targets: Targets::default(),
            ..two_instances()
        };
        let m = r.minute(100.0, &none, 10.0);
        // Immediate failures, retried at once: three attempts each, all in the minute.
        assert!(
            close(m.arrivals_rps, 300.0) && close(m.failed_for_good_rps, 100.0),
            "{m:?}"
        );
        assert!(close(r.pending_rps(), 0.0));
    }
}
