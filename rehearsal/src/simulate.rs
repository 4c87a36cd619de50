//! The minute loop: it only composes the rules (`crate::rules`) over the fleet
//! (`crate::fleet`), in the order AWS applies them each minute:
//! 1. instances whose termination is due leave the group (their surplus credits charged);
//!    the failures due this minute act (`crate::faults`: instances stop answering, a zone
//!    goes dark or comes back);
//! 2. scheduled actions due this minute (cron in their own time zone) set min/max/desired;
//! 3. every alarm evaluates the datapoints it can see (delayed, sliding, M of N);
//! 4. every policy whose alarm is in ALARM asks for a capacity (re-invoked each minute
//!    while the alarm stays in ALARM); the largest wins; the result is clamped;
//! 5. the group replaces instances found unhealthy (paced), rebalances its zones, then
//!    launches into the short zones that can launch or deregisters by the termination policy;
//! 6. the load balancer spreads the minute's requests over the targets it routes to (those
//!    that stopped answering included, until found unhealthy); the queueing model gives
//!    utilisation, latency and failures, the CPU rule the CPU; failed requests come back as
//!    retries when the clients retry (`crate::traffic`);
//! 7. the minute's datapoints are recorded (CPU of warm InService instances; requests per
//!    target), then what it used: billed seconds, CPU credits, LCUs, bytes, store requests.

use jiff::{SignedDuration, Timestamp};
use serde::Serialize;

use crate::assumptions::Assumptions;
use crate::bill::{self, Costs, Usage};
use crate::faults::{self, Fault};
use crate::fleet::{Fleet, Launch, Rebalancing, zone_name};
use crate::model::{Comparison, Group, Scaling, StepPolicy, TargetPolicy, TrackedMetric};
use crate::prices::{InstancePrice, Prices};
use crate::profiles::StoreMix;
use crate::rules::alarm::{self, AlarmRule, AlarmState, MissingData};
use crate::rules::alb;
use crate::rules::capacity::{self, Counts, Direction, Request};
use crate::rules::cost::LcuUsage;
use crate::rules::cpu;
use crate::rules::credits::{CreditAccount, CreditTerms};
use crate::rules::health::{HealthCheck, Replacement};
use crate::rules::lifecycle::Timings;
use crate::rules::metric::{MinuteSamples, Series};
use crate::rules::queueing::Station;
use crate::rules::retry::RetryPolicy;
use crate::rules::schedule::{self, Sizes};
use crate::rules::step;
use crate::rules::target_tracking::{self, Datapoint, PolicyView};
use crate::traffic::{Capacity, Retries};

/// What one request costs and how long it waits outside the CPU.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Workload {
    /// CPU seconds per request on one vCPU of the instance type.
    pub service_secs: f64,
    /// Load balancer, network and store latency per request.
    pub fixed_secs: f64,
    /// The store's reads and writes per request.
    #[serde(skip)]
    pub store: StoreMix,
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
    /// Failures injected during the load.
    pub faults: &'a [Fault],
    /// The clients' retries (`None`: they do not retry).
    pub retry: Option<RetryPolicy>,
}

/// An alarm's state in a minute.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AlarmReading {
    pub name: String,
    pub state: AlarmState,
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
    /// InService instances in each zone, in zone order.
    pub in_service_by_zone: Vec<i64>,
    /// Instances of the group that do not answer (failed, or in a dark zone).
    pub not_answering: i64,
    /// Zones dark this minute.
    pub dark_zones: Vec<usize>,
    pub serving: f64,
    pub warming: i64,
    pub terminating: i64,
    /// The group's CPUUtilization datapoint (warm InService instances), if any.
    pub cpu_percent: Option<f64>,
    pub utilization: f64,
    /// Retries arriving this minute (on top of `offered_rps`, the first attempts).
    pub retry_rps: f64,
    pub served_rps: f64,
    /// Attempts that failed (first attempts and retries).
    pub failed_rps: f64,
    /// Requests whose last allowed attempt failed (all failed ones without retries).
    pub failed_for_good_rps: f64,
    pub mean_ms: Option<f64>,
    pub p50_ms: Option<f64>,
    pub p99_ms: Option<f64>,
    pub low_confidence: bool,
    pub alarms: Vec<AlarmReading>,
    pub events: Vec<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Outcome {
    pub rows: Vec<MinuteRow>,
    pub costs: Costs,
    /// The sizes in force at the start.
    pub initial: Option<Sizes>,
    pub warnings: Vec<String>,
    /// Retries still waiting when the load ends (requests per second of a minute).
    pub retries_pending_rps: f64,
}

