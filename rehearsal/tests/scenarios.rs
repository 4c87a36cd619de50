//! Whole rehearsals whose timelines were derived by hand from the rules (docs/REHEARSAL.md),
//! written here before they were compared with the program. Assumptions are the defaults:
//! metric delay 2 minutes (at minute t alarms see datapoints up to t - 2), boot 60 s, the
//! target group's health check 2 x 5 s (infra/locals.tf), idle CPU 0 %.

mod common;

use common::{Files, STEP_POLICY, rehearse};
use rehearsal::rules::alarm::AlarmState;

fn column<T>(
    report: &rehearsal::run::Report,
    f: impl Fn(&rehearsal::simulate::MinuteRow) -> T,
) -> Vec<T> {
    report.outcome.rows.iter().map(f).collect()
}

fn assert_health_check_is_ten_seconds(report: &rehearsal::run::Report) {
    let group = &report.summary["group"];
    let secs = group["health_check_interval_secs"].as_f64().unwrap_or(0.0)
        * group["healthy_threshold"].as_f64().unwrap_or(0.0);
    assert_eq!(
        secs, 10.0,
        "the derivations assume a new target is healthy 10 s after InService"
    );
}

/// (1) The default step policy, min 2 / max 4, a ramp 200 -> 1,000 rps, 150 rps per instance.
///
/// Capacity 150 rps per instance (2 vCPUs, 13.3 ms of CPU a request); CPU = rps / 150.
/// Ramp steps of 2 minutes: m0-1 200, m2-3 400, m4-5 600, m6-7 800, m8-9 1000.
///
/// m0  200 rps / 2 = 100 each, CPU 66.7 %. Alarm sees nothing yet (datapoints up to m-2).
/// m1  same.
/// m2  400 / 2 = 200 each > 150: saturated, served 300, failed 100, CPU 100.
///     cpu-high sees dp0 = 66.7 only: one breach, age 1 < M = 2, not a premature alarm: OK.
/// m3  cpu-high sees dp0, dp1 = 66.7, 66.7: 2 of 2, ALARM. Average 66.7 = threshold + 6.7:
///     step [0, 20) +1 from 2 warm = 3. Desired 3, launch #3 at 180 s (InService 240,
///     healthy 250, warm 330). Traffic still on 2: served 300, failed 100.
/// m4  600 rps. cpu-high sees dp1, dp2 = 66.7, 100: average 83.3, step [20, inf) +2 from 2
///     warm (#3 warms up) = 4: desired 4, one more launch (#4 at 240 s: healthy 310,
///     warm 390) - the difference between the steps, not 2 more.
///     #3 serves 50 of 60 s: 2.833 targets, 211.8 each > 150: served 425, failed 175.
/// m5  #4 serves 50 s: 3.833 targets, 156.5 each: served 575, failed 25. ALARM asks 2 + 2 = 4.
/// m6  800 rps on 4: served 600, failed 200. ALARM asks 3 + 2 = 5, clamped to max 4.
/// m7  the same. m8-9: 1,000 rps on 4: served 600, failed 400.
/// Offered 60 x 2 x (200 + 400 + 600 + 800 + 1000) = 360,000; failed 60 x 1,600 = 96,000.
/// 1,000 rps at 60 % of 150 needs ceil(1000 / 90) = 12 instances: the max_size warning.
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
    ]);
    assert_health_check_is_ten_seconds(&report);
    assert_eq!(
        column(&report, |r| r.desired),
        vec![2, 2, 2, 3, 4, 4, 4, 4, 4, 4]
    );
    assert_eq!(
        column(&report, |r| r.in_service),
        vec![2, 2, 2, 2, 3, 4, 4, 4, 4, 4]
    );
    let served = column(&report, |r| (r.served_rps * 1000.0).round() / 1000.0);
    assert_eq!(
        served,
        vec![
            200.0, 200.0, 300.0, 300.0, 425.0, 575.0, 600.0, 600.0, 600.0, 600.0
        ]
    );
    let failed = column(&report, |r| (r.failed_rps * 1000.0).round() / 1000.0);
    assert_eq!(
        failed,
        vec![
            0.0, 0.0, 100.0, 100.0, 175.0, 25.0, 200.0, 200.0, 400.0, 400.0
        ]
    );
    let cpu_high = column(&report, |r| r.alarms[0].1);
    assert_eq!(cpu_high[2], AlarmState::Ok);
    assert_eq!(cpu_high[3], AlarmState::Alarm);
    assert_eq!(report.summary["max_desired"], 4);
    assert!(
        (report.summary["failed_fraction"].as_f64().unwrap_or(0.0) - 96_000.0 / 360_000.0).abs()
            < 1e-9
    );
    let warnings = report.summary["warnings"].to_string();
    assert!(
        warnings.contains("max_size 4 cannot serve 1,000 rps at 60 % CPU: 12 instances needed"),
        "{warnings}"
    );
    assert_eq!(report.exit_code, 1, "{}", report.verdict);
    assert!(report.verdict.contains("SLO verdict: FAIL"));
}

