//! Failures and retries, rehearsed whole: timelines derived by hand from the rules
//! (docs/REHEARSAL.md, "Failures and retries"), written here before they were compared
//! with the program. Assumptions are the defaults: metric delay 2 minutes, boot 60 s, EC2
//! pending 15 s, a health check every 5 s (infra/locals.tf: unhealthy after 2 failures,
//! healthy after 2 passes), the group acting on the load balancer's verdict 60 s later
//! (`unhealthy_replace_secs`), clients of a dark zone's load balancer node failing for 60 s
//! (`alb_dns_failover_secs`).

mod common;

use common::{Files, rehearse, summary};
use rehearsal::run::Report;
use rehearsal::simulate::MinuteRow;

fn column<T>(report: &Report, f: impl Fn(&MinuteRow) -> T) -> Vec<T> {
    report.outcome.rows.iter().map(f).collect()
}

fn rounded(values: Vec<f64>) -> Vec<f64> {
    values
        .into_iter()
        .map(|v| (v * 1000.0).round() / 1000.0)
        .collect()
}

/// A step policy that a scale-out at 90 % never moves here: the failures' own effect,
/// unmixed.
fn policy(min: u32, max: u32, timeout_secs: u32) -> String {
    format!(
        r#"
scaling_mode                   = "step"
instance_type                  = "t3.micro"
instance_warmup_secs           = 90
scale_out_cpu_threshold        = 90
scale_out_period_secs          = 60
scale_out_evaluation_periods   = 2
scale_out_steps                = [{{ lower_bound = 0, adjustment = 1 }}]
scale_in_cpu_threshold         = 20
scale_in_period_secs           = 60
scale_in_evaluation_periods    = 5
scale_in_adjustment            = -1
deregistration_delay_secs      = {timeout_secs}
shutdown_drain_secs            = 15
request_timeout_secs           = {timeout_secs}
health_check_grace_period_secs = 120
min_size                       = {min}
max_size                       = {max}
schedules                      = {{}}
"#
    )
}

fn holding_four(extra: &[&str]) -> Report {
    let files = Files::new();
    let policy = files.write("four.tfvars", &policy(4, 8, 15));
    let var_file = format!("-var-file={}", policy.display());
    let mut args = vec![
        var_file.as_str(),
        "--rate",
        "240",
        "--duration",
        "1500",
        "--instance-rps",
        "150",
        "--start",
        "2026-12-07T10:00Z",
    ];
    args.extend_from_slice(extra);
    rehearse(&args)
}