/// An alarm with its memory.
struct LiveAlarm {
    name: String,
    rule: AlarmRule,
    period: usize,
    state: AlarmState,
}

/// What an alarm saw this minute, when it is in ALARM.
struct Breach {
    /// The value its policy compares (the Average of the datapoints it decided on).
    value: f64,
    /// The minutes of the one-minute datapoints it decided on, newest first.
    minutes: Vec<i64>,
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

    fn evaluate(
        &mut self,
        series: &Series,
        now: i64,
        a: &Assumptions,
        breaches: impl Fn(f64) -> bool,
    ) -> Option<Breach> {
        let count = self.rule.evaluation_periods + a.alarm_extra_datapoints as usize;
        let delay = a.metric_delay_minutes as i64;
        let range = series.evaluation_range(now, delay, self.period, count);
        let points: Vec<Option<bool>> = range.iter().map(|v| v.map(&breaches)).collect();
        self.state = alarm::evaluate(&self.rule, &points, self.state);
        if self.state != AlarmState::Alarm {
            return None;
        }
        let value = alarm::policy_metric(&range, self.rule.evaluation_periods)?;
        let newest = now - delay;
        let minutes = range
            .iter()
            .rev()
            .enumerate()
            .filter(|(_, v)| v.is_some())
            .take(self.rule.evaluation_periods)
            .map(|(back, _)| newest - (back * self.period) as i64)
            .collect();
        Some(Breach { value, minutes })
    }

    fn reading(&self) -> AlarmReading {
        AlarmReading {
            name: self.name.clone(),
            state: self.state,
        }
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
fn initial_sizes(s: &Scenario, delay: i64, warnings: &mut Vec<String>) -> Sizes {
    let g = s.group;
    let mut sizes = Sizes {
        min: g.min_size,
        max: g.max_size,
        desired: g.min_size,
    };
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
    sizes
}

/// A step policy and its alarm.
struct StepRule<'g> {
    alarm: LiveAlarm,
    policy: &'g StepPolicy,
}

/// A target-tracking policy and the two alarms AWS creates for it.
struct TrackingRule {
    high: LiveAlarm,
    low: LiveAlarm,
    policy: TargetPolicy,
}

/// The policies' requests this minute; alarm readings and events are appended.
struct Decisions<'r> {
    now: i64,
    counts: Counts,
    readings: &'r mut Vec<AlarmReading>,
    events: &'r mut Vec<String>,
    requests: Vec<Request>,
}

impl Decisions<'_> {
    fn step(&mut self, rules: &mut [StepRule], cpu: &Series, a: &Assumptions) {
        for rule in rules {
            let (threshold, comparison) = (rule.policy.threshold, rule.policy.comparison);
            let breach = rule
                .alarm
                .evaluate(cpu, self.now, a, |v| comparison.breaches(v, threshold));
            self.readings.push(rule.alarm.reading());
            let Some(breach) = breach else { continue };
            let Some(found) = step::matching_step(&rule.policy.steps, threshold, breach.value)
            else {
                continue;
            };
            let direction = if found.adjustment > 0.0 {
                Direction::Out
            } else {
                Direction::In
            };
            let current = capacity::current_capacity(direction, self.counts);
            let asked = step::adjusted_capacity(
                rule.policy.adjustment_type,
                found.adjustment,
                current,
                rule.policy.min_adjustment_magnitude,
            );
            self.events.push(format!(
                "{} ALARM at {:.1} %: {:+} from {current} asks {asked}",
                rule.alarm.name, breach.value, found.adjustment
            ));
            self.requests.push(Request {
                direction,
                capacity: asked,
            });
        }
    }

    fn tracking(&mut self, rules: &mut [TrackingRule], series: &Metrics, a: &Assumptions) {
        let mut views = Vec::new();
        for rule in rules.iter_mut() {
            let metric = series.of(rule.policy.metric);
            let target = rule.policy.target;
            let low_line = target * a.tt_scale_in_fraction;
            let high = rule.high.evaluate(metric, self.now, a, |v| {
                Comparison::GreaterThanThreshold.breaches(v, target)
            });
            let low = rule.low.evaluate(metric, self.now, a, |v| {
                Comparison::LessThanThreshold.breaches(v, low_line)
            });
            self.readings.push(rule.high.reading());
            self.readings.push(rule.low.reading());
            let current_out = capacity::current_capacity(Direction::Out, self.counts) as f64;
            let out_capacity = high.as_ref().map_or(0, |b| {
                target_tracking::proportional_capacity(current_out, b.value, target)
            });
            let in_capacity = low
                .as_ref()
                .and_then(|b| {
                    let points: Vec<Datapoint> = b
                        .minutes
                        .iter()
                        .filter_map(|m| {
                            Some(Datapoint {
                                value: metric.period_average(*m, 1)?,
                                capacity: series.serving(*m)?,
                            })
                        })
                        .collect();
                    target_tracking::scale_in_capacity(&points, target)
                })
                .unwrap_or(i64::MAX);
            views.push(PolicyView {
                high: high.is_some(),
                out_capacity,
                low: low.is_some(),
                in_capacity,
            });
        }
        for r in target_tracking::combine(&views) {
            self.events
                .push(format!("target tracking asks {}", r.capacity));
            self.requests.push(r);
        }
    }
}

