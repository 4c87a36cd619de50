//! Whole rehearsals whose timelines were derived by hand from the rules (docs/REHEARSAL.md),
//! written here before they were compared with the program. Assumptions are the defaults:
//! metric delay 2 minutes (at minute t alarms see datapoints up to t - 2), boot 60 s, EC2
//! pending 15 s, a new target serving after one health check (5 s, infra/locals.tf), idle
//! CPU 0 %.

mod common;

use common::{Files, STEP_POLICY, rehearse, summary};
use rehearsal::rules::alarm::AlarmState;

fn column<T>(
    report: &rehearsal::run::Report,
    f: impl Fn(&rehearsal::simulate::MinuteRow) -> T,
) -> Vec<T> {
    report.outcome.rows.iter().map(f).collect()
}

fn assert_health_check_is_five_seconds(report: &rehearsal::run::Report) {
    let group = &summary(report)["group"];
    assert_eq!(
        group["health_check_interval_secs"].as_f64(),
        Some(5.0),
        "the derivations assume a new target serves 5 s (one check) after InService"
    );
}

fn alarm_state(row: &rehearsal::simulate::MinuteRow, index: usize) -> AlarmState {
    row.alarms[index].state
}

/// (1) The default step policy, min 2 / max 4, a ramp 200 -> 1,000 rps, 150 rps per instance.
///
/// Capacity 150 rps per instance (2 vCPUs, 13.3 ms of CPU a request); CPU = rps / 150.
/// Ramp steps of 2 minutes: m0-1 200, m2-3 400, m4-5 600, m6-7 800, m8-9 1000. Two zones:
/// the settled pair in a and b.
///
/// m0  200 rps / 2 = 100 each, CPU 66.7 %. Alarm sees nothing yet (datapoints up to m-2).
/// m1  same.
/// m2  400 / 2 = 200 each > 150: saturated, served 300, failed 100, CPU 100.
///     cpu-high sees dp0 = 66.7 only: one breach, age 1 < M = 2, not a premature alarm: OK.
/// m3  cpu-high sees dp0, dp1 = 66.7, 66.7: 2 of 2, ALARM. Average 66.7 = threshold + 6.7:
///     step [0, 20) +1 from 2 warm = 3. Desired 3, launch #2 at 180 s into zone a (the zones
///     tie at 1): running 195, InService 240, serving 245 (one check), warm 330. Traffic
///     still on 2: served 300, failed 100.
/// m4  600 rps. cpu-high sees dp1, dp2 = 66.7, 100: average 83.3, step [20, inf) +2 from 2
///     warm (#2 warms up) = 4: desired 4, one more launch (#3 at 240 s into zone b: serving
///     305, warm 390) - the difference between the steps, not 2 more.
///     #2 serves 55 of 60 s: 2.917 targets, 205.7 each > 150: served 437.5, failed 162.5.
/// m5  #3 serves 55 s: 3.917 targets, 153.2 each: served 587.5, failed 12.5. ALARM asks
///     2 + 2 = 4. In service: a 2, b 2.
/// m6  800 rps on 4: served 600, failed 200. ALARM asks 3 + 2 = 5, clamped to max 4.
/// m7  the same. m8-9: 1,000 rps on 4: served 600, failed 400.
/// Offered 60 x 2 x (200 + 400 + 600 + 800 + 1000) = 360,000; failed 60 x (100 + 100 +
/// 162.5 + 12.5 + 200 + 200 + 400 + 400) = 94,500.
/// 1,000 rps at 60 % of 150 needs ceil(1000 / 90) = 12 instances: the max_size warning.
/// Billed: 2 x 600 s + #2 from 195 s + #3 from 255 s = 1,950 s; the load balancer one whole
/// hour for these ten minutes.
#[test]
fn the_default_step_policy_saturates_at_max_size_under_a_ramp() {
    let files = Files::new();
    let policy = files.write(
        "policy.tfvars",
        &format!("{STEP_POLICY}\nmin_size = 2\nmax_size = 4\nschedules = {{}}\n"),
    );
    let var_file = format!("-var-file={}", policy.display());
    let report = rehearse(&[
        &var_file,
        "--profile",
        "gtg",
        "--ramp",
        "200,400,600,800,1000",
        "--duration",
        "120",
        "--instance-rps",
        "150",
        "--start",
        "2026-12-07T10:00Z",
        "--slo-rps",
        "1000",
    ]);
    assert_health_check_is_five_seconds(&report);
    assert_eq!(
        column(&report, |r| r.desired),
        vec![2, 2, 2, 3, 4, 4, 4, 4, 4, 4]
    );
    assert_eq!(
        column(&report, |r| r.in_service),
        vec![2, 2, 2, 2, 3, 4, 4, 4, 4, 4]
    );
    let zones = column(&report, |r| r.in_service_by_zone.clone());
    assert_eq!(
        (zones[3].clone(), zones[4].clone(), zones[5].clone()),
        (vec![1, 1], vec![2, 1], vec![2, 2])
    );
    let served = column(&report, |r| (r.served_rps * 1000.0).round() / 1000.0);
    assert_eq!(
        served,
        vec![
            200.0, 200.0, 300.0, 300.0, 437.5, 587.5, 600.0, 600.0, 600.0, 600.0
        ]
    );
    let failed = column(&report, |r| (r.failed_rps * 1000.0).round() / 1000.0);
    assert_eq!(
        failed,
        vec![
            0.0, 0.0, 100.0, 100.0, 162.5, 12.5, 200.0, 200.0, 400.0, 400.0
        ]
    );
    let rows = &report.outcome.rows;
    assert_eq!(alarm_state(&rows[2], 0), AlarmState::Ok);
    assert_eq!(alarm_state(&rows[3], 0), AlarmState::Alarm);
    let s = summary(&report);
    assert_eq!(s["max_desired"], 4);
    assert!((s["failed_fraction"].as_f64().unwrap_or(0.0) - 94_500.0 / 360_000.0).abs() < 1e-9);
    assert!((s["instance_hours"].as_f64().unwrap_or(0.0) - 1950.0 / 3600.0).abs() < 1e-9);
    assert_eq!(s["cost"]["alb_hours"], 1.0, "ten minutes pay a whole hour");
    let warnings = s["warnings"].to_string();
    assert!(
        warnings.contains("max_size 4 cannot serve 1,000 rps at 60 % CPU: 12 instances needed"),
        "{warnings}"
    );
    assert_eq!(report.exit_code, 1, "{}", report.verdict);
    assert!(report.verdict.contains("SLO verdict: FAIL"));
}

