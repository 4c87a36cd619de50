//! The load balancer spreads requests evenly over the targets it routes to, across zones.
//!
//! Sources: Elastic Load Balancing, "Application Load Balancers" (the default routing
//! algorithm is round robin), "Cross-zone load balancing for target groups" ("With
//! Application Load Balancers, cross-zone load balancing is always turned on at the load
//! balancer level"; a target group follows it unless it turns it off: every node spreads over
//! the targets of every zone), "How ELB works" ("If one Availability Zone becomes unavailable
//! or has no healthy targets, the load balancer can route traffic to the healthy targets in
//! another Availability Zone"; the load balancer's DNS name has a TTL of 60 seconds) and
//! "Health checks for Application Load Balancer target groups" ("Each load balancer node
//! routes requests only to the healthy targets"; "if all targets fail health checks at the
//! same time in all enabled Availability Zones, the load balancer fails open": it sends to
//! all of them). "Troubleshoot your Application Load Balancers": a target that does not
//! accept the connection gets an HTTP 504 "before the connection timeout expired (10
//! seconds)"; with no registered target the load balancer answers 503 at once.
//!
//! With identical targets every routed target gets 1/n of the requests. Within a minute the
//! targets change (a new one healthy 5 s in, one that stopped answering routed to until the
//! load balancer's verdict 10 s in): n is averaged over the minute, in target-minutes, and a
//! request routed to a target that no longer answers fails.

/// Seconds the load balancer tries to connect to a target before answering 504.
pub const CONNECT_TIMEOUT_SECS: f64 = 10.0;

/// Requests per second each serving target receives, or `None` when no target serves.
pub fn per_target_rps(offered_rps: f64, serving: f64) -> Option<f64> {
    (serving > 1e-9).then(|| offered_rps / serving)
}

/// The targets of one minute, in target-minutes (60 target-seconds each).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Targets {
    /// Routed to by the load balancer: registered and not (yet) found unhealthy.
    pub routed: f64,
    /// Of those, answering.
    pub answering: f64,
    /// Registered but found unhealthy: where a failing-open load balancer sends requests.
    pub unhealthy: f64,
}

/// Where one minute's requests go.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Routing {
    /// Requests per second each routed target receives (`None`: no target at all).
    pub per_target_rps: Option<f64>,
    /// Target-minutes that answer.
    pub answering: f64,
    /// Requests per second sent to targets that do not answer (they fail after the
    /// connection timeout).
    pub unanswered_rps: f64,
    /// Whether the load balancer failed open (every registered target unhealthy).
    pub failed_open: bool,
}

/// How `offered_rps` is routed over `targets`.
pub fn route(offered_rps: f64, targets: Targets) -> Routing {
    let (routed, answering, failed_open) = if targets.routed > 1e-9 {
        (targets.routed, targets.answering, false)
    } else if targets.unhealthy > 1e-9 {
        // Failing open: every registered target, none of which answers.
        (targets.unhealthy, 0.0, true)
    } else {
        (0.0, 0.0, false)
    };
    match per_target_rps(offered_rps, routed) {
        Some(rps) => Routing {
            per_target_rps: Some(rps),
            answering,
            unanswered_rps: rps * (routed - answering).max(0.0),
            failed_open,
        },
        None => Routing {
            per_target_rps: None,
            answering: 0.0,
            unanswered_rps: 0.0,
            failed_open: false,
        },
    }
}

/// The share of a minute's requests sent to the load balancer node of a zone that went dark:
/// clients spread over the nodes' addresses (one per zone of `zones`), and those holding the
/// dark node's keep using it for `failover_secs` after the zone went dark (`dark_secs_before`
/// seconds before the minute started).
pub fn dark_node_share(zones: usize, dark_secs_before: f64, failover_secs: f64) -> f64 {
    let remaining = (failover_secs - dark_secs_before.max(0.0)).clamp(0.0, 60.0);
    remaining / 60.0 / zones.max(1) as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_are_shared_evenly() {
        // (offered, serving targets, per target)
        let cases = [
            (600.0, 4.0, Some(150.0)),
            (1000.0, 2.5, Some(400.0)),
            (300.0, 0.0, None),
        ];
        for (offered, serving, want) in cases {
            assert_eq!(
                per_target_rps(offered, serving),
                want,
                "{offered} over {serving}"
            );
        }
    }

    #[test]
    fn targets_that_stopped_answering_get_their_share_until_found_unhealthy() {
        let t = |routed, answering, unhealthy| Targets {
            routed,
            answering,
            unhealthy,
        };
        // (offered, targets, per target, unanswered, failed open, why)
        let cases = [
            (
                280.0,
                t(4.0, 4.0, 0.0),
                Some(70.0),
                0.0,
                false,
                "all healthy",
            ),
            (
                280.0,
                // Two of four stop at the minute's start, found unhealthy 10 s in.
                t(2.0 + 2.0 * 10.0 / 60.0, 2.0, 0.0),
                Some(120.0),
                40.0,
                false,
                "two dark for 10 s each: 280 / 2.333",
            ),
            (
                120.0,
                t(0.0, 0.0, 2.0),
                Some(60.0),
                120.0,
                true,
                "every target unhealthy: fail open, nothing answers",
            ),
            (
                120.0,
                t(0.0, 0.0, 0.0),
                None,
                0.0,
                false,
                "no target: 503 at once",
            ),
        ];
        for (offered, targets, per_target, unanswered, open, why) in cases {
            let r = route(offered, targets);
            let per = r.per_target_rps.map(|v| (v * 1e9).round() / 1e9);
            assert_eq!(per, per_target, "{why}");
            assert!((r.unanswered_rps - unanswered).abs() < 1e-9, "{why}: {r:?}");
            assert_eq!(r.failed_open, open, "{why}");
        }
    }

    #[test]
    fn clients_of_a_dark_zone_s_node_fail_until_their_dns_answer_expires() {
        // (zones, seconds dark before the minute, failover, share)
        for (zones, before, failover, want) in [
            (2, 0.0, 60.0, 0.5),
            (2, 60.0, 60.0, 0.0),
            (2, 30.0, 60.0, 0.25),
            (3, 0.0, 60.0, 1.0 / 3.0),
            (2, 0.0, 0.0, 0.0),
            (2, 0.0, 120.0, 0.5),
        ] {
            assert!(
                (dark_node_share(zones, before, failover) - want).abs() < 1e-12,
                "{zones} zones, {before} s before"
            );
        }
    }
}
