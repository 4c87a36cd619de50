//! One minute's requests: where they go (`rules::alb`) and what each instance does with its
//! share (`rules::queueing`).
//!
//! A request fails in one of three ways: its instance is overloaded and the service answers
//! 503 after the request timeout; it was sent to a target that no longer answers, or to the
//! load balancer node of a dark zone, and fails after the 10 s connection timeout; there is
//! no target at all and the load balancer answers 503 at once.

use crate::rules::alb::{self, Targets};
use crate::rules::queueing::{Performance, Station};

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
    pub served_rps: f64,
    pub failed_rps: f64,
    /// The live instances' queue (latency, utilisation), when any instance answered.
    pub performance: Option<Performance>,
}

/// The minute with `offered_rps` requests per second.
pub fn minute(offered_rps: f64, capacity: &Capacity) -> Minute {
    let (o, performance) = capacity.outcomes(offered_rps);
    Minute {
        served_rps: o.served,
        failed_rps: o.failed(),
        performance,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
    fn the_excess_over_the_answering_capacity_fails() {
        let m = minute(400.0, &two_instances());
        assert!(
            close(m.served_rps, 300.0) && close(m.failed_rps, 100.0),
            "{m:?}"
        );
    }

    #[test]
    fn requests_to_a_dark_node_or_a_silent_target_fail_and_none_without_targets_are_served() {
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
        let m = minute(200.0, &half_dark);
        assert!(
            close(m.served_rps, 50.0) && close(m.failed_rps, 150.0),
            "{m:?}"
        );
        let none = Capacity {
            targets: Targets::default(),
            ..two_instances()
        };
        let m = minute(100.0, &none);
        assert!(
            close(m.served_rps, 0.0) && close(m.failed_rps, 100.0),
            "{m:?}"
        );
        assert!(m.performance.is_none());
    }
}