/// (2) Target tracking at 50 % CPU, a steady 600 rps, 150 rps per instance, warm-up 300 s
/// (long enough to cover boot, the health check and the metric delay).
///
/// AWS's alarms: high = 3 of 3 one-minute datapoints > 50; low = 15 of 15 < 35 (0.7 x).
/// m0-3 2 instances, 300 rps each > 150: CPU 100 (dp0-3 = 100). The high alarm needs three
///      datapoints: it sees 0, 1, 2 datapoints at m2, m3 (no premature alarm: the oldest
///      breach is younger than 3).
/// m4   sees dp0-2 = 100: ALARM, ceil(2 warm x 100 / 50) = 4. Launch 2 at 240 s (serving
///      305, warm 240 + 60 + 300 = 600).
/// m5-9 the new ones warm up: current capacity stays 2, asks 4 again, no change. From m6
///      4 targets x 150 = 600: exactly 100 % CPU (dp = 100).
/// m10  t = 600: 4 warm. Sees dp6-8 = 100: ceil(4 x 100 / 50) = 8. Launch 4 at 600 s
///      (serving 665, warm 960 = m16).
/// m11  4 + 4 x 55 / 60 = 7.667 targets, 78.3 rps each: CPU 52.2 (dp11, from the 4 warm
///      ones). Asks 4 x 100 / 50 = 8: nothing new.
/// m12+ 8 targets, 75 rps each: CPU exactly 50 (dp12 on). m12 sees dp8-10 = 100: 8 again;
///      m13 sees 100, 100, 52.2: average 84.1, ceil(4 x 84.1 / 50) = 7 < 8: nothing;
///      m14 sees 100, 52.2, 50: 50 is not above 50, OK. Never below 35: no scale-in.
/// Settles at 8 from m10 and stays there to the end (minute 29).
#[test]
fn target_tracking_settles_at_eight_instances_and_stays() {
    let files = Files::new();
    let policy = files.write(
        "tt.tfvars",
        r#"
scaling_mode                 = "target_tracking"
target_cpu_percent           = 50
target_requests_per_instance = null
instance_type                = "t3.micro"
instance_warmup_secs         = 300
min_size                     = 2
max_size                     = 10
schedules                    = {}
request_timeout_secs         = 10
"#,
    );
    let var_file = format!("-var-file={}", policy.display());
    let report = rehearse(&[
        &var_file,
        "--rate",
        "600",
        "--duration",
        "1800",
        "--instance-rps",
        "150",
        "--start",
        "2026-12-07T10:00Z",
    ]);
    assert_health_check_is_five_seconds(&report);
    let desired = column(&report, |r| r.desired);
    let mut expected = vec![2, 2, 2, 2, 4, 4, 4, 4, 4, 4];
    expected.extend(std::iter::repeat_n(8, 20));
    assert_eq!(desired, expected);
    let cpu = column(&report, |r| {
        r.cpu_percent.map(|c| (c * 10.0).round() / 10.0)
    });
    assert_eq!(cpu[11], Some(52.2));
    assert!(cpu[12..].iter().all(|c| *c == Some(50.0)), "{cpu:?}");
    // From m12 on, nothing fails and nothing moves.
    assert!(
        report.outcome.rows[12..]
            .iter()
            .all(|r| r.failed_rps.abs() < 1e-9)
    );
    assert_eq!(summary(&report)["max_desired"], 8);
    // The SLO's throughput goal is the load's own peak (600), not loadtest.sh's 1,000.
    assert_eq!(summary(&report)["slo"]["goals"]["rps"], 600.0);
}

