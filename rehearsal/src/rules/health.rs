//! An instance that stops answering: when the load balancer stops sending it requests, when
//! the group replaces it, and how many the group replaces at once.
//!
//! Sources:
//! - Elastic Load Balancing, "Health checks for Application Load Balancer target groups":
//!   the load balancer checks every target every `interval` seconds and considers it
//!   unhealthy after `unhealthy_threshold` consecutive failed checks (healthy again after
//!   `healthy_threshold` passing ones); "each load balancer node routes requests only to the
//!   healthy targets". A target that stops answering is still sent requests until then.
//! - Amazon EC2 Auto Scaling User Guide, "Health checks for instances in an Auto Scaling
//!   group": with ELB health checks enabled (`health_check_type = "ELB"`, infra/
//!   autoscaling_group.tf), when the load balancer reports a target unhealthy "Amazon EC2 Auto
//!   Scaling marks the instance as unhealthy on its next periodic health check and replaces
//!   it"; the EC2 status checks apply whatever the type, but "when a status check fails,
//!   Amazon EC2 Auto Scaling waits a few minutes for AWS to fix the issue". "Set the health
//!   check grace period": the group does not act on the load balancer's verdict until an
//!   instance has been InService for `health_check_grace_period` seconds.
//! - Same guide, "How Amazon EC2 Auto Scaling minimizes downtime": instances found unhealthy
//!   by the load balancer are replaced "up to 10 percent of the group's desired capacity at
//!   a time" (one at a time when 10 % is less than one), each batch waiting for its new
//!   instances "to pass an initial health check" and "for the default instance warmup to
//!   finish" before the next. "Instance maintenance policies" (default behaviours, no policy
//!   set, as in infra/): a health check failure is handled by "terminate and launch": the
//!   unhealthy instance is deregistered and terminated while its replacement launches.
//!
//! Not documented, so named assumptions: how long after the load balancer's verdict the
//! group's periodic check acts (`unhealthy_replace_secs`), and what "a few minutes" of a
//! failing status check is (`status_check_replace_secs`).

/// The target group's health check.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct HealthCheck {
    pub interval_secs: f64,
    pub unhealthy_threshold: f64,
    pub healthy_threshold: f64,
}

impl HealthCheck {
    /// Seconds from a target's last answer to the load balancer's verdict "unhealthy".
    pub fn detection_secs(&self) -> f64 {
        self.interval_secs * self.unhealthy_threshold
    }

    /// Seconds from a target answering again to the load balancer routing to it again.
    pub fn recovery_secs(&self) -> f64 {
        self.interval_secs * self.healthy_threshold
    }
}

/// How the group learns that an instance is unhealthy.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Replacement {
    /// `health_check_type = "ELB"`: the load balancer's verdict counts.
    pub elb_health_checks: bool,
    /// `health_check_grace_period`: seconds after InService before the group acts on it.
    pub grace_secs: f64,
    /// From the load balancer's verdict to the group marking the instance (assumption).
    pub unhealthy_replace_secs: f64,
    /// From a failing status check to the group marking the instance (assumption).
    pub status_check_replace_secs: f64,
}

/// When the group marks Unhealthy an instance that stopped answering at `stopped_at`
/// (InService since `in_service_at`): the earlier of the load balancer's path and the
/// status checks' path.
pub fn marked_at(stopped_at: f64, in_service_at: f64, check: &HealthCheck, r: &Replacement) -> f64 {
    let status = stopped_at + r.status_check_replace_secs;
    if !r.elb_health_checks {
        return status;
    }
    let elb = (stopped_at + check.detection_secs() + r.unhealthy_replace_secs)
        .max(in_service_at + r.grace_secs);
    elb.min(status)
}

/// How many unhealthy instances the group replaces at once: 10 % of the desired capacity,
/// at least one.
pub fn batch_size(desired: i64) -> usize {
    ((desired.max(0) as f64 * 0.1).floor() as usize).max(1)
}

/// How many of `eligible` unhealthy instances the group replaces now, with `in_progress`
/// replacements of the previous batch not yet warm.
pub fn replace_now(eligible: usize, desired: i64, in_progress: usize) -> usize {
    if in_progress > 0 {
        0
    } else {
        eligible.min(batch_size(desired))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// infra/locals.tf: every 5 s, unhealthy after 2 failures, healthy after 2 successes.
    const CHECK: HealthCheck = HealthCheck {
        interval_secs: 5.0,
        unhealthy_threshold: 2.0,
        healthy_threshold: 2.0,
    };

    const ELB: Replacement = Replacement {
        elb_health_checks: true,
        grace_secs: 120.0,
        unhealthy_replace_secs: 60.0,
        status_check_replace_secs: 300.0,
    };

    #[test]
    fn the_load_balancer_needs_its_threshold_of_failed_checks() {
        assert_eq!(CHECK.detection_secs(), 10.0);
        assert_eq!(CHECK.recovery_secs(), 10.0);
    }

    #[test]
    fn the_group_replaces_after_the_verdict_the_grace_period_or_the_status_checks() {
        // (stopped at, InService since, health check type ELB, marked at, why)
        let cases = [
            (
                300.0,
                -1e9,
                true,
                370.0,
                "long in service: verdict at 310, next check 60 s later",
            ),
            (
                300.0,
                240.0,
                true,
                370.0,
                "InService at 240: the grace period ends at 360, before",
            ),
            (
                300.0,
                290.0,
                true,
                410.0,
                "InService at 290: the grace period holds it to 410",
            ),
            (
                300.0,
                290.0,
                false,
                600.0,
                "EC2 checks only: a few minutes of failed status checks",
            ),
            (
                300.0,
                500.0,
                true,
                600.0,
                "a grace period ending after the status checks' path",
            ),
        ];
        for (stopped, in_service, elb, want, why) in cases {
            let r = Replacement {
                elb_health_checks: elb,
                ..ELB
            };
            assert_eq!(marked_at(stopped, in_service, &CHECK, &r), want, "{why}");
        }
    }

    #[test]
    fn ten_percent_of_the_desired_capacity_at_a_time_after_the_last_batch_warms_up() {
        // (eligible, desired, replacements still warming, replaced now)
        for (eligible, desired, in_progress, want) in [
            (2, 4, 0, 1),  // 10 % of 4 is less than one: one at a time
            (2, 4, 1, 0),  // the previous one still warms up
            (5, 20, 0, 2), // 10 % of 20
            (1, 20, 0, 1),
            (0, 4, 0, 0),
            (12, 45, 0, 4), // 4.5 rounds down
        ] {
            assert_eq!(
                replace_now(eligible, desired, in_progress),
                want,
                "{eligible} of {desired}, {in_progress} in progress"
            );
        }
    }
}