/// Zone a goes dark at minute 5 and comes back at minute 15, under 240 rps on four
/// instances of 150 rps each at 100 % CPU (a request timeout and deregistration delay of
/// 15 s): #0 and #2 in a, #1 and #3 in b, 60 rps each, 40 %.
///
/// m5  (300 s) a is dark: #0 and #2 stop answering. Half the clients hold a's load balancer
///     node: 120 rps fail (connection). The other 120 rps reach b's node, which spreads over
///     the four targets (cross-zone) until the load balancer finds #0 and #2 unhealthy at
///     310 s: 2 + 2 x 10/60 = 2.333 target-minutes, 51.43 rps each; the 2 x 10/60 sent to
///     the dark ones fail (17.14). Served 102.86, failed 137.14. CPU: only #1 and #3 report,
///     51.43 / 150 = 34.3 %. In service 4 (the group does not know yet), 2 not answering.
/// m6  a's clients have re-resolved: 240 rps on #1 and #3, 120 each, 80 %: nothing fails.
/// m7  (420 s) the group's check acts on the 310 s verdict (310 + 60 = 370): #0 (of the two,
///     the first) is deregistered and replaced, at 10 % of desired 4 = one at a time; a is
///     dark, so the replacement #4 launches in b (InService 480, serving 485, warm 570).
///     In service 3: a 1 (#2, still not answering), b 2.
/// m8  #4 in service: b 3. It serves 55 s: 2.917 targets, 82.29 rps each: CPU 54.9 %.
/// m10 (600 s) #4 is warm (570): the next batch, #2, is replaced by #5 in b (serving 665).
///     Everything left answers: a 0, b 3.
/// m11 #5 serves 55 s: 3.917 targets, 61.28 rps, CPU 40.9 %. m12-14: b 4, 60 rps, 40 %.
/// m15 (900 s) a is back: a 0 and b 4 are uneven, so the group rebalances, launching first:
///     #6 and #7 into a (InService 960, serving 965), six instances for a while (max 8).
/// m16 a 2, b 4 in service; #6 and #7 serve 55 s: 5.833 targets, 41.14 rps, CPU 27.4 %.
/// m17 (1,020 s) the new ones serve: the group terminates as many elsewhere, by the default
///     termination policy in the fullest zone b: #4 (running since 435 s, 3,015 s from its
///     next billing hour), then #5 (3,195 s), before #1 and #3 (3,395 s). a 2, b 2.
#[test]
fn a_dark_zone_halves_the_answering_capacity_until_the_group_replaces_and_rebalances() {
    let report = holding_four(&["--fail-az", "a@5-15"]);
    let rows = &report.outcome.rows;
    assert_eq!(rows.len(), 25);
    assert_eq!(
        column(&report, |r| r.desired),
        vec![4; 25],
        "only the failure moves"
    );
    let mut in_service = vec![4; 7];
    in_service.extend([3, 4, 4, 3]);
    in_service.extend(vec![4; 5]);
    in_service.push(6);
    in_service.extend(vec![4; 8]);
    assert_eq!(column(&report, |r| r.in_service), in_service);
    let mut not_answering = vec![0; 5];
    not_answering.extend([2, 2, 1, 1, 1]);
    not_answering.extend(vec![0; 15]);
    assert_eq!(column(&report, |r| r.not_answering), not_answering);
    let zones = column(&report, |r| r.in_service_by_zone.clone());
    assert_eq!(
        (
            &zones[4], &zones[7], &zones[8], &zones[10], &zones[15], &zones[16], &zones[17]
        ),
        (
            &vec![2, 2],
            &vec![1, 2],
            &vec![1, 3],
            &vec![0, 3],
            &vec![0, 4],
            &vec![2, 4],
            &vec![2, 2]
        )
    );
    assert_eq!(rows[5].dark_zones, vec![0]);
    assert!(rows[15].dark_zones.is_empty());
    let served = rounded(column(&report, |r| r.served_rps));
    let failed = rounded(column(&report, |r| r.failed_rps));
    assert_eq!((served[4], failed[4]), (240.0, 0.0));
    assert_eq!((served[5], failed[5]), (102.857, 137.143));
    assert!(served[6..].iter().all(|s| *s == 240.0), "{served:?}");
    assert!(failed[6..].iter().all(|f| *f == 0.0), "{failed:?}");
    let cpu = column(&report, |r| {
        r.cpu_percent.map(|c| (c * 10.0).round() / 10.0)
    });
    assert_eq!(
        (cpu[4], cpu[5], cpu[6], cpu[8], cpu[11], cpu[16], cpu[17]),
        (
            Some(40.0),
            Some(34.3),
            Some(80.0),
            Some(54.9),
            Some(40.9),
            Some(27.4),
            Some(40.0)
        )
    );
    let events = column(&report, |r| r.events.join("; "));
    assert!(
        events[5].starts_with("zone a goes dark: 2 instance(s)"),
        "{}",
        events[5]
    );
    assert!(events[6].is_empty(), "{}", events[6]);
    assert_eq!(
        events[7],
        "replace #0 in a (not answering since minute 5, found unhealthy); launch 1 (zones b)"
    );
    assert_eq!(
        events[10],
        "replace #2 in a (not answering since minute 5, found unhealthy); launch 1 (zones b)"
    );
    assert!(
        events[15].contains("zone a is back; rebalance: launch 2 (zones a, a)"),
        "{}",
        events[15]
    );
    assert!(
        events[17].ends_with("terminate #4 in b, #5 in b"),
        "{}",
        events[17]
    );
    let s = summary(&report);
    assert_eq!(s["failures"]["replacements"], 2);
    assert_eq!(s["failures"]["instance_minutes_not_answering"], 7);
    let lost = s["failures"]["failed_requests"].as_f64().unwrap_or(0.0);
    assert!((lost - 137.142_857 * 60.0).abs() < 0.01, "{lost}");
    // 8,229 of 360,000 requests failed: 97.7 % answered, below the success goal.
    assert_eq!(report.exit_code, 1, "{}", report.verdict);
    assert!(
        report.verdict.contains("failures        --fail-az a@5-15"),
        "{}",
        report.verdict
    );
}

/// One instance of four stops answering at minute 3: it still runs, so EC2 still reports
/// its CPU, idle (0 %), and drags the group's average down while it stays in the group.
///
/// m3  (180 s) #0 stops; found unhealthy at 190 s: 3 + 10/60 = 3.167 targets, 75.79 rps
///     each; the 10 s sent to #0 fail: 12.63 rps. CPU: #1-#3 at 50.5 %, #0 at 0: 37.9 %.
/// m4  240 rps on three: 80 each, 53.3 %; with #0's 0: 40 %, the same as before the
///     failure: the alarm cannot see it.
/// m5  (300 s) marked at 190 + 60 = 250: replaced; a holds #2 only, b two: #4 into a.
#[test]
fn a_failed_instance_reports_idle_cpu_until_it_is_replaced_in_its_zone() {
    let report = holding_four(&["--fail", "instance@3"]);
    let cpu = column(&report, |r| {
        r.cpu_percent.map(|c| (c * 10.0).round() / 10.0)
    });
    assert_eq!(
        (cpu[2], cpu[3], cpu[4]),
        (Some(40.0), Some(37.9), Some(40.0))
    );
    let failed = rounded(column(&report, |r| r.failed_rps));
    assert_eq!((failed[2], failed[3], failed[4]), (0.0, 12.632, 0.0));
    assert_eq!(
        report.outcome.rows[3].events,
        vec!["#0 in a stop(s) answering"]
    );
    assert_eq!(
        report.outcome.rows[5].events.join("; "),
        "replace #0 in a (not answering since minute 3, found unhealthy); launch 1 (zones a)"
    );
    assert_eq!(report.outcome.rows[6].in_service_by_zone, vec![2, 2]);
}

