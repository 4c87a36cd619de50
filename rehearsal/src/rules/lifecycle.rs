//! An instance's life: launch, InService, healthy in the target group, warm, draining,
//! terminated; and the seconds it is billed.
//!
//! Sources: Amazon EC2 Auto Scaling User Guide, "Amazon EC2 Auto Scaling instance
//! lifecycle" (Pending -> InService -> Terminating -> Terminated; billing from launch) and
//! "Set the default instance warmup" (warm-up counts from InService); Elastic Load
//! Balancing, "Health checks for your target groups" (a new target receives traffic once it
//! passed `healthy_threshold` consecutive checks, `interval` seconds apart) and "Target
//! group attributes" (a deregistered target gets no new request and is drained for the
//! deregistration delay); EC2 "Instance purchasing options": per-second billing for Linux.
//! Not documented, so named assumptions: `boot_secs` (launch to InService) and the
//! service's own shutdown drain (`shutdown_drain_secs` of the variables) after the
//! deregistration delay, billed in full.

/// How long each phase lasts, in seconds.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Timings {
    pub boot_secs: f64,
    pub health_check_secs: f64,
    pub warmup_secs: f64,
    pub deregistration_delay_secs: f64,
    pub shutdown_secs: f64,
}

/// One instance, by the moments that decide everything else (seconds since the start).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Instance {
    pub launched_at: f64,
    pub draining_from: Option<f64>,
}

/// Instances that were running long before the rehearsal starts.
pub const LONG_AGO: f64 = -1.0e9;

fn overlap(from: f64, to: f64, window_start: f64, window_end: f64) -> f64 {
    (to.min(window_end) - from.max(window_start)).max(0.0)
}

impl Instance {
    pub fn launched(at: f64) -> Instance {
        Instance {
            launched_at: at,
            draining_from: None,
        }
    }

    pub fn in_service_at(&self, t: &Timings) -> f64 {
        self.launched_at + t.boot_secs
    }

    /// First second the load balancer sends it requests.
    pub fn serving_from(&self, t: &Timings) -> f64 {
        self.in_service_at(t) + t.health_check_secs
    }

    pub fn warm_at(&self, t: &Timings) -> f64 {
        self.in_service_at(t) + t.warmup_secs
    }

    pub fn terminated_at(&self, t: &Timings) -> Option<f64> {
        self.draining_from
            .map(|d| d + t.deregistration_delay_secs + t.shutdown_secs)
    }

    pub fn is_terminating(&self, now: f64) -> bool {
        self.draining_from.is_some_and(|d| d <= now)
    }

    pub fn is_gone(&self, now: f64, t: &Timings) -> bool {
        self.terminated_at(t).is_some_and(|end| end <= now)
    }

    /// Counted in the group's metrics and as current capacity when scaling out.
    pub fn is_warm(&self, now: f64, t: &Timings) -> bool {
        !self.is_terminating(now) && self.warm_at(t) <= now
    }

    pub fn is_warming(&self, now: f64, t: &Timings) -> bool {
        !self.is_terminating(now) && self.warm_at(t) > now
    }

    /// Share of the minute starting at `start` during which it gets requests.
    pub fn serving_fraction(&self, start: f64, t: &Timings) -> f64 {
        let until = self.draining_from.unwrap_or(f64::INFINITY);
        overlap(self.serving_from(t), until, start, start + 60.0) / 60.0
    }

    /// Seconds billed in the minute starting at `start`.
    pub fn billed_secs(&self, start: f64, t: &Timings) -> f64 {
        let until = self.terminated_at(t).unwrap_or(f64::INFINITY);
        overlap(self.launched_at, until, start, start + 60.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T: Timings = Timings {
        boot_secs: 60.0,
        health_check_secs: 10.0,
        warmup_secs: 90.0,
        deregistration_delay_secs: 15.0,
        shutdown_secs: 15.0,
    };

    #[test]
    fn a_launch_serves_after_boot_and_health_checks_and_warms_after_the_warm_up() {
        let i = Instance::launched(120.0);
        assert_eq!(i.in_service_at(&T), 180.0);
        assert_eq!(i.serving_from(&T), 190.0);
        assert_eq!(i.warm_at(&T), 270.0);
        // (minute start, serving share, warm, warming)
        let cases = [
            (120.0, 0.0, false, true),
            (180.0, 50.0 / 60.0, false, true), // healthy 10 s into the minute
            (240.0, 1.0, false, true),         // warm only from 270 s
            (300.0, 1.0, true, false),
        ];
        for (start, share, warm, warming) in cases {
            assert!(
                (i.serving_fraction(start, &T) - share).abs() < 1e-12,
                "{start}"
            );
            assert_eq!(i.is_warm(start, &T), warm, "{start}");
            assert_eq!(i.is_warming(start, &T), warming, "{start}");
        }
    }

    #[test]
    fn scale_in_drains_then_terminates_and_billing_stops_there() {
        let mut i = Instance::launched(LONG_AGO);
        i.draining_from = Some(600.0);
        assert!(i.is_terminating(600.0));
        assert!(!i.is_warm(600.0, &T));
        assert_eq!(
            i.serving_fraction(600.0, &T),
            0.0,
            "no new request once deregistered"
        );
        assert_eq!(i.terminated_at(&T), Some(630.0));
        assert_eq!(i.billed_secs(600.0, &T), 30.0);
        assert!(i.is_gone(660.0, &T));
        // Launched mid-minute: billed from launch.
        assert_eq!(Instance::launched(90.0).billed_secs(60.0, &T), 30.0);
    }
}
