//! What a rehearsal costs: instance-seconds, the load balancer's hours and LCUs, public
//! IPv4 addresses, and a burstable instance's surplus CPU credits.
//!
//! Sources: Amazon EC2 On-Demand pricing (per-second billing for Linux, from launch to
//! termination); Elastic Load Balancing pricing (an ALB-hour plus LCU-hours; one LCU is 25
//! new connections per second, 3,000 active connections per minute, 1 GB per hour processed
//! for EC2 targets or 1,000 rule evaluations per second, and an hour is billed on the
//! dimension it uses most); Amazon VPC pricing (every public IPv4 address, in use or not,
//! since 2024-02-01); EC2 User Guide, "Unlimited mode for burstable performance instances"
//! (an instance earns credits at its baseline; CPU above it spends them, and what it spends
//! beyond what it earned is billed per vCPU-hour). The prices themselves are in the dated
//! table `data/prices-us-east-1.json`.

/// What an hour of load balancer traffic uses, per LCU dimension.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct LcuUsage {
    pub new_connections_per_sec: f64,
    pub active_connections_per_min: f64,
    pub gb_per_hour: f64,
    pub rule_evaluations_per_sec: f64,
}

/// One LCU's worth of each dimension.
#[derive(Debug, Clone, Copy, PartialEq, serde::Deserialize, serde::Serialize)]
pub struct LcuSize {
    pub new_connections_per_sec: f64,
    pub active_connections_per_min: f64,
    pub gb_per_hour: f64,
    pub rule_evaluations_per_sec: f64,
}

/// LCUs billed for an hour: the largest dimension.
pub fn lcus(usage: LcuUsage, size: LcuSize) -> f64 {
    [
        usage.new_connections_per_sec / size.new_connections_per_sec,
        usage.active_connections_per_min / size.active_connections_per_min,
        usage.gb_per_hour / size.gb_per_hour,
        usage.rule_evaluations_per_sec / size.rule_evaluations_per_sec,
    ]
    .into_iter()
    .fold(0.0, f64::max)
}

/// Dollars for `seconds` at an hourly price.
pub fn hourly(seconds: f64, usd_per_hour: f64) -> f64 {
    seconds / 3600.0 * usd_per_hour
}

/// Dollars of surplus credits: vCPU-seconds spent above what the baseline earned.
pub fn surplus_credits(spent_vcpu_secs: f64, earned_vcpu_secs: f64, usd_per_vcpu_hour: f64) -> f64 {
    hourly(
        (spent_vcpu_secs - earned_vcpu_secs).max(0.0),
        usd_per_vcpu_hour,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    const LCU: LcuSize = LcuSize {
        new_connections_per_sec: 25.0,
        active_connections_per_min: 3000.0,
        gb_per_hour: 1.0,
        rule_evaluations_per_sec: 1000.0,
    };

    #[test]
    fn an_hour_is_billed_on_its_largest_lcu_dimension() {
        // 1,000 rps, 10 requests a connection, 1 kB each: 100 new connections/s = 4 LCU,
        // 3.6 GB/h = 3.6 LCU: billed 4.
        let usage = LcuUsage {
            new_connections_per_sec: 100.0,
            active_connections_per_min: 600.0,
            gb_per_hour: 3.6,
            rule_evaluations_per_sec: 0.0,
        };
        assert!((lcus(usage, LCU) - 4.0).abs() < 1e-12);
        assert_eq!(lcus(LcuUsage::default(), LCU), 0.0);
    }

    #[test]
    fn instances_are_billed_per_second() {
        // Two t3.micro for an hour at $0.0104.
        assert!((hourly(2.0 * 3600.0, 0.0104) - 0.0208).abs() < 1e-12);
        assert!((hourly(90.0, 0.0104) - 0.00026).abs() < 1e-12);
    }

    #[test]
    fn unlimited_mode_bills_only_what_the_baseline_did_not_earn() {
        // A t3.micro (2 vCPUs, baseline 10 %) at 50 % for an hour spends 1 vCPU-hour and
        // earns 0.2: 0.8 x $0.05.
        let spent = 2.0 * 0.5 * 3600.0;
        let earned = 2.0 * 0.10 * 3600.0;
        assert!((surplus_credits(spent, earned, 0.05) - 0.04).abs() < 1e-12);
        // Below the baseline nothing is billed.
        assert_eq!(surplus_credits(earned / 2.0, earned, 0.05), 0.0);
    }
}
