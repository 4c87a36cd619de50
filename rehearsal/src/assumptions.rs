//! Every number the model needs that AWS does not document: a named default, printed in
//! summary.json and overridable with `--assume NAME=VALUE`.

use serde::Serialize;

/// The named assumptions, with their defaults.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Assumptions {
    /// At minute t an alarm sees the datapoints up to minute t - this (CloudWatch publishes
    /// late; observed 2-3 minutes for 1-minute EC2 metrics).
    pub metric_delay_minutes: f64,
    /// Launch to InService (EC2 start, AL2023 boot, the service up); observed ~25 s to SSH.
    pub boot_secs: f64,
    /// Launch to EC2's `running` state (pending is not billed).
    pub pending_secs: f64,
    /// Warm-up when neither the policy nor the group sets one (Auto Scaling then falls back
    /// on the default cooldown, 300 s); used only when `instance_warmup_secs` is missing.
    pub default_warmup_secs: f64,
    /// Target tracking's low alarm fires below this fraction of the target (observed 0.7 on
    /// the alarms EC2 Auto Scaling creates: 50 -> 35).
    pub tt_scale_in_fraction: f64,
    /// Datapoints of target tracking's high alarm (N of N, one-minute periods).
    pub tt_scale_out_datapoints: f64,
    /// Datapoints of target tracking's low alarm (N of N, one-minute periods).
    pub tt_scale_in_datapoints: f64,
    /// Extra datapoints CloudWatch reads beyond N when some are missing (the evaluation
    /// range; 5 for N = 3 in the User Guide's tables).
    pub alarm_extra_datapoints: f64,
    /// A scheduled action runs this long after its time ("may run up to 2 minutes late").
    pub schedule_delay_minutes: f64,
    /// CPU an idle instance shows (OS, agents), added to the requests' share.
    pub idle_cpu_percent: f64,
    /// Speed of one EC2 vCPU relative to one core of the calibration machine.
    pub vcpu_speed: f64,
    /// Latency the load balancer and the network add to every request.
    pub alb_latency_ms: f64,
    /// Round trip to the store (DynamoDB: "single-digit milliseconds") for the profiles that
    /// use it (read, write, mixed).
    pub store_latency_ms: f64,
    /// Bytes of a request as the load balancer receives it (request line and headers).
    pub request_bytes: f64,
    /// Bytes of a response sent back to the client (headers and body): LCUs and data
    /// transfer out.
    pub response_bytes: f64,
    /// Requests a client sends on one connection, for the new-connections LCU dimension.
    pub requests_per_connection: f64,
    /// Seconds a client connection stays open, for the active-connections LCU dimension.
    pub connection_secs: f64,
    /// Desired capacity at the start; negative: the minimum in force at the start.
    pub initial_capacity: f64,
    /// How full the CPU credit balance of the instances running at the start is (1: a day
    /// of earnings, what an instance idle for a day holds; new instances start at 0).
    pub initial_credit_fraction: f64,
    /// From the load balancer finding an instance unhealthy to the group marking it Unhealthy
    /// and replacing it ("on its next periodic health check").
    pub unhealthy_replace_secs: f64,
    /// From an instance's status checks failing to the group replacing it ("waits a few
    /// minutes for AWS to fix the issue").
    pub status_check_replace_secs: f64,
    /// How long the clients holding the address of a dark zone's load balancer node keep
    /// sending to it (the load balancer's DNS TTL is 60 s; how fast the address leaves DNS
    /// is not documented; 0: clients that try the next address).
    pub alb_dns_failover_secs: f64,
    /// The longest backoff a retrying client waits (the AWS SDKs' 20 s).
    pub retry_max_backoff_ms: f64,
}

impl Default for Assumptions {
    fn default() -> Self {
        Assumptions {
            metric_delay_minutes: 2.0,
            boot_secs: 60.0,
            pending_secs: 15.0,
            default_warmup_secs: 300.0,
            tt_scale_in_fraction: 0.7,
            tt_scale_out_datapoints: 3.0,
            tt_scale_in_datapoints: 15.0,
            alarm_extra_datapoints: 2.0,
            schedule_delay_minutes: 0.0,
            idle_cpu_percent: 0.0,
            vcpu_speed: 1.0,
            alb_latency_ms: 1.0,
            store_latency_ms: 5.0,
            request_bytes: 200.0,
            response_bytes: 500.0,
            requests_per_connection: 10.0,
            connection_secs: 5.0,
            initial_capacity: -1.0,
            initial_credit_fraction: 1.0,
            unhealthy_replace_secs: 60.0,
            status_check_replace_secs: 300.0,
            alb_dns_failover_secs: 60.0,
            retry_max_backoff_ms: 20_000.0,
        }
    }
}

impl Assumptions {
    /// The names `--assume` accepts, in the order summary.json prints them.
    pub fn names(&self) -> Vec<String> {
        match serde_json::to_value(self) {
            Ok(serde_json::Value::Object(map)) => map.keys().cloned().collect(),
            _ => Vec::new(),
        }
    }

