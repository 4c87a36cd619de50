//! The group the variables describe: every number the rules need, checked, with messages
//! that name the variable. Nothing here is a second copy of a default: all comes from
//! `crate::variables` (infra/ as Terraform reads it) or from a named assumption.

use serde::Serialize;
use serde_json::Value;

use crate::assumptions::Assumptions;
use crate::error::Error;
use crate::rules::alarm::{AlarmRule, MissingData};
use crate::rules::schedule::ScheduledAction;
use crate::rules::step::{AdjustmentType, Step};
use crate::variables::Variables;

/// Which way an alarm compares its metric with the threshold.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Comparison {
    GreaterThanThreshold,
    LessThanThreshold,
}

/// Below this, a difference is the model's floating-point noise (50 % computed as
/// 50.000000000001), not a breach.
pub const NOISE: f64 = 1e-9;

impl Comparison {
    pub fn breaches(self, value: f64, threshold: f64) -> bool {
        match self {
            Comparison::GreaterThanThreshold => value > threshold + NOISE,
            Comparison::LessThanThreshold => value < threshold - NOISE,
        }
    }
}

/// A CloudWatch alarm and the step policy it invokes.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StepPolicy {
    pub name: String,
    pub alarm: AlarmRule,
    pub period_minutes: usize,
    pub threshold: f64,
    pub comparison: Comparison,
    pub adjustment_type: AdjustmentType,
    pub min_adjustment_magnitude: Option<i64>,
    pub steps: Vec<Step>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum TrackedMetric {
    /// ASGAverageCPUUtilization.
    Cpu,
    /// ALBRequestCountPerTarget (requests per target per minute).
    RequestsPerTarget,
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct TargetPolicy {
    pub metric: TrackedMetric,
    pub target: f64,
    pub scale_in_enabled: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub enum Scaling {
    Step {
        out: StepPolicy,
        scale_in: StepPolicy,
    },
    TargetTracking {
        policies: Vec<TargetPolicy>,
    },
}

/// The group, its load balancer and its policies.
#[derive(Debug, Clone, Serialize)]
pub struct Group {
    pub instance_type: String,
    pub min_size: i64,
    pub max_size: i64,
    pub warmup_secs: f64,
    pub deregistration_delay_secs: f64,
    pub shutdown_drain_secs: f64,
    pub request_timeout_secs: f64,
    pub health_check_interval_secs: f64,
    pub healthy_threshold: f64,
    pub az_count: f64,
    pub public_ip_per_instance: bool,
    pub scaling: Scaling,
    #[serde(serialize_with = "serialize_schedules")]
    pub schedules: Vec<ScheduledAction>,
}

fn serialize_schedules<S: serde::Serializer>(
    schedules: &[ScheduledAction],
    serializer: S,
) -> Result<S::Ok, S::Error> {
    use serde::ser::SerializeSeq;
    let mut seq = serializer.serialize_seq(Some(schedules.len()))?;
    for s in schedules {
        seq.serialize_element(&serde_json::json!({
            "name": s.name,
            "recurrence": s.recurrence,
            "time_zone": s.time_zone_name,
            "min_size": s.min_size,
            "max_size": s.max_size,
            "desired_capacity": s.desired_capacity,
        }))?;
    }
    seq.end()
}

impl Group {
    /// The CPU level the policies hold the group at or below: the scale-out threshold or
    /// the CPU target.
    pub fn cpu_ceiling(&self) -> Option<f64> {
        match &self.scaling {
            Scaling::Step { out, .. } => Some(out.threshold),
            Scaling::TargetTracking { policies } => policies
                .iter()
                .find(|p| p.metric == TrackedMetric::Cpu)
                .map(|p| p.target),
        }
    }

    pub fn mode(&self) -> &'static str {
        match self.scaling {
            Scaling::Step { .. } => "step",
            Scaling::TargetTracking { .. } => "target_tracking",
        }
    }
}

struct Reader<'a> {
    vars: &'a Variables,
}

