//! The group the variables describe: every number the rules need. Nothing here is a second
//! copy of a default: all comes from `crate::variables` (infra/ as Terraform reads it) or
//! from a named assumption. What Terraform refuses has been refused before this runs
//! (`crate::terraform`, with Terraform's messages); what Terraform accepts is rehearsed,
//! with a warning when it deserves one. The model refuses only what it cannot represent
//! (a value that is not a number, a period that is not whole minutes), naming the variable.

use std::path::Path;

use serde::Serialize;
use serde_json::Value;

use crate::assumptions::Assumptions;
use crate::error::Error;
use crate::rules::alarm::{AlarmRule, MissingData};
use crate::rules::schedule::ScheduledAction;
use crate::rules::step::{AdjustmentType, Step};
use crate::terraform::{self, Context};
use crate::variables::{self, Variables};

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
    /// The target group's health check interval: a new target serves after one check.
    pub health_check_interval_secs: f64,
    /// Failed checks before the load balancer stops routing to a target.
    pub unhealthy_threshold: f64,
    /// Passing checks before it routes to a target that was unhealthy again.
    pub healthy_threshold: f64,
    /// `health_check_type = "ELB"`: the group replaces what the load balancer finds unhealthy.
    pub elb_health_checks: bool,
    /// `health_check_grace_period`: seconds after InService before that applies.
    pub health_check_grace_secs: f64,
    /// Availability Zones the group spreads over.
    pub az_count: usize,
    pub public_ip_per_instance: bool,
    /// The root volume's size (the variable, else the AMI's: Packer's default).
    pub root_volume_gib: f64,
    /// The launch template's detailed monitoring (1-minute metrics, billed).
    pub detailed_monitoring: bool,
    /// CloudWatch alarms the stack runs, target tracking's own included.
    pub alarms: usize,
    pub dashboards: usize,
    /// Global secondary indexes every write also updates.
    pub table_indexes: usize,
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

    fn whole(&self, name: &str) -> Result<i64, Error> {
        self.checked(
            name,
            |v| v.fract() == 0.0,
            "the rehearsal needs a whole number here",
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
        .and_then(|r| r.attributes.get(key))
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

/// A policy's adjustment type and minimum magnitude.
struct Adjustment {
    kind: AdjustmentType,
    min_magnitude: Option<i64>,
}

fn adjustment(vars: &Variables, resource: &str) -> Result<Adjustment, Error> {
    let kind = match resource_attr(vars, resource, "adjustment_type").and_then(Value::as_str) {
        None => AdjustmentType::ChangeInCapacity,
        Some(text) => AdjustmentType::parse(text)
            .ok_or_else(|| Error::usage(format!("{resource}: unknown adjustment_type '{text}'")))?,
    };
    let min_magnitude = resource_attr(vars, resource, "min_adjustment_magnitude")
        .and_then(Value::as_f64)
        .map(|m| m as i64);
    Ok(Adjustment {
        kind,
        min_magnitude,
    })
}

/// The scale-out and scale-in step policies.
struct StepPolicies {
    out: StepPolicy,
    scale_in: StepPolicy,
}

fn step_policies(r: &Reader, warnings: &mut Vec<String>) -> Result<StepPolicies, Error> {
    let out_threshold = r.number("scale_out_cpu_threshold")?;
    let in_threshold = r.number("scale_in_cpu_threshold")?;
    if in_threshold >= out_threshold {
        warnings.push(format!(
            "scale-in alarm at {in_threshold} % is not below scale-out at {out_threshold} %: the two alarms fight"
        ));
    }
    let period = |name: &str| {
        r.checked(
            name,
            |v| v >= 60.0 && v % 60.0 == 0.0,
            "the rehearsal models periods of whole minutes (a multiple of 60 seconds)",
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
                "the rehearsal needs at least one { lower_bound, adjustment }",
            )
        })?;
    let mut bounds = Vec::new();
    for (i, step) in raw_steps.iter().enumerate() {
        let lower = step.get("lower_bound").and_then(Value::as_f64);
        let adjustment = step.get("adjustment").and_then(Value::as_f64);
        match (lower, adjustment) {
            (Some(l), Some(a)) => bounds.push((l, a)),
            _ => {
                return Err(r.bad(
                    "scale_out_steps",
                    &format!("step {i}: the rehearsal needs a lower_bound and an adjustment"),
                ));
            }
        }
    }
    bounds.sort_by(|a, b| a.0.total_cmp(&b.0));
    if let Some((last, _)) = bounds.last()
        && out_threshold + last >= 100.0
    {
        warnings.push(format!(
            "the last scale-out step starts at {} % CPU, which average CPU never exceeds: it never applies",
            out_threshold + last
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
    let in_adjustment = r.number("scale_in_adjustment")?;
    let out_periods = r.whole("scale_out_evaluation_periods")? as usize;
    let in_periods = r.whole("scale_in_evaluation_periods")? as usize;
    let out_adjustment = adjustment(r.vars, "aws_autoscaling_policy.scale_out")?;
    let in_kind = adjustment(r.vars, "aws_autoscaling_policy.scale_in")?;
    let out = StepPolicy {
        name: "cpu-high".to_owned(),
        alarm: alarm_rule(r.vars, "aws_cloudwatch_metric_alarm.cpu_high", out_periods)?,
        period_minutes: period("scale_out_period_secs")?,
        threshold: out_threshold,
        comparison: Comparison::GreaterThanThreshold,
        adjustment_type: out_adjustment.kind,
        min_adjustment_magnitude: out_adjustment.min_magnitude,
        steps,
    };
    let scale_in = StepPolicy {
        name: "cpu-low".to_owned(),
        alarm: alarm_rule(r.vars, "aws_cloudwatch_metric_alarm.cpu_low", in_periods)?,
        period_minutes: period("scale_in_period_secs")?,
        threshold: in_threshold,
        comparison: Comparison::LessThanThreshold,
        adjustment_type: in_kind.kind,
        min_adjustment_magnitude: in_kind.min_magnitude,
        steps: vec![Step {
            lower: None,
            upper: Some(0.0),
            adjustment: in_adjustment,
        }],
    };
    Ok(StepPolicies { out, scale_in })
}

/// The scheduled actions the rehearsal can follow. One it cannot read (a cron feature AWS's
/// recurrence does not have, an unknown time zone) is left out with a warning: Terraform
/// plans it, and AWS would refuse it when applied.
fn schedules(r: &Reader, warnings: &mut Vec<String>) -> Result<Vec<ScheduledAction>, Error> {
    let Some(map) = r.raw("schedules").and_then(Value::as_object) else {
        return Ok(Vec::new());
    };
    let mut actions = Vec::new();
    for (name, s) in map {
        let text = |key: &str| s.get(key).and_then(Value::as_str);
        let size = |key: &str| s.get(key).and_then(Value::as_f64).unwrap_or(-1.0);
        let sizes = [size("min_size"), size("max_size"), size("desired_capacity")];
        let Some(recurrence) = text("recurrence") else {
            return Err(r.bad("schedules", &format!("schedule '{name}' has no recurrence")));
        };
        match ScheduledAction::new(
            name,
            recurrence,
            text("time_zone").unwrap_or("Etc/UTC"),
            sizes.map(|v| v as i64),
        ) {
            Ok(action) => actions.push(action),
            Err(e) => warnings.push(format!(
                "{e}: not rehearsed (Terraform plans it; AWS's PutScheduledUpdateGroupAction would refuse it on apply)"
            )),
        }
    }
    Ok(actions)
}

/// The group of `vars`, and the warnings the policy deserves before any load.
#[derive(Debug)]
pub struct Read {
    pub group: Group,
    pub warnings: Vec<String>,
}

/// How many of the stack's billable CloudWatch resources the plan creates: the module's
/// alarms, two per target-tracking policy (AWS creates them), and dashboards.
struct Monitoring {
    alarms: usize,
    dashboards: usize,
}

fn monitoring(vars: &Variables, context: &Context) -> Monitoring {
    let count = |name: &str| terraform::instance_count(&vars.checks, context, name).unwrap_or(1);
    let mut alarms = 0;
    let mut dashboards = 0;
    for (name, resource) in &vars.resources {
        if name.starts_with("aws_cloudwatch_metric_alarm.") {
            alarms += count(name);
        } else if name.starts_with("aws_cloudwatch_dashboard.") {
            dashboards += count(name);
        } else if name.starts_with("aws_autoscaling_policy.")
            && resource
                .attributes
                .get("policy_type")
                .and_then(Value::as_str)
                == Some("TargetTrackingScaling")
        {
            alarms += 2 * count(name);
        }
    }
    Monitoring { alarms, dashboards }
}

/// Reads the group of `vars` (in workspace `workspace`, the environment).
pub fn group(
    vars: &Variables,
    assumptions: &Assumptions,
    workspace: &str,
    infra: &Path,
) -> Result<Read, Error> {
    let r = Reader { vars };
    let mut warnings = Vec::new();
    let min_size = r.whole("min_size")?;
    let max_size = r.whole("max_size")?;
    let warmup_secs = match r.optional_number("instance_warmup_secs") {
        Some(v) => v,
        None => {
            warnings.push(format!(
                "warm-up unset: {} s default applies (Auto Scaling falls back on the default cooldown); set instance_warmup_secs",
                assumptions.default_warmup_secs
            ));
            assumptions.default_warmup_secs
        }
    };
    let scaling = match r.string("scaling_mode")?.as_str() {
        "step" => {
            let StepPolicies { out, scale_in } = step_policies(&r, &mut warnings)?;
            if out.threshold > scale_in.threshold && out.threshold - scale_in.threshold < 10.0 {
                warnings.push(format!(
                    "scale-in alarm at {} % is within 10 points of scale-out at {} %: expect flapping",
                    scale_in.threshold, out.threshold
                ));
            } else if let Some(n) = (2..=max_size)
                .find(|n| scale_in.threshold * *n as f64 / (*n - 1) as f64 > out.threshold)
                .filter(|_| out.threshold > scale_in.threshold)
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
            let mut policies = vec![TargetPolicy {
                metric: TrackedMetric::Cpu,
                target: r.number("target_cpu_percent")?,
            }];
            if let Some(requests) = r.optional_number("target_requests_per_instance") {
                policies.push(TargetPolicy {
                    metric: TrackedMetric::RequestsPerTarget,
                    target: requests,
                });
            }
            Scaling::TargetTracking { policies }
        }
        other => {
            return Err(r.bad(
                "scaling_mode",
                &format!("the rehearsal models \"step\" and \"target_tracking\", not '{other}'"),
            ));
        }
    };
    let health = vars.locals.get("health_check");
    let interval = match health
        .and_then(|h| h.get("interval"))
        .and_then(Value::as_f64)
    {
        Some(i) => i,
        None => {
            warnings.push("no literal local.health_check { interval } in infra/: the target group's default (30 s) applies".to_owned());
            30.0
        }
    };
    let mut threshold = |key: &str, default: f64| {
        health
            .and_then(|h| h.get(key))
            .and_then(Value::as_f64)
            .unwrap_or_else(|| {
                warnings.push(format!("no literal local.health_check {{ {key} }} in infra/: the target group's default ({default}) applies"));
                default
            })
    };
    // The target group's defaults for HTTP (Elastic Load Balancing, "Health check settings").
    let unhealthy_threshold = threshold("unhealthy_threshold", 2.0);
    let healthy_threshold = threshold("healthy_threshold", 5.0);
    // Auto Scaling's default type is EC2 (status checks only).
    let elb_health_checks = resource_attr(vars, "aws_autoscaling_group.this", "health_check_type")
        .and_then(Value::as_str)
        == Some("ELB");
    if resource_attr(
        vars,
        "aws_lb_target_group.this",
        "load_balancing_cross_zone_enabled",
    )
    .and_then(|v| {
        v.as_str()
            .map(str::to_owned)
            .or_else(|| v.as_bool().map(|b| b.to_string()))
    })
    .as_deref()
        == Some("false")
    {
        warnings.push("the target group turns cross-zone load balancing off: the rehearsal models it on (the load balancer's setting, always on for an ALB), so a zone failure's effect is understated".to_owned());
    }
    let public_ip = resource_attr(vars, "aws_subnet.public", "map_public_ip_on_launch")
        .and_then(Value::as_bool)
        .unwrap_or(true);
    let root_volume_gib = match r.optional_number("root_volume_size_gib") {
        Some(size) => size,
        None => match variables::packer_default(infra, "root_volume_size").and_then(|v| v.as_f64())
        {
            Some(size) => size,
            None => {
                warnings.push("no root_volume_size_gib and no literal default of Packer's root_volume_size: the volume is priced at 8 GiB".to_owned());
                8.0
            }
        },
    };
    let detailed_monitoring = vars
        .resources
        .get("aws_launch_template.this")
        .and_then(|t| t.blocks.get("monitoring"))
        .and_then(|m| m.first())
        .and_then(|m| m.get("enabled"))
        .and_then(Value::as_bool)
        .unwrap_or(false);
    let table_indexes = vars
        .resources
        .iter()
        .filter(|(name, _)| name.starts_with("aws_dynamodb_table."))
        .map(|(_, t)| t.blocks.get("global_secondary_index").map_or(0, Vec::len))
        .sum();
    let infra_text = infra.display().to_string();
    let context = Context {
        values: &vars.values,
        workspace,
        path: &infra_text,
    };
    let Monitoring { alarms, dashboards } = monitoring(vars, &context);
    let group = Group {
        instance_type: r.string("instance_type")?,
        min_size,
        max_size,
        warmup_secs,
        deregistration_delay_secs: r
            .optional_number("deregistration_delay_secs")
            .unwrap_or(300.0),
        shutdown_drain_secs: r.optional_number("shutdown_drain_secs").unwrap_or(0.0),
        request_timeout_secs: r.number("request_timeout_secs")?,
        health_check_interval_secs: interval,
        unhealthy_threshold,
        healthy_threshold,
        elb_health_checks,
        health_check_grace_secs: r
            .optional_number("health_check_grace_period_secs")
            .unwrap_or(0.0),
        az_count: r.whole("az_count")?.max(1) as usize,
        public_ip_per_instance: public_ip,
        root_volume_gib,
        detailed_monitoring,
        alarms,
        dashboards,
        table_indexes,
        scaling,
        schedules: schedules(&r, &mut warnings)?,
    };
    Ok(Read { group, warnings })
}
