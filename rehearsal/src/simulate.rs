//! The minute loop: it only composes the rules (`crate::rules`), in the order AWS applies
//! them each minute:
//! 1. instances whose termination is due leave the group;
//! 2. scheduled actions due this minute (cron in their own time zone) set min/max/desired;
//! 3. every alarm evaluates the datapoints it can see (delayed, sliding, M of N);
//! 4. every policy whose alarm is in ALARM asks for a capacity (re-invoked each minute
//!    while the alarm stays in ALARM); the largest wins; the result is clamped;
//! 5. the group launches or drains (oldest first) to reach the desired capacity;
//! 6. the load balancer spreads the minute's requests over the targets that serve; the
//!    queueing model gives CPU, latency and failures;
//! 7. the minute's datapoints are recorded (CPU of warm InService instances; requests per
//!    target), and the seconds each instance was billed.

use jiff::{SignedDuration, Timestamp};
use serde::Serialize;

use crate::assumptions::Assumptions;
use crate::model::{Comparison, Group, Scaling, StepPolicy, TrackedMetric};
use crate::prices::{InstancePrice, Prices};
use crate::rules::alarm::{self, AlarmRule, AlarmState, MissingData};
use crate::rules::alb;
use crate::rules::capacity::{self, Counts, Direction, Request};
use crate::rules::cost::{self, LcuUsage};
use crate::rules::lifecycle::{Instance, LONG_AGO, Timings};
use crate::rules::metric::{MinuteSamples, Series};
use crate::rules::queueing::Station;
use crate::rules::schedule::{self, Sizes};
use crate::rules::step;
use crate::rules::target_tracking::{self, PolicyView};

/// What one request costs and how long it waits outside the CPU.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Workload {
    /// CPU seconds per request on one vCPU of the instance type.
    pub service_secs: f64,
    /// Load balancer, network and store latency per request.
    pub fixed_secs: f64,
}

/// Everything one rehearsal needs.
#[derive(Debug, Clone, Copy)]
pub struct Scenario<'a> {
    pub group: &'a Group,
    pub assumptions: &'a Assumptions,
    pub prices: &'a Prices,
    pub instance: InstancePrice,
    pub workload: Workload,
    pub load: &'a [f64],
    pub start: Timestamp,
}