impl Reader<'_> {
    fn raw(&self, name: &str) -> Option<&Value> {
        self.vars.get(name).filter(|v| !v.is_null())
    }

    fn bad(&self, name: &str, rule: &str) -> Error {
        let value = self.raw(name).map_or("null".to_owned(), |v| v.to_string());
        let origin = self.vars.origin.get(name).map_or("", String::as_str);
        Error::usage(format!("variable {name} = {value} ({origin}): {rule}"))
    }

    fn number(&self, name: &str) -> Result<f64, Error> {
        self.raw(name).and_then(Value::as_f64).ok_or_else(|| {
            self.bad(
                name,
                "the rehearsal needs a number here (is it declared in infra/?)",
            )
        })
    }

    fn optional_number(&self, name: &str) -> Option<f64> {
        self.raw(name).and_then(Value::as_f64)
    }

    fn checked(&self, name: &str, ok: impl Fn(f64) -> bool, rule: &str) -> Result<f64, Error> {
        let v = self.number(name)?;
        if ok(v) {
            Ok(v)
        } else {
            Err(self.bad(name, rule))
        }
    }

    fn whole(&self, name: &str, least: f64) -> Result<i64, Error> {
        self.checked(
            name,
            |v| v.fract() == 0.0 && v >= least,
            &format!("must be a whole number of at least {least}"),
        )
        .map(|v| v as i64)
    }

    fn string(&self, name: &str) -> Result<String, Error> {
        self.raw(name)
            .and_then(Value::as_str)
            .map(str::to_owned)
            .ok_or_else(|| {
                self.bad(
                    name,
                    "the rehearsal needs a string here (is it declared in infra/?)",
                )
            })
    }
}

/// A literal attribute of a resource, when infra/ writes one.
fn resource_attr<'a>(vars: &'a Variables, resource: &str, key: &str) -> Option<&'a Value> {
    vars.resources
        .get(resource)
        .and_then(|attrs| attrs.get(key))
}

fn alarm_rule(vars: &Variables, resource: &str, periods: usize) -> Result<AlarmRule, Error> {
    let treat = match resource_attr(vars, resource, "treat_missing_data").and_then(Value::as_str) {
        None => MissingData::Missing,
        Some(text) => MissingData::parse(text).ok_or_else(|| {
            Error::usage(format!(
                "{resource}: treat_missing_data '{text}' is not one CloudWatch knows"
            ))
        })?,
    };
    let to_alarm = resource_attr(vars, resource, "datapoints_to_alarm")
        .and_then(Value::as_f64)
        .map_or(periods, |m| m as usize);
    Ok(AlarmRule {
        evaluation_periods: periods,
        datapoints_to_alarm: to_alarm.clamp(1, periods),
        treat_missing_data: treat,
    })
}

fn adjustment_type(
    vars: &Variables,
    resource: &str,
) -> Result<(AdjustmentType, Option<i64>), Error> {
    let kind = match resource_attr(vars, resource, "adjustment_type").and_then(Value::as_str) {
        None => AdjustmentType::ChangeInCapacity,
        Some(text) => AdjustmentType::parse(text)
            .ok_or_else(|| Error::usage(format!("{resource}: unknown adjustment_type '{text}'")))?,
    };
    let magnitude = resource_attr(vars, resource, "min_adjustment_magnitude")
        .and_then(Value::as_f64)
        .map(|m| m as i64);
    Ok((kind, magnitude))
}

