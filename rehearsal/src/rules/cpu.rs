//! An instance's CPU: what CloudWatch's `CPUUtilization` shows, and the vCPU time the
//! credits count.
//!
//! Source: Amazon EC2 User Guide, "Instance metrics" (CPUUtilization: the percentage of
//! the instance's allocated compute units in use) and "Key concepts for burstable
//! performance instances" (credits count vCPU time). The requests' share is the queueing
//! model's utilisation (`super::queueing`): the CPU time they ask for over what the vCPUs
//! give, at most all of it; an idle instance shows `idle_cpu_percent` (a named
//! assumption) on top, never above 100 %.

/// CPUUtilization of an instance whose vCPUs are busy `utilization` of the time with
/// requests.
pub fn cpu_percent(idle_percent: f64, utilization: f64) -> f64 {
    (idle_percent + 100.0 * utilization.clamp(0.0, 1.0)).min(100.0)
}

/// vCPU-seconds an instance used in a stretch: its CPU while it served, idle otherwise.
pub fn busy_vcpu_secs(
    vcpus: f64,
    serving_secs: f64,
    serving_cpu_percent: f64,
    running_secs: f64,
    idle_percent: f64,
) -> f64 {
    let idle_secs = (running_secs - serving_secs).max(0.0);
    vcpus * (serving_secs * serving_cpu_percent + idle_secs * idle_percent) / 100.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_is_the_requests_share_plus_idle_capped_at_100() {
        // (idle %, utilisation, expected %)
        for (idle, utilization, want) in [
            (0.0, 0.5, 50.0),
            (2.0, 0.5, 52.0),
            (0.0, 1.4, 100.0), // saturated: the vCPUs cannot give more
            (5.0, 0.99, 100.0),
            (1.0, 0.0, 1.0),
        ] {
            assert_eq!(
                cpu_percent(idle, utilization),
                want,
                "{idle} + {utilization}"
            );
        }
    }

    #[test]
    fn vcpu_time_counts_serving_and_idle_stretches() {
        // 2 vCPUs, 30 s serving at 60 %, 30 more seconds running idle at 1 %.
        let secs = busy_vcpu_secs(2.0, 30.0, 60.0, 60.0, 1.0);
        assert!((secs - (2.0 * (30.0 * 0.6 + 30.0 * 0.01))).abs() < 1e-12);
        // Running less than it served (a boundary): no negative idle time.
        assert_eq!(busy_vcpu_secs(2.0, 60.0, 50.0, 30.0, 1.0), 60.0);
    }
}