    /// Sets one assumption from `NAME=VALUE`, refusing unknown names and values the model
    /// cannot use.
    pub fn set(&mut self, assignment: &str) -> Result<(), String> {
        let (name, value) = assignment
            .split_once('=')
            .ok_or_else(|| format!("--assume takes NAME=VALUE, not '{assignment}'"))?;
        let value: f64 = value
            .trim()
            .parse()
            .ok()
            .filter(|v: &f64| v.is_finite())
            .ok_or_else(|| format!("--assume {name}: '{value}' is not a number"))?;
        let whole = value.fract() == 0.0;
        let (slot, ok, rule): (&mut f64, bool, &str) = match name.trim() {
            "metric_delay_minutes" => (
                &mut self.metric_delay_minutes,
                whole && value >= 1.0,
                "a whole number of minutes, at least 1 (a minute's datapoint exists once it ends)",
            ),
            "boot_secs" => (&mut self.boot_secs, value >= 0.0, "seconds, at least 0"),
            "pending_secs" => (&mut self.pending_secs, value >= 0.0, "seconds, at least 0"),
            "default_warmup_secs" => (
                &mut self.default_warmup_secs,
                value >= 0.0,
                "seconds, at least 0",
            ),
            "tt_scale_in_fraction" => (
                &mut self.tt_scale_in_fraction,
                value > 0.0 && value < 1.0,
                "a fraction between 0 and 1",
            ),
            "tt_scale_out_datapoints" => (
                &mut self.tt_scale_out_datapoints,
                whole && value >= 1.0,
                "a whole number, at least 1",
            ),
            "tt_scale_in_datapoints" => (
                &mut self.tt_scale_in_datapoints,
                whole && value >= 1.0,
                "a whole number, at least 1",
            ),
            "alarm_extra_datapoints" => (
                &mut self.alarm_extra_datapoints,
                whole && value >= 0.0,
                "a whole number, at least 0",
            ),
            "schedule_delay_minutes" => (
                &mut self.schedule_delay_minutes,
                whole && value >= 0.0,
                "a whole number of minutes, at least 0",
            ),
            "idle_cpu_percent" => (
                &mut self.idle_cpu_percent,
                (0.0..100.0).contains(&value),
                "a percentage from 0 to 100 (exclusive)",
            ),
            "vcpu_speed" => (&mut self.vcpu_speed, value > 0.0, "a positive factor"),
            "alb_latency_ms" => (
                &mut self.alb_latency_ms,
                value >= 0.0,
                "milliseconds, at least 0",
            ),
            "store_latency_ms" => (
                &mut self.store_latency_ms,
                value >= 0.0,
                "milliseconds, at least 0",
            ),
            "request_bytes" => (&mut self.request_bytes, value >= 0.0, "bytes, at least 0"),
            "response_bytes" => (&mut self.response_bytes, value >= 0.0, "bytes, at least 0"),
            "requests_per_connection" => (
                &mut self.requests_per_connection,
                value >= 1.0,
                "at least 1",
            ),
            "connection_secs" => (
                &mut self.connection_secs,
                value >= 0.0,
                "seconds, at least 0",
            ),
            "initial_capacity" => (
                &mut self.initial_capacity,
                whole,
                "a whole number (negative: the minimum in force)",
            ),
            "initial_credit_fraction" => (
                &mut self.initial_credit_fraction,
                (0.0..=1.0).contains(&value),
                "a fraction from 0 to 1",
            ),
            "unhealthy_replace_secs" => (
                &mut self.unhealthy_replace_secs,
                value >= 0.0,
                "seconds, at least 0",
            ),
            "status_check_replace_secs" => (
                &mut self.status_check_replace_secs,
                value >= 0.0,
                "seconds, at least 0",
            ),
            "alb_dns_failover_secs" => (
                &mut self.alb_dns_failover_secs,
                value >= 0.0,
                "seconds, at least 0",
            ),
            "retry_max_backoff_ms" => (
                &mut self.retry_max_backoff_ms,
                value > 0.0,
                "milliseconds, more than 0",
            ),
            other => {
                return Err(format!(
                    "--assume {other}: no such assumption (known: {})",
                    self.names().join(", ")
                ));
            }
        };
        if !ok {
            return Err(format!("--assume {name}={value}: must be {rule}"));
        }
        *slot = value;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn assumptions_are_set_by_name_and_checked() {
        let mut a = Assumptions::default();
        a.set("metric_delay_minutes=3").expect("valid");
        assert_eq!(a.metric_delay_minutes, 3.0);
        for (bad, reason) in [
            ("metric_delay_minutes=0", "at least 1"),
            ("boot=60", "no such assumption"),
            ("boot_secs=soon", "not a number"),
            ("tt_scale_in_fraction=1.5", "between 0 and 1"),
            ("boot_secs", "NAME=VALUE"),
        ] {
            let err = a.set(bad).expect_err(bad);
            assert!(err.contains(reason), "{bad}: {err}");
        }
        assert!(a.names().contains(&"boot_secs".to_owned()));
    }
}