/// Two instances held at two (150 rps each at 100 % CPU: 300 rps in all), a request timeout
/// of 60 s; the load is 290 rps but for one minute of 400. Clients retry up to 3 times,
/// 1 s apart: a request the service times out fails 60 s later, so its retry lands in the
/// next minute (61 s, capped at the minute grid).
///
/// Without retries: m1 fails 100 rps, nothing else fails.
/// With them:
/// m1  400 first attempts: 300 served, 100 fail, retried in m2.
/// m2  290 + 100 retries = 390 > 300: 90 fail (3/13 of each attempt: 66.92 first attempts
///     and 23.08 first retries), all retried in m3.
/// m3  290 + 90 = 380: 80 fail (4/19 of each), 4.86 of them third attempts, retried once
///     more in m4.
/// m4  290 + 80 = 370: 70 fail; the 4.86 fourth attempts fail in the same proportion,
///     0.92 rps failed for good.
/// Each minute after the spike stays over capacity, by 10 rps less each minute (and what
/// failed for good leaves the loop): nine minutes of failures after a one-minute spike, which
/// a client that does not retry never causes.
#[test]
fn retries_turn_one_overloaded_minute_into_a_storm_a_non_retrying_client_would_not_cause() {
    let files = Files::new();
    let policy = files.write("two.tfvars", &policy(2, 2, 60));
    let mut csv = String::from("minute,rps\n0,290\n1,400\n");
    for m in 2..12 {
        csv.push_str(&format!("{m},290\n"));
    }
    let load = files.write("spike.csv", &csv);
    let var_file = format!("-var-file={}", policy.display());
    let base = [
        var_file.as_str(),
        "--load-csv",
        load.to_str().expect("utf-8"),
        "--instance-rps",
        "150",
        "--start",
        "2026-12-07T10:00Z",
    ];
    let plain = rehearse(&base);
    let mut with_retries = base.to_vec();
    with_retries.extend([
        "--retries",
        "3",
        "--backoff",
        "fixed",
        "--retry-base-ms",
        "1000",
    ]);
    let retried = rehearse(&with_retries);

    let plain_failed = rounded(column(&plain, |r| r.failed_rps));
    assert_eq!(plain_failed[1], 100.0);
    assert!(
        plain_failed[2..].iter().all(|f| *f == 0.0),
        "{plain_failed:?}"
    );
    assert_eq!(summary(&plain)["totals"]["amplification"], 1.0);

    let retry_rps = rounded(column(&retried, |r| r.retry_rps));
    let failed = rounded(column(&retried, |r| r.failed_rps));
    let for_good = rounded(column(&retried, |r| r.failed_for_good_rps));
    assert_eq!(&retry_rps[..5], &[0.0, 0.0, 100.0, 90.0, 80.0]);
    assert_eq!(&failed[..5], &[0.0, 100.0, 90.0, 80.0, 70.0]);
    // Fourth attempts: 4/19 of the 23.08 second attempts of m3, then 7/37 of those fail.
    let fourth = 100.0 * 3.0 / 13.0 * 4.0 / 19.0;
    assert_eq!(&for_good[..4], &[0.0, 0.0, 0.0, 0.0]);
    assert!(
        (for_good[4] - fourth * 7.0 / 37.0).abs() < 1e-3,
        "{for_good:?}"
    );
    assert!(
        failed[2..11].iter().all(|f| *f > 0.0),
        "the storm lasts: {failed:?}"
    );
    assert_eq!(failed[11], 0.0, "and dies down: {failed:?}");
    let t = &summary(&retried)["totals"];
    let plain_t = &summary(&plain)["totals"];
    assert!(
        t["failed_attempts"].as_f64()
            > Some(5.0 * plain_t["failed_attempts"].as_f64().unwrap_or(0.0)),
        "{t}"
    );
    assert!(t["amplification"].as_f64() > Some(1.05), "{t}");
    let r = &summary(&retried)["retries"];
    assert_eq!(r["policy"]["backoff"], "fixed");
    assert_eq!(r["amplification"], t["amplification"]);
    assert!(
        retried
            .verdict
            .contains("retries         up to 3 a request"),
        "{}",
        retried.verdict
    );
}