fn step_policies(r: &Reader) -> Result<(StepPolicy, StepPolicy), Error> {
    let out_threshold = r.checked(
        "scale_out_cpu_threshold",
        |v| v > 0.0 && v < 100.0,
        "must be a percentage between 0 and 100",
    )?;
    let in_threshold = r.checked(
        "scale_in_cpu_threshold",
        |v| v > 0.0 && v < 100.0,
        "must be a percentage between 0 and 100",
    )?;
    if in_threshold >= out_threshold {
        return Err(r.bad(
            "scale_in_cpu_threshold",
            &format!("must be below scale_out_cpu_threshold ({out_threshold}), or the two alarms fight (terraform apply refuses it too)"),
        ));
    }
    let period = |name: &str| {
        r.checked(
            name,
            |v| v >= 60.0 && v % 60.0 == 0.0,
            "must be a multiple of 60 seconds, at least 60",
        )
        .map(|v| (v / 60.0) as usize)
    };
    let raw_steps = r
        .raw("scale_out_steps")
        .and_then(Value::as_array)
        .filter(|s| !s.is_empty())
        .ok_or_else(|| {
            r.bad(
                "scale_out_steps",
                "needs at least one { lower_bound, adjustment }",
            )
        })?;
    let mut bounds = Vec::new();
    for (i, step) in raw_steps.iter().enumerate() {
        let lower = step.get("lower_bound").and_then(Value::as_f64);
        let adjustment = step.get("adjustment").and_then(Value::as_f64);
        match (lower, adjustment) {
            (Some(l), Some(a)) if a.fract() == 0.0 && a >= 1.0 => bounds.push((l, a)),
            _ => {
                return Err(r.bad(
                    "scale_out_steps",
                    &format!("step {i} needs a lower_bound and a whole adjustment of at least 1"),
                ));
            }
        }
    }
    if bounds[0].0 != 0.0 || bounds.windows(2).any(|w| w[1].0 <= w[0].0) {
        return Err(r.bad(
            "scale_out_steps",
            "the first step must start at lower_bound 0 and lower bounds must increase",
        ));
    }
    if let Some((last, _)) = bounds.last()
        && out_threshold + last >= 100.0
    {
        return Err(r.bad(
            "scale_out_steps",
            &format!(
                "the last step starts at {} % CPU, which average CPU never exceeds",
                out_threshold + last
            ),
        ));
    }
    let steps = bounds
        .iter()
        .enumerate()
        .map(|(i, (lower, adjustment))| Step {
            lower: Some(*lower),
            upper: bounds.get(i + 1).map(|b| b.0),
            adjustment: *adjustment,
        })
        .collect();
    let in_adjustment = r.checked(
        "scale_in_adjustment",
        |v| v.fract() == 0.0 && v <= -1.0,
        "must be a negative whole number",
    )?;
    let out_periods = r.whole("scale_out_evaluation_periods", 1.0)? as usize;
    let in_periods = r.whole("scale_in_evaluation_periods", 1.0)? as usize;
    let (out_kind, out_magnitude) = adjustment_type(r.vars, "aws_autoscaling_policy.scale_out")?;
    let (in_kind, in_magnitude) = adjustment_type(r.vars, "aws_autoscaling_policy.scale_in")?;
    let out = StepPolicy {
        name: "cpu-high".to_owned(),
        alarm: alarm_rule(r.vars, "aws_cloudwatch_metric_alarm.cpu_high", out_periods)?,
        period_minutes: period("scale_out_period_secs")?,
        threshold: out_threshold,
        comparison: Comparison::GreaterThanThreshold,
        adjustment_type: out_kind,
        min_adjustment_magnitude: out_magnitude,
        steps,
    };
    let scale_in = StepPolicy {
        name: "cpu-low".to_owned(),
        alarm: alarm_rule(r.vars, "aws_cloudwatch_metric_alarm.cpu_low", in_periods)?,
        period_minutes: period("scale_in_period_secs")?,
        threshold: in_threshold,
        comparison: Comparison::LessThanThreshold,
        adjustment_type: in_kind,
        min_adjustment_magnitude: in_magnitude,
        steps: vec![Step {
            lower: None,
            upper: Some(0.0),
            adjustment: in_adjustment,
        }],
    };
    Ok((out, scale_in))
}

fn schedules(r: &Reader) -> Result<Vec<ScheduledAction>, Error> {
    let Some(map) = r.raw("schedules").and_then(Value::as_object) else {
        return Ok(Vec::new());
    };
    map.iter()
        .map(|(name, s)| {
            let text = |key: &str| s.get(key).and_then(Value::as_str);
            let size = |key: &str| s.get(key).and_then(Value::as_f64).unwrap_or(-1.0);
            let sizes = [size("min_size"), size("max_size"), size("desired_capacity")];
            if sizes.iter().any(|v| v.fract() != 0.0 || *v < -1.0) {
                return Err(r.bad(
                    "schedules",
                    &format!("schedule '{name}': sizes must be whole numbers, -1 for unchanged"),
                ));
            }
            if sizes.iter().all(|v| *v == -1.0) {
                return Err(r.bad(
                    "schedules",
                    &format!("schedule '{name}' sets none of min_size, max_size, desired_capacity"),
                ));
            }
            let recurrence = text("recurrence").ok_or_else(|| {
                r.bad("schedules", &format!("schedule '{name}' has no recurrence"))
            })?;
            ScheduledAction::new(
                name,
                recurrence,
                text("time_zone").unwrap_or("Etc/UTC"),
                sizes.map(|v| v as i64),
            )
            .map_err(|e| Error::usage(format!("variable schedules: {e}")))
        })
        .collect()
}