/// The tracking policy's own file for the two scale-in cases below: target 50, room from 2
/// to 20, the group starting at 10 (`--assume initial_capacity=10`).
const TRACKING_AT_FIFTY: &str = r#"
scaling_mode                 = "target_tracking"
target_cpu_percent           = 50
target_requests_per_instance = null
instance_type                = "t3.micro"
instance_warmup_secs         = 90
min_size                     = 2
max_size                     = 20
schedules                    = {}
"#;

fn tracking_at(rps: &str) -> rehearsal::run::Report {
    let files = Files::new();
    let policy = files.write("tt.tfvars", TRACKING_AT_FIFTY);
    let var_file = format!("-var-file={}", policy.display());
    rehearse(&[
        &var_file,
        "--rate",
        rps,
        "--duration",
        "1800",
        "--instance-rps",
        "150",
        "--assume",
        "initial_capacity=10",
        "--start",
        "2026-12-07T10:00Z",
    ])
}

/// (4) Ten instances at 40 % with a target of 50 (600 rps, 60 each): the scale-in alarm
/// EC2 Auto Scaling creates sits at 0.7 x 50 = 35 %, so 40 % never reaches it and the group
/// holds 10. (With Application Auto Scaling's "10 % lower", 45 %, it would scale in to
/// ceil(10 x 40 / 50) = 8, then flap as 8 instances run at 50 %.)
#[test]
fn target_tracking_holds_ten_instances_at_forty_percent() {
    let report = tracking_at("600");
    assert_eq!(column(&report, |r| r.desired), vec![10; 30]);
    let low: Vec<AlarmState> = report
        .outcome
        .rows
        .iter()
        .map(|r| alarm_state(r, 1))
        .collect();
    assert!(!low.contains(&AlarmState::Alarm), "{low:?}");
}

/// (5) Ten instances at 28 % (420 rps), target 50. The low alarm (15 of 15 below 35) sees
/// its 15th datapoint (dp0-14) at m16: the load is 10 x 28 = 280 instance-%, over 50: 5.6,
/// so 6. Terminate 4 at 960 s. m17: the same datapoints but one (dp1-15, all ten instances
/// at 28 %) still breach: it asks 6 again, not ceil(6 x 28 / 50) = 4. m18: dp16 (6 targets,
/// 70 rps each, 46.7 %) is not below 35: OK. The group holds 6.
#[test]
fn a_re_invoked_target_tracking_scale_in_does_not_compound() {
    let report = tracking_at("420");
    let mut expected = vec![10; 16];
    expected.extend(vec![6; 14]);
    assert_eq!(column(&report, |r| r.desired), expected);
    let rows = &report.outcome.rows;
    assert_eq!(alarm_state(&rows[16], 1), AlarmState::Alarm);
    assert_eq!(alarm_state(&rows[17], 1), AlarmState::Alarm, "re-invoked");
    assert_eq!(alarm_state(&rows[18], 1), AlarmState::Ok);
    // Four from two zones of five: two from each, the zones stay balanced.
    assert_eq!(rows[17].in_service_by_zone, vec![3, 3]);
}

