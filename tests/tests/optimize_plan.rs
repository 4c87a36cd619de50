//! `rehearse.sh --optimize` writes recommended.tfvars for `./apply.sh ENV
//! -var-file=recommended.tfvars`: the real `terraform plan` (against moto) takes it
//! unchanged, on its own and after the weekly schedule's file it was tuned from.

use blackbox::repo_root;
use blackbox::terraform::Deployment;

const WORKSPACE: &str = "optimized";

#[tokio::test(flavor = "multi_thread")]
async fn terraform_plan_takes_the_recommended_tfvars() {
    let stack = Deployment::start("eu-west-3").await;
    let ami = stack.bake_ami().await;
    stack.new_workspace(WORKSPACE).await;
    let out = tempfile::tempdir().expect("temp dir");
    let weekly = repo_root().join("infra/examples/weekly-business.tfvars");
    // An hour of a Monday morning's peak: the search tunes the schedules' minimums too.
    let args: Vec<String> = [
        WORKSPACE,
        &format!("-var-file={}", weekly.display()),
        "--ramp",
        "100,300,500,200",
        "--duration",
        "900",
        "--start",
        "2026-12-07T06:30",
        "--instance-rps",
        "150",
        "--optimize",
        "--infra",
        stack.infra().to_str().expect("utf-8"),
        "--out",
        out.path().to_str().expect("utf-8"),
    ]
    .map(str::to_owned)
    .to_vec();
    let options = rehearsal::cli::parse(&args).expect("arguments");
    let (text, report) = rehearsal::optimize::recommend(&options, &[]).expect("the search");
    let tfvars = out.path().join("recommended.tfvars");
    assert!(tfvars.is_file(), "no recommended.tfvars:\n{text}");
    assert!(
        report.summary.as_ref().is_some_and(|s| s.slo_met),
        "the recommended configuration misses the SLO:\n{text}{}",
        report.verdict
    );
    let recommended = format!("-var-file={}", tfvars.display());
    let ami_var = format!("-var=ami_id={ami}");
    let region_var = format!("-var=region={}", stack.region);
    let weekly_file = format!("-var-file={}", weekly.display());
    for files in [vec![recommended.as_str()], vec![&weekly_file, &recommended]] {
        let mut plan = vec![
            "plan",
            "-input=false",
            "-no-color",
            "-lock=false",
            &ami_var,
            &region_var,
        ];
        plan.extend(files.iter().copied());
        let outcome = stack.terraform(Some(WORKSPACE), &plan).await;
        assert_eq!(
            outcome.code,
            0,
            "terraform plan {files:?} refused recommended.tfvars:\n{}\n{outcome}",
            std::fs::read_to_string(&tfvars).unwrap_or_default()
        );
        assert!(
            !outcome
                .output()
                .contains("Warning: Value for undeclared variable"),
            "{outcome}"
        );
    }
}