/// The group of `vars`, and the warnings the policy deserves before any load.
pub fn group(vars: &Variables, assumptions: &Assumptions) -> Result<(Group, Vec<String>), Error> {
    let r = Reader { vars };
    let mut warnings = Vec::new();
    let min_size = r.whole("min_size", 0.0)?;
    let max_size = r.whole("max_size", 1.0)?;
    if min_size > max_size {
        return Err(r.bad(
            "min_size",
            &format!("must not exceed max_size ({max_size})"),
        ));
    }
    let warmup_secs = match r.optional_number("instance_warmup_secs") {
        Some(v) if v >= 0.0 => v,
        Some(_) => return Err(r.bad("instance_warmup_secs", "must be at least 0")),
        None => {
            warnings.push(format!(
                "warm-up unset: {} s default applies (Auto Scaling falls back on the default cooldown); set instance_warmup_secs",
                assumptions.default_warmup_secs
            ));
            assumptions.default_warmup_secs
        }
    };
    let non_negative = |name: &str, fallback: f64| match r.optional_number(name) {
        Some(v) if v >= 0.0 => Ok(v),
        Some(_) => Err(r.bad(name, "must be at least 0")),
        None => Ok(fallback),
    };
    let scaling = match r.string("scaling_mode")?.as_str() {
        "step" => {
            let (out, scale_in) = step_policies(&r)?;
            if out.threshold - scale_in.threshold < 10.0 {
                warnings.push(format!(
                    "scale-in alarm at {} % is within 10 points of scale-out at {} %: expect flapping",
                    scale_in.threshold, out.threshold
                ));
            } else if let Some(n) = (2..=max_size)
                .find(|n| scale_in.threshold * *n as f64 / (*n - 1) as f64 > out.threshold)
            {
                warnings.push(format!(
                    "with {n} instances just under the scale-in threshold ({} %), removing one puts the others at {:.0} %, above scale-out ({} %): expect flapping",
                    scale_in.threshold,
                    scale_in.threshold * n as f64 / (n - 1) as f64,
                    out.threshold
                ));
            }
            Scaling::Step { out, scale_in }
        }
        "target_tracking" => {
            let target = r.checked(
                "target_cpu_percent",
                |v| v > 0.0 && v < 100.0,
                "must be a percentage between 0 and 100",
            )?;
            let mut policies = vec![TargetPolicy {
                metric: TrackedMetric::Cpu,
                target,
                scale_in_enabled: true,
            }];
            if let Some(requests) = r.optional_number("target_requests_per_instance") {
                if requests <= 0.0 {
                    return Err(r.bad("target_requests_per_instance", "must be null or positive"));
                }
                policies.push(TargetPolicy {
                    metric: TrackedMetric::RequestsPerTarget,
                    target: requests,
                    scale_in_enabled: true,
                });
            }
            Scaling::TargetTracking { policies }
        }
        other => {
            return Err(r.bad(
                "scaling_mode",
                &format!("'{other}' is neither \"step\" nor \"target_tracking\""),
            ));
        }
    };
    let health = vars.locals.get("health_check");
    let health_value = |key: &str| health.and_then(|h| h.get(key)).and_then(Value::as_f64);
    let (interval, threshold) = match (health_value("interval"), health_value("healthy_threshold"))
    {
        (Some(i), Some(t)) => (i, t),
        _ => {
            warnings.push("no literal local.health_check { interval, healthy_threshold } in infra/: the target group's defaults (30 s x 5) apply".to_owned());
            (30.0, 5.0)
        }
    };
    let public_ip = resource_attr(vars, "aws_subnet.public", "map_public_ip_on_launch")
        .and_then(Value::as_bool)
        .unwrap_or(true);
    let group = Group {
        instance_type: r.string("instance_type")?,
        min_size,
        max_size,
        warmup_secs,
        deregistration_delay_secs: non_negative("deregistration_delay_secs", 300.0)?,
        shutdown_drain_secs: non_negative("shutdown_drain_secs", 0.0)?,
        request_timeout_secs: r
            .optional_number("request_timeout_secs")
            .filter(|v| *v > 0.0)
            .unwrap_or(60.0),
        health_check_interval_secs: interval,
        healthy_threshold: threshold,
        az_count: r
            .optional_number("az_count")
            .filter(|v| *v >= 1.0)
            .unwrap_or(2.0),
        public_ip_per_instance: public_ip,
        scaling,
        schedules: schedules(&r)?,
    };
    Ok((group, warnings))
}