/// (2) Target tracking at 50 % CPU, a steady 600 rps, 150 rps per instance, warm-up 300 s
/// (long enough to cover boot, health checks and the metric delay).
///
/// AWS's alarms: high = 3 of 3 one-minute datapoints > 50; low = 15 of 15 < 45 (0.9 x).
/// m0-3 2 instances, 300 rps each > 150: CPU 100 (dp0-3 = 100). The high alarm needs three
///      datapoints: it sees 0, 1, 2 datapoints at m2, m3 (no premature alarm: the oldest
///      breach is younger than 3).
/// m4   sees dp0-2 = 100: ALARM, ceil(2 warm x 100 / 50) = 4. Launch 2 at 240 s (healthy
///      310, warm 240 + 60 + 300 = 600).
/// m5-9 the new ones warm up: current capacity stays 2, asks 4 again, no change. From m6
///      4 targets x 150 = 600: exactly 100 % CPU (dp = 100).
/// m10  t = 600: 4 warm. Sees dp6-8 = 100: ceil(4 x 100 / 50) = 8. Launch 4 at 600 s
///      (healthy 670, warm 960 = m16).
/// m11  7.33 targets, 81.8 rps each: CPU 54.5 (dp11, from the 4 warm ones). Asks 4 x 100 /
///      50 = 8: nothing new.
/// m12+ 8 targets, 75 rps each: CPU exactly 50 (dp12 on). m12 sees dp8-10 = 100: 8 again;
///      m13 sees 100, 100, 54.5: average 84.8, ceil(4 x 84.8 / 50) = 7 < 8: nothing;
///      m14 sees 100, 54.5, 50: 50 is not above 50, OK. Never below 45: no scale-in.
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
        "--slo-rps",
        "600",
    ]);
    assert_health_check_is_ten_seconds(&report);
    let desired = column(&report, |r| r.desired);
    let mut expected = vec![2, 2, 2, 2, 4, 4, 4, 4, 4, 4];
    expected.extend(std::iter::repeat_n(8, 20));
    assert_eq!(desired, expected);
    let cpu = column(&report, |r| {
        r.cpu_percent.map(|c| (c * 10.0).round() / 10.0)
    });
    assert_eq!(cpu[11], Some(54.5));
    assert!(cpu[12..].iter().all(|c| *c == Some(50.0)), "{cpu:?}");
    // From m12 on, nothing fails and nothing moves.
    assert!(
        report.outcome.rows[12..]
            .iter()
            .all(|r| r.failed_rps.abs() < 1e-9)
    );
    assert_eq!(report.summary["max_desired"], 8);
}

/// (3) infra/examples/weekly-business.tfvars over a Monday from 06:30 in Paris (winter,
/// UTC+1), the default step policy, 150 rps per instance; load: 100 rps until 07:00, 300
/// until 15:00, then 60 until 16:00.
///
/// At 06:30 the last firings were Mon 06:00 normal-morning (min 2, max 4) after Mon 00:00,
/// Sun 00:00, Sat 21:00 and Fri's actions: min 2, max 4, desired 2 (the minimum in force).
/// m0-19  2 instances, 50 rps each: 33.3 %, between 30 and 60: nothing.
/// m20    06:50 peak-start: min 4, max 8, desired pulled up to 4, launch 2 at 1200 s
///        (healthy 1270, warm 1350).
/// m21-29 100 rps over 3.67 then 4 targets: 18.2 % then 16.7 %, below 30: cpu-low goes to
///        ALARM at m27 (dp21-25), asks 4 - 1 = 3, but min 4 holds it at 4.
/// m30    07:00, 300 rps on 4: 50 %. 09:00 peak-end (min 2): desired stays 4 (50 % is no
///        reason to move); 12:50 peak-start (min 4) again; 15:00 (m510) peak-end: min 2.
/// m510+  60 rps on 4: 10 %. cpu-low sees dp509-513 at m515 (dp509 = 50 %: OK); at m516
///        dp510-514, all 10 %: ALARM, 4 - 1 = 3, drain the oldest (gone 30 s later).
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
    assert_health_check_is_ten_seconds(&report);
    assert_eq!(
        report.summary["start"],
        "2026-12-07T06:30:00+01:00[Europe/Paris]"
    );
    assert_eq!(
        report.summary["initial"],
        serde_json::json!({ "min_size": 2, "max_size": 4, "desired": 2 })
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
    assert_eq!(rows[27].alarms[1].1, AlarmState::Alarm);
    assert_eq!(rows[26].alarms[1].1, AlarmState::Ok);
    // 50 % CPU for eight hours on a t3.micro (baseline 10 %): credits outgrow the instances.
    let warnings = report.summary["warnings"].to_string();
    assert!(warnings.contains("surplus CPU credits"), "{warnings}");
    assert_eq!(report.exit_code, 0, "{}", report.verdict);
}
