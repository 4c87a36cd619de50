//! Latency and errors of one instance: a queue of CPU-bound requests on its vCPUs.
//!
//! Model: M/D/c. Requests arrive at random (Poisson, the ALB's many clients) and each costs
//! the same CPU time (a profile is one kind of request), served by c = vCPUs. The M/D/c
//! waiting time has no closed form; we use the Allen-Cunneen approximation (Allen,
//! "Probability, Statistics and Queueing Theory", 2nd ed., 1990): the M/M/c wait scaled by
//! (Ca^2 + Cs^2) / 2 = 1/2 for Poisson arrivals and deterministic service. The probability of
//! waiting is Erlang C; the wait of those who wait keeps M/M/c's exponential shape with the
//! halved mean, which gives percentiles. Above saturation (utilisation >= 1) the instance
//! serves its capacity, the excess fails (the service's request timeout answers 503), and
//! the requests it does serve have waited about the timeout. Below saturation latency is
//! capped at the timeout but nothing is counted as failed: the steady-state tail of a queue
//! just under saturation (where it would time out most requests) is not credible over a
//! minute. The approximation loses accuracy near saturation: results with utilisation
//! >= 0.9 are flagged as low confidence.

use serde::Serialize;

/// One instance as a queueing station.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Station {
    /// vCPUs serving in parallel.
    pub servers: u32,
    /// CPU seconds one request costs on one vCPU.
    pub service_secs: f64,
    /// The service answers 503 past this wait.
    pub timeout_secs: f64,
    /// Latency outside the CPU: load balancer, network, the store's round trip.
    pub fixed_secs: f64,
}

/// What the station does with a given arrival rate.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Performance {
    pub utilization: f64,
    pub served_rps: f64,
    pub failed_rps: f64,
    pub mean_ms: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub low_confidence: bool,
}

/// Utilisation at or above which the latency estimate is flagged.
pub const LOW_CONFIDENCE_UTILIZATION: f64 = 0.9;

/// Erlang C: the probability that an arrival waits, with `servers` servers and offered load
/// `a` = arrival rate x service time (in servers), for a < servers. Computed through the
/// Erlang B recursion, which stays stable for hundreds of servers.
pub fn erlang_c(servers: u32, a: f64) -> f64 {
    let c = f64::from(servers);
    if a <= 0.0 {
        return 0.0;
    }
    if a >= c {
        return 1.0;
    }
    let mut b = 1.0;
    for k in 1..=servers {
        b = a * b / (f64::from(k) + a * b);
    }
    let rho = a / c;
    b / (1.0 - rho * (1.0 - b))
}

impl Station {
    /// Requests per second it can serve at 100 % CPU.
    pub fn capacity_rps(&self) -> f64 {
        f64::from(self.servers) / self.service_secs
    }