/// One simulated minute.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MinuteRow {
    pub minute: usize,
    pub time: Timestamp,
    pub offered_rps: f64,
    pub min_size: i64,
    pub max_size: i64,
    pub desired: i64,
    pub in_service: i64,
    pub serving: f64,
    pub warming: i64,
    pub terminating: i64,
    /// The group's CPUUtilization datapoint (warm InService instances), if any.
    pub cpu_percent: Option<f64>,
    pub utilization: f64,
    pub served_rps: f64,
    pub failed_rps: f64,
    pub mean_ms: Option<f64>,
    pub p50_ms: Option<f64>,
    pub p99_ms: Option<f64>,
    pub low_confidence: bool,
    pub alarms: Vec<(String, AlarmState)>,
    pub events: Vec<String>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct Costs {
    pub instances_usd: f64,
    pub surplus_credits_usd: f64,
    pub alb_hours_usd: f64,
    pub alb_lcu_usd: f64,
    pub public_ipv4_usd: f64,
    pub total_usd: f64,
    pub instance_hours: f64,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Outcome {
    pub rows: Vec<MinuteRow>,
    pub costs: Costs,
    pub initial: (i64, i64, i64),
    pub warnings: Vec<String>,
}

/// An alarm with its memory.
struct LiveAlarm {
    name: String,
    rule: AlarmRule,
    period: usize,
    state: AlarmState,
}

impl LiveAlarm {
    fn new(name: String, rule: AlarmRule, period: usize) -> LiveAlarm {
        LiveAlarm {
            name,
            rule,
            period,
            state: AlarmState::InsufficientData,
        }
    }

    /// Evaluates at minute `now`; returns the aggregated value of the datapoints it used
    /// when it is in ALARM (the policy's Average aggregation).
    fn evaluate(
        &mut self,
        series: &Series,
        now: i64,
        a: &Assumptions,
        breaches: impl Fn(f64) -> bool,
    ) -> Option<f64> {
        let count = self.rule.evaluation_periods + a.alarm_extra_datapoints as usize;
        let range = series.evaluation_range(now, a.metric_delay_minutes as i64, self.period, count);
        let points: Vec<Option<bool>> = range.iter().map(|v| v.map(&breaches)).collect();
        self.state = alarm::evaluate(&self.rule, &points, self.state);
        if self.state != AlarmState::Alarm {
            return None;
        }
        let used: Vec<f64> = range
            .iter()
            .rev()
            .flatten()
            .take(self.rule.evaluation_periods)
            .copied()
            .collect();
        (!used.is_empty()).then(|| used.iter().sum::<f64>() / used.len() as f64)
    }
}

fn n_of_n(n: f64) -> AlarmRule {
    AlarmRule {
        evaluation_periods: n as usize,
        datapoints_to_alarm: n as usize,
        treat_missing_data: MissingData::Missing,
    }
}

/// The sizes in force at the start: each action's latest firing before it, in order.
fn initial_sizes(s: &Scenario, delay: i64) -> (Sizes, Vec<String>) {
    let g = s.group;
    let mut sizes = Sizes {
        min: g.min_size,
        max: g.max_size,
        desired: g.min_size,
    };
    let mut warnings = Vec::new();
    let mut last: Vec<Option<i64>> = vec![None; g.schedules.len()];
    // A month and a bit covers every cron the variable allows but yearly ones.
    for back in 1..=(32 * 1440) {
        let fired_at = -back - delay;
        let at = s.start + SignedDuration::from_mins(fired_at);
        for (i, action) in g.schedules.iter().enumerate() {
            if last[i].is_none() && action.fires_at(at) {
                last[i] = Some(fired_at);
            }
        }
        if last.iter().all(Option::is_some) {
            break;
        }
    }
    let mut order: Vec<(i64, usize)> = last
        .iter()
        .enumerate()
        .filter_map(|(i, m)| m.map(|m| (m, i)))
        .collect();
    order.sort();
    for (_, i) in order {
        match schedule::apply(&g.schedules[i], sizes) {
            Ok(next) => sizes = next,
            Err(e) => warnings.push(e),
        }
    }
    let wanted = if s.assumptions.initial_capacity >= 0.0 {
        s.assumptions.initial_capacity as i64
    } else {
        sizes.min
    };
    sizes.desired = capacity::clamp(wanted, sizes.min, sizes.max);
    (sizes, warnings)
}

/// Hourly totals of the load balancer's LCU dimensions.
#[derive(Default, Clone, Copy)]
struct HourUsage {
    usage: LcuUsage,
    minutes: f64,
}

/// Runs the rehearsal.
pub fn run(s: &Scenario) -> Outcome {
    let g = s.group;
    let a = s.assumptions;
    let timings = Timings {
        boot_secs: a.boot_secs,
        health_check_secs: g.health_check_interval_secs * g.healthy_threshold,
        warmup_secs: g.warmup_secs,
        deregistration_delay_secs: g.deregistration_delay_secs,
        shutdown_secs: g.shutdown_drain_secs,
    };
    let station = Station {
        servers: s.instance.vcpus,
        service_secs: s.workload.service_secs,
        timeout_secs: g.request_timeout_secs,
        fixed_secs: s.workload.fixed_secs,
    };
    let schedule_delay = a.schedule_delay_minutes as i64;
    let (mut sizes, mut warnings) = initial_sizes(s, schedule_delay);
    let initial = (sizes.min, sizes.max, sizes.desired);
    let mut instances: Vec<Instance> = (0..sizes.desired)
        .map(|_| Instance::launched(LONG_AGO))
        .collect();
    // Per instance, vCPU-seconds spent and earned (burstable credits).
    let mut credits: Vec<(f64, f64)> = vec![(0.0, 0.0); instances.len()];
    let mut cpu = Series::with_capacity(s.load.len());
    let mut requests_per_target = Series::with_capacity(s.load.len());

    let mut step_alarms: Vec<(LiveAlarm, &StepPolicy)> = Vec::new();
    let mut tt_alarms: Vec<(LiveAlarm, LiveAlarm, TrackedMetric, f64)> = Vec::new();
    match &g.scaling {
        Scaling::Step { out, scale_in } => {
            for policy in [out, scale_in] {
                step_alarms.push((
                    LiveAlarm::new(policy.name.clone(), policy.alarm, policy.period_minutes),
                    policy,
                ));
            }
        }
        Scaling::TargetTracking { policies } => {
            for p in policies {
                let label = match p.metric {
                    TrackedMetric::Cpu => "cpu",
                    TrackedMetric::RequestsPerTarget => "requests",
                };
                tt_alarms.push((
                    LiveAlarm::new(
                        format!("tt-{label}-high"),
                        n_of_n(a.tt_scale_out_datapoints),
                        1,
                    ),
                    LiveAlarm::new(
                        format!("tt-{label}-low"),
                        n_of_n(a.tt_scale_in_datapoints),
                        1,
                    ),
                    p.metric,
                    p.target,
                ));
            }
        }
    }

    let mut rows = Vec::with_capacity(s.load.len());
    let mut hours: Vec<HourUsage> = vec![HourUsage::default(); s.load.len().div_ceil(60)];
    let mut instance_secs = 0.0;
    // Credit accounts of terminated instances, billed at the end.
    let mut retired: Vec<(f64, f64)> = Vec::new();
    for (m, offered) in s.load.iter().copied().enumerate() {
        let now = m as i64;
        let t = m as f64 * 60.0;
        let time = s.start + SignedDuration::from_mins(now);
        let mut events = Vec::new();

        // 1. Terminations that are due.
        let mut i = 0;
        while i < instances.len() {
            if instances[i].is_gone(t, &timings) {
                instances.swap_remove(i);
                retired.push(credits.swap_remove(i));
            } else {
                i += 1;
            }
        }
        // 2. Scheduled actions.
        let fired_at = s.start + SignedDuration::from_mins(now - schedule_delay);
        for action in &g.schedules {
            if action.fires_at(fired_at) {
                match schedule::apply(action, sizes) {
                    Ok(next) => {
                        events.push(format!(
                            "schedule {}: min {} max {} desired {}",
                            action.name, next.min, next.max, next.desired
                        ));
                        sizes = next;
                    }
                    Err(e) => {
                        events.push(e.clone());
                        warnings.push(format!("{e} at {time}"));
                    }
                }
            }
        }
        // 3-4. Alarms and policies.
        let counts = count(&instances, t, &timings);
        let mut requests: Vec<Request> = Vec::new();
        let mut alarm_states = Vec::new();
        for (live, policy) in &mut step_alarms {
            let threshold = policy.threshold;
            let comparison = policy.comparison;
            let value = live.evaluate(&cpu, now, a, |v| comparison.breaches(v, threshold));
            alarm_states.push((live.name.clone(), live.state));
            let Some(value) = value else { continue };
            let Some(found) = step::matching_step(&policy.steps, threshold, value) else {
                continue;
            };
            let direction = if found.adjustment > 0.0 {
                Direction::Out
            } else {
                Direction::In
            };
            let current = capacity::current_capacity(direction, counts);
            let asked = step::adjusted_capacity(
                policy.adjustment_type,
                found.adjustment,
                current,
                policy.min_adjustment_magnitude,
            );
            events.push(format!(
                "{} ALARM at {value:.1} %: {:+} from {current} asks {asked}",
                live.name, found.adjustment
            ));
            requests.push(Request {
                direction,
                capacity: asked,
            });
        }
        let mut views = Vec::new();
        for (high, low, metric, target) in &mut tt_alarms {
            let series = match metric {
                TrackedMetric::Cpu => &cpu,
                TrackedMetric::RequestsPerTarget => &requests_per_target,
            };
            let target = *target;
            let low_line = target * a.tt_scale_in_fraction;
            let high_value = high.evaluate(series, now, a, |v| {
                Comparison::GreaterThanThreshold.breaches(v, target)
            });
            let low_value = low.evaluate(series, now, a, |v| {
                Comparison::LessThanThreshold.breaches(v, low_line)
            });
            alarm_states.push((high.name.clone(), high.state));
            alarm_states.push((low.name.clone(), low.state));
            let out_capacity = high_value.map_or(0, |v| {
                target_tracking::proportional_capacity(
                    capacity::current_capacity(Direction::Out, counts),
                    v,
                    target,
                )
            });
            let in_capacity = low_value.map_or(i64::MAX, |v| {
                target_tracking::proportional_capacity(
                    capacity::current_capacity(Direction::In, counts),
                    v,
                    target,
                )
            });
            views.push(PolicyView {
                high: high_value.is_some(),
                out_capacity,
                low: low_value.is_some(),
                in_capacity,
                scale_in_enabled: true,
            });
        }
        for r in target_tracking::combine(&views) {
            events.push(format!("target tracking asks {}", r.capacity));
            requests.push(r);
        }
        let resolved = capacity::clamp(
            capacity::resolve(sizes.desired, counts, &requests),
            sizes.min,
            sizes.max,
        );
        if resolved != sizes.desired {
            events.push(format!("desired {} -> {resolved}", sizes.desired));
            sizes.desired = resolved;
        }
        // 5. Launch or drain.
        let active: Vec<usize> = (0..instances.len())
            .filter(|&i| instances[i].draining_from.is_none())
            .collect();
        let active_count = active.len() as i64;
        if sizes.desired > active_count {
            let n = sizes.desired - active_count;
            for _ in 0..n {
                instances.push(Instance::launched(t));
                credits.push((0.0, 0.0));
            }
            events.push(format!("launch {n}"));
        } else if sizes.desired < active_count {
            let mut oldest = active;
            oldest.sort_by(|x, y| {
                instances[*x]
                    .launched_at
                    .total_cmp(&instances[*y].launched_at)
            });
            let n = (active_count - sizes.desired) as usize;
            for &i in oldest.iter().take(n) {
                instances[i].draining_from = Some(t);
            }
            events.push(format!("drain {n} (oldest first)"));
        }
        // 6. Traffic.
        let counts = count(&instances, t, &timings);
        let in_service = instances
            .iter()
            .filter(|i| !i.is_terminating(t) && i.in_service_at(&timings) <= t)
            .count() as i64;
        let serving: f64 = instances
            .iter()
            .map(|i| i.serving_fraction(t, &timings))
            .sum();
        let (mut served, mut failed) = (0.0, offered);
        let (mut mean, mut p50, mut p99, mut low_confidence, mut utilization) =
            (None, None, None, false, 0.0);
        if let Some(per_target) = alb::per_target_rps(offered, serving) {
            let perf = station.perform(per_target);
            served = perf.served_rps * serving;
            failed = perf.failed_rps * serving;
            mean = Some(perf.mean_ms);
            p50 = Some(perf.p50_ms);
            p99 = Some(perf.p99_ms);
            low_confidence = perf.low_confidence;
            utilization = perf.utilization;
        }
        let busy = utilization.min(1.0);
        let instance_cpu = (a.idle_cpu_percent + 100.0 * busy).min(100.0);
        // 7. Datapoints and billing.
        let warm = instances.iter().filter(|i| i.is_warm(t, &timings)).count() as f64;
        cpu.push(if warm > 0.0 {
            MinuteSamples::uniform(instance_cpu, warm)
        } else {
            MinuteSamples::default()
        });
        let per_target_minute = if serving > 0.0 {
            offered * 60.0 / serving
        } else {
            0.0
        };
        requests_per_target.push(MinuteSamples::uniform(per_target_minute, 1.0));
        let vcpus = f64::from(s.instance.vcpus);
        let baseline = s.instance.baseline_percent.unwrap_or(100.0) / 100.0;
        for (instance, account) in instances.iter().zip(credits.iter_mut()) {
            let billed = instance.billed_secs(t, &timings);
            let busy_secs = instance.serving_fraction(t, &timings) * 60.0 * busy
                + a.idle_cpu_percent / 100.0 * billed;
            account.0 += vcpus * busy_secs;
            account.1 += vcpus * baseline * billed;
            instance_secs += billed;
        }
        let hour = &mut hours[m / 60];
        let new_connections = offered / a.requests_per_connection;
        hour.usage.new_connections_per_sec += new_connections;
        hour.usage.active_connections_per_min += new_connections * a.connection_secs;
        hour.usage.gb_per_hour += offered * a.bytes_per_request * 3600.0 / 1e9;
        hour.minutes += 1.0;

        rows.push(MinuteRow {
            minute: m,
            time,
            offered_rps: offered,
            min_size: sizes.min,
            max_size: sizes.max,
            desired: sizes.desired,
            in_service,
            serving,
            warming: counts.warming,
            terminating: counts.terminating,
            cpu_percent: (warm > 0.0).then_some(instance_cpu),
            utilization,
            served_rps: served,
            failed_rps: failed,
            mean_ms: mean,
            p50_ms: p50,
            p99_ms: p99,
            low_confidence,
            alarms: alarm_states,
            events,
        });
    }
    retired.extend(credits);
    let costs = costs(s, &hours, instance_secs, &retired, rows.len());
    Outcome {
        rows,
        costs,
        initial,
        warnings,
    }
}

fn count(instances: &[Instance], t: f64, timings: &Timings) -> Counts {
    let mut counts = Counts::default();
    for i in instances {
        if i.is_terminating(t) {
            counts.terminating += 1;
        } else if i.is_warm(t, timings) {
            counts.warm += 1;
        } else {
            counts.warming += 1;
        }
    }
    counts
}

fn costs(
    s: &Scenario,
    hours: &[HourUsage],
    instance_secs: f64,
    credits: &[(f64, f64)],
    minutes: usize,
) -> Costs {
    let p = s.prices;
    let instances_usd = cost::hourly(instance_secs, s.instance.usd_per_hour);
    let surplus_credits_usd = s.instance.credit_usd_per_vcpu_hour.map_or(0.0, |price| {
        credits
            .iter()
            .map(|(spent, earned)| cost::surplus_credits(*spent, *earned, price))
            .sum()
    });
    let secs = minutes as f64 * 60.0;
    let alb_hours_usd = cost::hourly(secs, p.alb.usd_per_hour);
    let alb_lcu_usd: f64 = hours
        .iter()
        .filter(|h| h.minutes > 0.0)
        .map(|h| {
            let average = LcuUsage {
                new_connections_per_sec: h.usage.new_connections_per_sec / h.minutes,
                active_connections_per_min: h.usage.active_connections_per_min / h.minutes,
                gb_per_hour: h.usage.gb_per_hour / h.minutes,
                rule_evaluations_per_sec: 0.0,
            };
            cost::lcus(average, p.alb.lcu) * h.minutes / 60.0 * p.alb.usd_per_lcu_hour
        })
        .sum();
    let instance_addresses = if s.group.public_ip_per_instance {
        instance_secs
    } else {
        0.0
    };
    let public_ipv4_usd = cost::hourly(
        s.group.az_count * secs + instance_addresses,
        p.public_ipv4_usd_per_hour,
    );
    Costs {
        instances_usd,
        surplus_credits_usd,
        alb_hours_usd,
        alb_lcu_usd,
        public_ipv4_usd,
        total_usd: instances_usd
            + surplus_credits_usd
            + alb_hours_usd
            + alb_lcu_usd
            + public_ipv4_usd,
        instance_hours: instance_secs / 3600.0,
    }
}
