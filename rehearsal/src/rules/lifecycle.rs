//! An instance's life: launch, running, InService, healthy in the target group, warm,
//! deregistered and draining, shutting down, terminated; and the seconds each bill counts.
//!
//! Sources:
//! - Amazon EC2 Auto Scaling User Guide, "Amazon EC2 Auto Scaling instance lifecycle"
//!   (Pending -> InService -> Terminating -> Terminated) and "Set the default instance
//!   warmup" (warm-up counts from InService).
//! - Elastic Load Balancing, "Health checks for your target groups": "After your target is
//!   registered, it must pass one health check to be considered healthy" (the healthy
//!   threshold is for a target coming back from unhealthy); checks run every `interval`
//!   seconds, so the rehearsal takes one interval from InService to the first request.
//!   "Target group attributes": a deregistered target gets no new request and is drained
//!   for the deregistration delay, then Auto Scaling terminates it.
//! - Amazon EC2 User Guide, "Amazon EC2 instance state changes": `pending` is not billed,
//!   `running` is, `shutting-down` is not; Linux is billed per second. The service's own
//!   shutdown drain (`shutdown_drain_secs`) happens while the instance shuts down: counted
//!   as terminating, not billed. EBS volumes and public IPv4 addresses are charged from
//!   launch to termination whatever the state.
//!
//! Not documented, so named assumptions: `boot_secs` (launch to InService) and
//! `pending_secs` (launch to `running`).

/// How long each phase lasts, in seconds.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Timings {
    pub pending_secs: f64,
    pub boot_secs: f64,
    /// InService to its first request: one passing health check.
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

/// Seconds of [from, to) inside [window_start, window_end).
pub fn overlap(from: f64, to: f64, window_start: f64, window_end: f64) -> f64 {
    (to.min(window_end) - from.max(window_start)).max(0.0)
}

impl Instance {
    pub fn launched(at: f64) -> Instance {
        Instance {
            launched_at: at,
            draining_from: None,
        }
    }

    /// EC2's `running` state: billed from here.
    pub fn running_from(&self, t: &Timings) -> f64 {
        self.launched_at + t.pending_secs.min(t.boot_secs)
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

    /// Auto Scaling calls TerminateInstances: EC2's `shutting-down` starts, billing stops.
    pub fn shutting_down_at(&self, t: &Timings) -> Option<f64> {
        self.draining_from.map(|d| d + t.deregistration_delay_secs)
    }

    pub fn terminated_at(&self, t: &Timings) -> Option<f64> {
        self.shutting_down_at(t).map(|s| s + t.shutdown_secs)
    }

    pub fn is_terminating(&self, now: f64) -> bool {
        self.draining_from.is_some_and(|d| d <= now)
    }

    pub fn is_gone(&self, now: f64, t: &Timings) -> bool {
        self.terminated_at(t).is_some_and(|end| end <= now)
    }

    pub fn is_in_service(&self, now: f64, t: &Timings) -> bool {
        !self.is_terminating(now) && self.in_service_at(t) <= now
    }

    /// Counted in the group's metrics and as current capacity when scaling out.
    pub fn is_warm(&self, now: f64, t: &Timings) -> bool {
        !self.is_terminating(now) && self.warm_at(t) <= now
    }

    pub fn is_warming(&self, now: f64, t: &Timings) -> bool {
        !self.is_terminating(now) && self.warm_at(t) > now
    }

    /// Seconds of the minute starting at `start` during which it gets requests.
    pub fn serving_secs(&self, start: f64, t: &Timings) -> f64 {
        let until = self.draining_from.unwrap_or(f64::INFINITY);
        overlap(self.serving_from(t), until, start, start + 60.0)
    }

    /// Share of the minute starting at `start` during which it gets requests.
    pub fn serving_fraction(&self, start: f64, t: &Timings) -> f64 {
        self.serving_secs(start, t) / 60.0
    }

    /// Seconds of the minute starting at `start` EC2 bills (`running`).
    pub fn billed_secs(&self, start: f64, t: &Timings) -> f64 {
        let until = self.shutting_down_at(t).unwrap_or(f64::INFINITY);
        overlap(self.running_from(t), until, start, start + 60.0)
    }

    /// Seconds of the minute starting at `start` the instance exists (its volume and its
    /// public address are charged).
    pub fn present_secs(&self, start: f64, t: &Timings) -> f64 {
        let until = self.terminated_at(t).unwrap_or(f64::INFINITY);
        overlap(self.launched_at, until, start, start + 60.0)
    }

    /// Seconds it has been `running` at `now` (for the billing-hour rule).
    pub fn running_secs_at(&self, now: f64, t: &Timings) -> f64 {
        (now - self.running_from(t)).max(0.0)
    }
}

/// Timings for tests: 15 s pending, 60 s boot, a 5 s health check, 90 s warm-up, 15 s
/// deregistration delay and 15 s shutdown.
#[cfg(test)]
pub const EXAMPLE_TIMINGS: Timings = Timings {
    pending_secs: 15.0,
    boot_secs: 60.0,
    health_check_secs: 5.0,
    warmup_secs: 90.0,
    deregistration_delay_secs: 15.0,
    shutdown_secs: 15.0,
};

#[cfg(test)]
mod tests {
    use super::*;

    const T: Timings = EXAMPLE_TIMINGS;

    #[test]
    fn a_launch_serves_after_boot_and_one_health_check_and_warms_after_the_warm_up() {
        let i = Instance::launched(120.0);
        assert_eq!(i.running_from(&T), 135.0);
        assert_eq!(i.in_service_at(&T), 180.0);
        assert_eq!(i.serving_from(&T), 185.0, "one passing check, one interval");
        assert_eq!(i.warm_at(&T), 270.0);
        // (minute start, serving share, warm, warming)
        let cases = [
            (120.0, 0.0, false, true),
            (180.0, 55.0 / 60.0, false, true), // healthy 5 s into the minute
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
    fn pending_and_shutting_down_are_not_billed_but_the_instance_exists() {
        // (minute start, billed seconds, present seconds)
        let mut i = Instance::launched(90.0);
        i.draining_from = Some(600.0);
        let cases = [
            (60.0, 15.0, 30.0),  // launched at 90 s, pending until 105 s
            (120.0, 60.0, 60.0), // running
            (600.0, 15.0, 30.0), // deregistration delay to 615 s, shutting down to 630 s
            (660.0, 0.0, 0.0),
        ];
        for (start, billed, present) in cases {
            assert_eq!(i.billed_secs(start, &T), billed, "{start}");
            assert_eq!(i.present_secs(start, &T), present, "{start}");
        }
    }

    #[test]
    fn scale_in_deregisters_at_once_then_terminates() {
        let mut i = Instance::launched(LONG_AGO);
        i.draining_from = Some(600.0);
        assert!(i.is_terminating(600.0));
        assert!(!i.is_warm(600.0, &T) && !i.is_in_service(600.0, &T));
        assert_eq!(
            i.serving_fraction(600.0, &T),
            0.0,
            "no new request once deregistered"
        );
        assert_eq!(i.shutting_down_at(&T), Some(615.0));
        assert_eq!(i.terminated_at(&T), Some(630.0));
        assert!(i.is_gone(660.0, &T));
    }
}
