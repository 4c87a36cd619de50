//! The rehearsal refuses exactly what Terraform refuses: the same values through the real
//! `terraform plan` (against moto, one `terraform init` for every row) and through the
//! rehearsal (`--check`, in-process), the same verdict, and when refused, Terraform's own
//! message in the rehearsal's error.

use blackbox::repo_root;
use blackbox::terraform::Deployment;
use futures::StreamExt;

const WORKSPACE: &str = "parity";

#[derive(Debug, Clone, PartialEq)]
enum Verdict {
    Accepted,
    /// The messages, whitespace collapsed.
    Refused(String),
}

fn collapse(text: &str) -> String {
    text.replace('│', " ")
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
}

/// `terraform plan` with these extra arguments in the parity workspace.
async fn plan(stack: &Deployment, base: &[String], extra: &[String]) -> Verdict {
    let mut args = vec![
        "plan".to_owned(),
        "-input=false".to_owned(),
        "-no-color".to_owned(),
        "-lock=false".to_owned(),
    ];
    args.extend(base.iter().cloned());
    args.extend(extra.iter().cloned());
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let outcome = stack.terraform(Some(WORKSPACE), &args).await;
    if outcome.code == 0 {
        Verdict::Accepted
    } else {
        assert!(
            outcome.stderr.contains("Error"),
            "terraform plan failed without an error: {outcome}"
        );
        Verdict::Refused(collapse(&outcome.output()))
    }
}

/// The rehearsal's verdict on the same arguments.
fn rehearse(stack: &Deployment, base: &[String], extra: &[String]) -> Verdict {
    let mut args = vec![WORKSPACE.to_owned()];
    args.extend(base.iter().cloned());
    args.extend(extra.iter().cloned());
    args.extend(
        [
            "--rate",
            "5",
            "--instance-rps",
            "100",
            "--check",
            "--infra",
            stack.infra().to_str().expect("utf-8"),
        ]
        .map(str::to_owned),
    );
    let options = rehearsal::cli::parse(&args).expect("arguments");
    match rehearsal::run::rehearse(&options, &[]) {
        Ok(_) => Verdict::Accepted,
        Err(rehearsal::error::Error::Usage(message))
            if message.contains("terraform plan would refuse") =>
        {
            Verdict::Refused(message)
        }
        Err(other) => panic!("{extra:?}: the rehearsal failed for a reason of its own: {other}"),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn the_rehearsal_refuses_what_terraform_plan_refuses_and_nothing_else() {
    let stack = Deployment::start("eu-west-3").await;
    let ami = stack.bake_ami().await;
    stack.new_workspace(WORKSPACE).await;
    let weekly = repo_root().join("infra/examples/weekly-business.tfvars");
    let base = vec![
        format!("-var=ami_id={ami}"),
        format!("-var=region={}", stack.region),
    ];
    let var = |text: &str| vec![format!("-var={text}")];
    // (what the row shows, arguments, Terraform's verdict)
    let rows: Vec<(&str, Vec<String>, bool)> = vec![
        ("the defaults", vec![], true),
        (
            "the weekly schedule",
            vec![format!("-var-file={}", weekly.display())],
            true,
        ),
        ("min_size 0 (validation)", var("min_size=0"), false),
        ("one zone (validation)", var("az_count=1"), false),
        (
            "a CPU target of 95 (validation)",
            var("target_cpu_percent=95"),
            false,
        ),
        (
            "no request timeout (validation)",
            var("request_timeout_secs=0"),
            false,
        ),
        (
            "a delay below the timeout (precondition)",
            var("deregistration_delay_secs=5"),
            false,
        ),
        (
            "a drain shorter than detection (precondition)",
            var("shutdown_drain_secs=5"),
            false,
        ),
        ("min above max (precondition)", var("min_size=5"), false),
        (
            "an unreachable last step (precondition)",
            var("scale_out_cpu_threshold=90"),
            false,
        ),
        (
            "step thresholds ignored by target tracking",
            [
                var("scaling_mode=target_tracking"),
                var("scale_in_cpu_threshold=70"),
            ]
            .concat(),
            true,
        ),
        (
            "a cron day AWS does not know (plans; AWS refuses on apply)",
            var(r#"schedules={ a = { recurrence = "0 7 L * *", min_size = 1 } }"#),
            true,
        ),
    ];
    // Two plans at a time: each is mostly waiting on the provider and moto.
    let results: Vec<(&str, bool, Verdict, Verdict)> = futures::stream::iter(rows.iter())
        .map(|(label, args, accepted)| {
            let (stack, base) = (&stack, &base);
            async move {
                let terraform = plan(stack, base, args).await;
                let rehearsal = rehearse(stack, base, args);
                (*label, *accepted, terraform, rehearsal)
            }
        })
        .buffer_unordered(2)
        .collect()
        .await;
    for (label, accepted, terraform, rehearsal) in &results {
        assert_eq!(
            matches!(terraform, Verdict::Accepted),
            *accepted,
            "{label}: terraform plan said {terraform:?}"
        );
        match (terraform, rehearsal) {
            (Verdict::Accepted, Verdict::Accepted) => {}
            (Verdict::Refused(tf), Verdict::Refused(ours)) => {
                // Every message the rehearsal gives is one Terraform gave.
                let messages: Vec<String> = ours
                    .lines()
                    .skip(1)
                    .filter_map(|line| line.split_once(".tf: ").map(|(_, m)| collapse(m)))
                    .collect();
                assert!(!messages.is_empty(), "{label}: {ours}");
                for message in messages {
                    assert!(
                        tf.contains(&message),
                        "{label}: the rehearsal says\n  {message}\nterraform said\n  {tf}"
                    );
                }
            }
            (terraform, rehearsal) => {
                panic!("{label}: terraform plan {terraform:?}, the rehearsal {rehearsal:?}")
            }
        }
    }
}