/// The metrics the alarms watch, and the capacity behind each minute.
struct Metrics {
    cpu: Series,
    requests_per_target: Series,
    /// Per minute: the targets that served (their average over the minute).
    serving: Vec<f64>,
}

impl Metrics {
    fn of(&self, metric: TrackedMetric) -> &Series {
        match metric {
            TrackedMetric::Cpu => &self.cpu,
            TrackedMetric::RequestsPerTarget => &self.requests_per_target,
        }
    }

    fn serving(&self, minute: i64) -> Option<f64> {
        usize::try_from(minute)
            .ok()
            .and_then(|m| self.serving.get(m))
            .copied()
    }
}

/// How the group finds and replaces what does not answer.
struct Health {
    check: HealthCheck,
    replacement: Replacement,
}

fn names(members: &[(usize, usize)]) -> String {
    members
        .iter()
        .map(|(id, zone)| format!("#{id} in {}", zone_name(*zone)))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Step 5: replacements of unhealthy instances, zone rebalancing, then launches or
/// terminations to the desired capacity (plus what a rebalancing launched ahead).
fn reconcile(
    fleet: &mut Fleet,
    t: f64,
    sizes: &Sizes,
    timings: &Timings,
    health: &Health,
) -> Vec<String> {
    let mut events = Vec::new();
    let replaced = fleet.replace_unhealthy(
        t,
        sizes.desired,
        timings,
        &health.check,
        &health.replacement,
    );
    for (id, zone, from) in &replaced {
        events.push(format!(
            "replace #{id} in {} (not answering since minute {}, found unhealthy)",
            zone_name(*zone),
            (from / 60.0).floor()
        ));
    }
    match fleet.rebalance(t, sizes.max, timings) {
        Rebalancing::Idle => {}
        Rebalancing::Launched(zones) => events.push(format!(
            "rebalance: launch {} (zones {}) before terminating as many elsewhere",
            zones.len(),
            zones
                .iter()
                .map(|z| zone_name(*z).to_string())
                .collect::<Vec<_>>()
                .join(", ")
        )),
        Rebalancing::Served(n) => events.push(format!("rebalance: the {n} new instance(s) serve")),
    }
    let target = sizes.desired + fleet.rebalance_extra as i64;
    let active = fleet.active_count() as i64;
    if target > active {
        let launched: Vec<Option<usize>> = (0..(target - active) as usize)
            .map(|i| {
                let why = if i < replaced.len() {
                    Launch::Replacement
                } else {
                    Launch::Capacity
                };
                fleet.launch(t, why)
            })
            .collect();
        let zones: Vec<String> = launched
            .iter()
            .flatten()
            .map(|z| zone_name(*z).to_string())
            .collect();
        if !zones.is_empty() {
            events.push(format!(
                "launch {} (zones {})",
                zones.len(),
                zones.join(", ")
            ));
        }
        if zones.len() < launched.len() {
            events.push(format!(
                "{} launch(es) failed: every zone is dark",
                launched.len() - zones.len()
            ));
        }
    } else if target < active {
        let drained = fleet.drain((active - target) as usize, t, timings);
        events.push(format!("terminate {}", names(&drained)));
    }
    events
}

/// Runs the rehearsal.
pub fn run(s: &Scenario) -> Outcome {
    let g = s.group;
    let a = s.assumptions;
    let timings = Timings {
        pending_secs: a.pending_secs,
        boot_secs: a.boot_secs,
        health_check_secs: g.health_check_interval_secs,
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
    let vcpus = f64::from(s.instance.vcpus);
    let terms = s.instance.baseline_percent.map(|b| CreditTerms {
        vcpus,
        baseline: b / 100.0,
    });
    let schedule_delay = a.schedule_delay_minutes as i64;
    let mut warnings = Vec::new();
    let mut sizes = initial_sizes(s, schedule_delay, &mut warnings);
    let initial = sizes;
    let settled_credits = terms.map_or(CreditAccount::default(), |t| {
        CreditAccount::with_balance(&t, a.initial_credit_fraction)
    });
    let mut fleet = Fleet::settled(sizes.desired as usize, g.az_count, settled_credits);
    let health = Health {
        check: HealthCheck {
            interval_secs: g.health_check_interval_secs,
            unhealthy_threshold: g.unhealthy_threshold,
            healthy_threshold: g.healthy_threshold,
        },
        replacement: Replacement {
            elb_health_checks: g.elb_health_checks,
            grace_secs: g.health_check_grace_secs,
            unhealthy_replace_secs: a.unhealthy_replace_secs,
            status_check_replace_secs: a.status_check_replace_secs,
        },
    };
    let mut retries = Retries::new(s.retry);
    let mut metrics = Metrics {
        cpu: Series::with_capacity(s.load.len()),
        requests_per_target: Series::with_capacity(s.load.len()),
        serving: Vec::with_capacity(s.load.len()),
    };

    let mut step_rules: Vec<StepRule> = Vec::new();
    let mut tracking_rules: Vec<TrackingRule> = Vec::new();
    match &g.scaling {
        Scaling::Step { out, scale_in } => {
            for policy in [out, scale_in] {
                step_rules.push(StepRule {
                    alarm: LiveAlarm::new(policy.name.clone(), policy.alarm, policy.period_minutes),
                    policy,
                });
            }
        }
        Scaling::TargetTracking { policies } => {
            for policy in policies {
                let label = match policy.metric {
                    TrackedMetric::Cpu => "cpu",
                    TrackedMetric::RequestsPerTarget => "requests",
                };
                tracking_rules.push(TrackingRule {
                    high: LiveAlarm::new(
                        format!("tt-{label}-high"),
                        n_of_n(a.tt_scale_out_datapoints),
                        1,
                    ),
                    low: LiveAlarm::new(
                        format!("tt-{label}-low"),
                        n_of_n(a.tt_scale_in_datapoints),
                        1,
                    ),
                    policy: *policy,
                });
            }
        }
    }

    // Clock hours are UTC hours: where the start falls in its hour.
    let minute_of_hour = (s.start.as_second().rem_euclid(3600) / 60) as usize;
    let mut usage = Usage {
        minutes: s.load.len(),
        alb_hours: crate::rules::cost::billed_hours(minute_of_hour, s.load.len()),
        ..Usage::default()
    };
    let mut rows = Vec::with_capacity(s.load.len());
    for (m, offered) in s.load.iter().copied().enumerate() {
        let now = m as i64;
        let t = m as f64 * 60.0;
        let time = s.start + SignedDuration::from_mins(now);
        let mut events = Vec::new();

        // 1. Terminations that are due, then the failures due.
        fleet.remove_terminated(t, &timings);
        events.extend(faults::apply(s.faults, m, t, &mut fleet, &timings));
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
        let counts = fleet.counts(t, &timings);
        let mut readings = Vec::new();
        let mut decisions = Decisions {
            now,
            counts,
            readings: &mut readings,
            events: &mut events,
            requests: Vec::new(),
        };
        decisions.step(&mut step_rules, &metrics.cpu, a);
        decisions.tracking(&mut tracking_rules, &metrics, a);
        let requests = std::mem::take(&mut decisions.requests);
        let resolved = capacity::clamp(
            capacity::resolve(sizes.desired, counts, &requests),
            sizes.min,
            sizes.max,
        );
        if resolved != sizes.desired {
            events.push(format!("desired {} -> {resolved}", sizes.desired));
            sizes.desired = resolved;
        }
        // 5. Replacements, rebalancing, launches or terminations.
        events.extend(reconcile(&mut fleet, t, &sizes, &timings, &health));
        // 6. Traffic.
        let counts = fleet.counts(t, &timings);
        let in_service_by_zone = fleet.in_service_by_zone(t, &timings);
        let targets = fleet.targets(t, &timings, &health.check);
        let dark_zones: Vec<usize> = (0..fleet.zones)
            .filter(|z| fleet.dark_since[*z].is_some())
            .collect();
        let dark_node_share: f64 = fleet
            .dark_since
            .iter()
            .flatten()
            .map(|since| alb::dark_node_share(fleet.zones, t - since, a.alb_dns_failover_secs))
            .sum();
        let traffic = retries.minute(
            offered,
            &Capacity {
                targets,
                dark_node_share,
                station,
            },
            g.request_timeout_secs,
        );
        let performance = traffic.performance;
        let utilization = performance.map_or(0.0, |p| p.utilization);
        let instance_cpu = cpu::cpu_percent(a.idle_cpu_percent, utilization);
        let served = traffic.served_rps;
        let serving = targets.routed;
        // 7. Datapoints, then what the minute used.
        let samples = fleet.cpu_samples(t, &timings, instance_cpu, a.idle_cpu_percent);
        metrics.cpu.push(samples);
        let arrivals = traffic.arrivals_rps;
        let per_target_minute = if serving > 0.0 {
            arrivals * 60.0 / serving
        } else {
            0.0
        };
        metrics
            .requests_per_target
            .push(MinuteSamples::uniform(per_target_minute, 1.0));
        metrics.serving.push(serving);
        let hour_ends = (minute_of_hour + m + 1).is_multiple_of(60);
        for member in &mut fleet.members {
            let running = member.life.billed_secs(t, &timings);
            let (_, answering, _) = member.routing_secs(t, &timings, &health.check);
            let busy =
                cpu::busy_vcpu_secs(vcpus, answering, instance_cpu, running, a.idle_cpu_percent);
            if let Some(terms) = &terms {
                member.credits.run(terms, running, busy);
                if hour_ends {
                    member.credits.hour_ends(terms);
                }
            }
            usage.running_secs += running;
            usage.present_secs += member.life.present_secs(t, &timings);
        }
        let new_connections = arrivals / a.requests_per_connection;
        usage.lcu.record(
            (minute_of_hour + m) / 60,
            LcuUsage {
                new_connections_per_sec: new_connections,
                active_connections_per_min: new_connections * a.connection_secs,
                gb_per_hour: arrivals * (a.request_bytes + a.response_bytes) * 3600.0 / 1e9,
                rule_evaluations_per_sec: 0.0,
            },
        );
        usage.bytes_out += served * 60.0 * a.response_bytes;
        usage.store_reads += served * 60.0 * s.workload.store.reads;
        usage.store_writes += served * 60.0 * s.workload.store.writes;

        rows.push(MinuteRow {
            minute: m,
            time,
            offered_rps: offered,
            min_size: sizes.min,
            max_size: sizes.max,
            desired: sizes.desired,
            in_service: in_service_by_zone.iter().sum(),
            in_service_by_zone,
            not_answering: fleet.not_answering(t),
            dark_zones,
            serving,
            warming: counts.warming,
            terminating: counts.terminating,
            cpu_percent: (samples.count > 0.0).then(|| samples.sum / samples.count),
            utilization,
            retry_rps: traffic.retry_rps,
            served_rps: served,
            failed_rps: traffic.failed_rps,
            failed_for_good_rps: traffic.failed_for_good_rps,
            mean_ms: performance.map(|p| p.mean_ms),
            p50_ms: performance.map(|p| p.p50_ms),
            p99_ms: performance.map(|p| p.p99_ms),
            low_confidence: performance.is_some_and(|p| p.low_confidence),
            alarms: readings,
            events,
        });
    }
    (usage.credits_charged, usage.credits_outstanding) = fleet.credits();
    let costs = bill::bill(&usage, g, &s.instance, s.prices);
    Outcome {
        rows,
        costs,
        initial: Some(initial),
        warnings,
        retries_pending_rps: retries.pending_rps(),
    }
}
