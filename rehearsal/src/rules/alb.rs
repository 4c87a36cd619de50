//! The load balancer spreads requests evenly over the targets that serve.
//!
//! Source: Elastic Load Balancing, "Application Load Balancers" (the default routing
//! algorithm is round robin; cross-zone load balancing is on for ALBs) and "Health checks
//! for your target groups" (only healthy targets get requests; if no target is healthy the
//! ALB fails open and sends to all). With identical targets every one of `n` serving targets
//! gets 1/n of the requests. Within a minute the number of serving targets may change (a
//! new instance becomes healthy 10 s in): `serving` is its average over the minute.

/// Requests per second each serving target receives, or `None` when no target serves (every
/// request then fails: instances that are still booting are not registered yet, so the
/// fail-open rule does not apply to them).
pub fn per_target_rps(offered_rps: f64, serving: f64) -> Option<f64> {
    (serving > 1e-9).then(|| offered_rps / serving)
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
}