/// (3) infra/examples/weekly-business.tfvars over a Monday from 06:30 in Paris (winter,
/// UTC+1), the default step policy, 150 rps per instance; load: 100 rps until 07:00, 300
/// until 15:00, then 60 until 16:00.
///
/// At 06:30 the last firings were Mon 06:00 normal-morning (min 2, max 4) after Mon 00:00,
/// Sun 00:00, Sat 21:00 and Fri's actions: min 2, max 4, desired 2 (the minimum in force),
/// one instance in each zone (a, b).
/// m0-19  2 instances, 50 rps each: 33.3 %, between 30 and 60: nothing.
/// m20    06:50 peak-start: min 4, max 8, desired pulled up to 4, launch 2 at 1200 s, one
///        in each zone (serving 1265, warm 1350).
/// m21-29 100 rps over 3.83 then 4 targets: 17.4 % then 16.7 %, below 30: cpu-low goes to
///        ALARM at m27 (dp21-25), asks 4 - 1 = 3, but min 4 holds it at 4.
/// m30    07:00, 300 rps on 4: 50 %. 09:00 peak-end (min 2): desired stays 4 (50 % is no
///        reason to move); 12:50 peak-start (min 4) again; 15:00 (m510) peak-end: min 2.
/// m510+  60 rps on 4: 10 %. cpu-low sees dp509-513 at m515 (dp509 = 50 %: OK); at m516
///        dp510-514, all 10 %: ALARM, 4 - 1 = 3. The zones tie (2 and 2); the settled
///        instances are closer to their next billing hour (running since long ago:
///        2,255 s to go at 15:06, against 2,655 s for those running since 06:50:15): the
///        lowest, #0 in zone a, is deregistered (gone 30 s later).
/// m517   still ALARM; current capacity 3 (the drained one has terminated): 2.
/// m518+  asks 1, clamped to min 2. One instance a minute, down to 2 by 15:07.
#[test]
fn the_weekly_example_holds_four_from_six_fifty_and_scales_in_one_by_one_after_three() {
    let files = Files::new();
    let policy = files.write("policy.tfvars", STEP_POLICY);
    let load = files.write(
        "monday.csv",
        "time,rps\n2026-12-07T06:30,100\n2026-12-07T07:00,300\n2026-12-07T15:00,60\n2026-12-07T15:59,60\n",
    );
    let weekly = common::repo_root().join("infra/examples/weekly-business.tfvars");
    let (policy_arg, weekly_arg) = (
        format!("-var-file={}", policy.display()),
        format!("-var-file={}", weekly.display()),
    );
    let report = rehearse(&[
        &policy_arg,
        &weekly_arg,
        "--load-csv",
        load.to_str().expect("utf-8"),
        "--instance-rps",
        "150",
        "--slo-rps",
        "300",
    ]);
    assert_health_check_is_five_seconds(&report);
    let s = summary(&report);
    assert_eq!(s["start"], "2026-12-07T06:30:00+01:00[Europe/Paris]");
    assert_eq!(
        s["initial"],
        serde_json::json!({ "min": 2, "max": 4, "desired": 2 })
    );
    let rows = &report.outcome.rows;
    assert_eq!(rows.len(), 570);
    assert_eq!(
        rows[20].time.to_string(),
        "2026-12-07T05:50:00Z",
        "06:50 in Paris"
    );
    assert!(
        rows[20]
            .events
            .iter()
            .any(|e| e.starts_with("schedule peak-start")),
        "{:?}",
        rows[20].events
    );
    let desired = column(&report, |r| r.desired);
    let mut expected = vec![2; 20];
    expected.extend(vec![4; 516 - 20]);
    expected.push(3);
    expected.extend(vec![2; 570 - 517]);
    assert_eq!(desired, expected);
    let min = column(&report, |r| r.min_size);
    assert_eq!(
        (min[19], min[20], min[150], min[380], min[510]),
        (2, 4, 2, 4, 2)
    );
    // The scale-in alarm fired while min 4 held the group at 06:57.
    assert_eq!(alarm_state(&rows[27], 1), AlarmState::Alarm);
    assert_eq!(alarm_state(&rows[26], 1), AlarmState::Ok);
    assert!(
        rows[516].events.iter().any(|e| e == "terminate #0 in a"),
        "{:?}",
        rows[516].events
    );
    assert_eq!(rows[518].in_service_by_zone, vec![1, 1]);
    assert_eq!(report.exit_code, 0, "{}", report.verdict);
}