    pub fn perform(&self, arrival_rps: f64) -> Performance {
        let capacity = self.capacity_rps();
        let utilization = arrival_rps / capacity;
        let service_ms = self.service_secs * 1000.0;
        let fixed_ms = self.fixed_secs * 1000.0;
        if arrival_rps <= 0.0 {
            return Performance {
                utilization: 0.0,
                served_rps: 0.0,
                failed_rps: 0.0,
                mean_ms: fixed_ms + service_ms,
                p50_ms: fixed_ms + service_ms,
                p99_ms: fixed_ms + service_ms,
                low_confidence: false,
            };
        }
        // Floating-point noise must not turn "exactly at capacity" into a steady-state queue.
        if utilization >= 1.0 - 1e-9 {
            let waited_ms = fixed_ms + self.timeout_secs * 1000.0;
            return Performance {
                utilization,
                served_rps: capacity,
                failed_rps: arrival_rps - capacity,
                mean_ms: waited_ms,
                p50_ms: waited_ms,
                p99_ms: waited_ms,
                low_confidence: true,
            };
        }
        let waiting = erlang_c(self.servers, arrival_rps * self.service_secs);
        // Rate at which the conditional wait decays: M/M/c's (c mu - lambda), doubled so that
        // the mean is halved (Allen-Cunneen with a deterministic service time).
        let decay = 2.0 * (capacity - arrival_rps);
        let wait_quantile = |q: f64| {
            if 1.0 - q >= waiting {
                0.0
            } else {
                (waiting / (1.0 - q)).ln() / decay
            }
        };
        let timeout_wait = (self.timeout_secs - self.service_secs).max(0.0);
        let ms = |wait_secs: f64| fixed_ms + service_ms + wait_secs.min(timeout_wait) * 1000.0;
        Performance {
            utilization,
            served_rps: arrival_rps,
            failed_rps: 0.0,
            mean_ms: ms(waiting / decay),
            p50_ms: ms(wait_quantile(0.50)),
            p99_ms: ms(wait_quantile(0.99)),
            low_confidence: utilization >= LOW_CONFIDENCE_UTILIZATION,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64, tolerance: f64) -> bool {
        (a - b).abs() <= tolerance
    }

    #[test]
    fn erlang_c_matches_known_values() {
        // (servers, offered load, probability of waiting): M/M/1 waits with probability rho;
        // the M/M/2 value is 2 rho^2 / (1 + rho) at rho = a / 2.
        let cases = [
            (1, 0.5, 0.5),
            (1, 0.9, 0.9),
            (2, 1.0, 1.0 / 3.0),
            (2, 1.6, 2.0 * 0.64 / 1.8),
        ];
        for (servers, a, want) in cases {
            let got = erlang_c(servers, a);
            assert!(
                close(got, want, 1e-12),
                "C({servers}, {a}) = {got}, want {want}"
            );
        }
        // Stable for many servers (no factorial overflow) and within [0, 1].
        let big = erlang_c(192, 180.0);
        assert!((0.0..=1.0).contains(&big), "{big}");
    }

    fn station(servers: u32, service_ms: f64) -> Station {
        Station {
            servers,
            service_secs: service_ms / 1000.0,
            timeout_secs: 10.0,
            fixed_secs: 0.0,
        }
    }

    #[test]
    fn a_single_vcpu_at_half_load_waits_half_as_long_as_m_m_1() {
        // M/M/1 at rho 0.5 with 10 ms service: E[Wq] = rho / (mu - lambda) = 0.5 / 50 = 10 ms;
        // M/D/1 (Pollaczek-Khinchine, exact) is half: 5 ms, so the mean latency is 15 ms.
        let p = station(1, 10.0).perform(50.0);
        assert!(close(p.mean_ms, 15.0, 1e-9), "{p:?}");
        // Half the requests do not wait: p50 is the service time alone.
        assert!(close(p.p50_ms, 10.0, 1e-9), "{p:?}");
        // p99: P(W > t) = 0.5 e^(-2 (100 - 50) t) = 0.01 -> t = ln 50 / 100 s.
        assert!(close(p.p99_ms, 10.0 + 50f64.ln() * 10.0, 1e-9), "{p:?}");
        assert!(!p.low_confidence);
        assert_eq!(p.failed_rps, 0.0);
    }

    #[test]
    fn above_saturation_the_excess_fails_and_latency_reaches_the_timeout() {
        // 2 vCPUs at 13.33 ms a request: 150 rps at 100 % CPU.
        let s = station(2, 2000.0 / 150.0);
        let p = s.perform(250.0);
        assert!(close(p.served_rps, 150.0, 1e-9), "{p:?}");
        assert!(close(p.failed_rps, 100.0, 1e-9), "{p:?}");
        assert!(close(p.p99_ms, 10_000.0, 1e-9), "{p:?}");
        assert!(p.low_confidence);
    }

    #[test]
    fn exactly_at_capacity_is_saturation_not_an_endless_queue() {
        // 150 rps on 2 vCPUs at 2/150 s a request: utilisation 1 up to rounding.
        let s = station(2, 2000.0 / 150.0);
        let p = s.perform(150.0);
        assert!(
            close(p.served_rps, 150.0, 1e-6) && p.failed_rps.abs() < 1e-6,
            "{p:?}"
        );
    }

    #[test]
    fn near_saturation_is_flagged_and_latency_grows() {
        let s = station(2, 10.0);
        let light = s.perform(100.0); // rho 0.5
        let heavy = s.perform(190.0); // rho 0.95
        assert!(heavy.p99_ms > light.p99_ms * 5.0, "{light:?} {heavy:?}");
        assert!(heavy.low_confidence && !light.low_confidence);
    }
}
