//! `destroy.sh`: the stack, its workspace, then the AMIs and snapshots no launch template
//! of the region uses, on the two-environment fixture.

use blackbox::standins::{
    AMI_DEV, AMI_OTHER_PROJECT, AMI_PERF1_DEFAULT, AMI_PERF1_LATEST, AMI_PERF1_OLD, AMI_UNUSED,
    DEPLOYED_REGION, REGION, Stage, snapshot_of, strings, two_environments, workspaces,
};
use serde_json::json;

#[test]
fn destroy_removes_the_stack_its_workspace_and_the_amis_nobody_uses() {
    let stage = two_environments();
    let run = stage.run("destroy.sh", &["--yes", "dev"], None);
    run.assert_success();

    let infra = "terraform -chdir=$REPO/infra";
    let r = DEPLOYED_REGION;
    let (dev, old, unused) = (AMI_DEV, AMI_PERF1_OLD, AMI_UNUSED);
    let expected = [
        format!("{infra} init -input=false"),
        format!("{infra} workspace list"),
        format!("{infra} workspace select dev"),
        format!("{infra} state pull"),
        // The AMI and region of the state, not AWS_REGION's.
        format!(
            "{infra} destroy -input=false -auto-approve -var ami_id={dev} -var region={r} \
             -var project=axum-asg"
        ),
        format!("{infra} workspace select default"),
        format!("{infra} workspace delete dev"),
        format!(
            "aws ec2 describe-images --region {r} --owners self \
             --filters Name=tag:Project,Values=axum-asg --output json"
        ),
        // Every launch template of the region, whoever made it.
        format!("aws ec2 describe-launch-templates --region {r} --output json"),
        format!(
            "aws ec2 describe-launch-template-versions --region {r} \
             --launch-template-id lt-0perf1 --versions $Latest $Default --output json"
        ),
        format!("aws ec2 deregister-image --region {r} --image-id {dev}"),
        format!(
            "aws ec2 delete-snapshot --region {r} --snapshot-id {}",
            snapshot_of(dev)
        ),
        format!("aws ec2 deregister-image --region {r} --image-id {old}"),
        format!(
            "aws ec2 delete-snapshot --region {r} --snapshot-id {}",
            snapshot_of(old)
        ),
        format!("aws ec2 deregister-image --region {r} --image-id {unused}"),
        format!(
            "aws ec2 delete-snapshot --region {r} --snapshot-id {}",
            snapshot_of(unused)
        ),
    ];
    assert_eq!(run.calls, expected, "{run}");

    // What is left: perf1's workspace and the AMIs its launch template launches, with their
    // snapshots; another project's AMI.
    assert_eq!(workspaces(&stage), ["default", "perf1"]);
    let mut left = stage.image_ids();
    left.sort();
    assert_eq!(
        left,
        [AMI_PERF1_DEFAULT, AMI_PERF1_LATEST, AMI_OTHER_PROJECT],
        "{run}"
    );
    let aws = stage.model("aws.json");
    let mut snapshots: Vec<String> = aws["snapshots"]
        .as_array()
        .expect("snapshots")
        .iter()
        .map(|s| s.as_str().expect("id").to_owned())
        .collect();
    snapshots.sort();
    assert_eq!(
        snapshots,
        [AMI_PERF1_DEFAULT, AMI_PERF1_LATEST, AMI_OTHER_PROJECT].map(snapshot_of)
    );
    assert_eq!(
        strings(&aws["launch_templates"], "LaunchTemplateName"),
        ["axum-asg-perf1"]
    );
    for kept in [AMI_PERF1_DEFAULT, AMI_PERF1_LATEST] {
        assert!(
            run.stderr.contains(&format!(
                "NOTE: keeping {kept} (axum-asg-{kept}): launch template axum-asg-perf1"
            )),
            "{run}"
        );
    }
    for removed in [AMI_DEV, AMI_PERF1_OLD, AMI_UNUSED] {
        assert!(
            run.stderr
                .contains(&format!("NOTE: deregistered {removed}")),
            "{run}"
        );
        assert!(
            run.stderr.contains(&format!(
                "NOTE: deleted snapshot {} of {removed}",
                snapshot_of(removed)
            )),
            "{run}"
        );
    }
}

#[test]
fn destroy_keeps_an_ami_that_a_launch_template_of_another_project_launches() {
    // Another copy of the stack (AXUM_ASG_PROJECT=teamb), or anything else, launches the
    // unused AMI: its template carries another Project tag, or none.
    let stage = two_environments();
    let mut aws = stage.model("aws.json");
    aws["launch_templates"]
        .as_array_mut()
        .expect("templates")
        .push(json!({
            "LaunchTemplateId": "lt-0teamb",
            "LaunchTemplateName": "teamb-qa",
            "Tags": [{"Key": "Project", "Value": "teamb"}],
            "DefaultVersionNumber": 1,
            "Versions": [{"VersionNumber": 1, "ImageId": AMI_UNUSED}],
        }));
    stage.save_model("aws.json", &aws);

    let run = stage.run("destroy.sh", &["--yes", "dev"], None);
    run.assert_success();
    assert!(stage.image_ids().contains(&AMI_UNUSED.to_owned()), "{run}");
    assert!(
        run.stderr.contains(&format!(
            "NOTE: keeping {AMI_UNUSED} (axum-asg-{AMI_UNUSED}): launch template teamb-qa"
        )),
        "{run}"
    );
    assert!(!stage.image_ids().contains(&AMI_DEV.to_owned()), "{run}");
}

#[test]
fn destroy_keeps_the_ami_another_environment_would_roll_back_to() {
    // perf1's deploys replaced its old AMI, and apply.sh recorded it on perf1's template
    // (PreviousAmi) for ./apply.sh perf1 --rollback: no version launches it, yet it stays.
    let stage = two_environments();
    let mut aws = stage.model("aws.json");
    aws["launch_templates"][1]["Tags"]
        .as_array_mut()
        .expect("tags")
        .push(json!({"Key": "PreviousAmi", "Value": AMI_PERF1_OLD}));
    stage.save_model("aws.json", &aws);

    let run = stage.run("destroy.sh", &["--yes", "dev"], None);
    run.assert_success();
    assert!(
        stage.image_ids().contains(&AMI_PERF1_OLD.to_owned()),
        "{run}"
    );
    assert!(
        stage.model("aws.json")["snapshots"]
            .as_array()
            .expect("snapshots")
            .contains(&json!(snapshot_of(AMI_PERF1_OLD))),
        "{run}"
    );
    assert!(
        run.stderr.contains(&format!(
            "NOTE: keeping {AMI_PERF1_OLD} (axum-asg-{AMI_PERF1_OLD}): launch template axum-asg-perf1(rollback) of another environment still uses it ((rollback): the AMI ./apply.sh --rollback would deploy again)"
        )),
        "{run}"
    );
    // What nothing uses or would roll back to still goes.
    for removed in [AMI_DEV, AMI_UNUSED] {
        assert!(!stage.image_ids().contains(&removed.to_owned()), "{run}");
    }
}

#[test]
fn destroy_cleans_the_amis_of_the_project_the_environment_was_deployed_as() {
    // qa was deployed with AXUM_ASG_PROJECT=teamb: its state says so, and destroy.sh removes
    // teamb's AMIs even when run without the variable, never axum-asg's.
    let stage = two_environments();
    let mut terraform = stage.model("terraform.json");
    terraform["workspaces"]["qa"] = json!({"ami_id": AMI_OTHER_PROJECT, "region": DEPLOYED_REGION,
        "launch_template_id": "lt-0qa", "url": "http://127.0.0.1:9", "project": "other-project"});
    stage.save_model("terraform.json", &terraform);
    let run = stage.run("destroy.sh", &["--yes", "qa"], None);
    run.assert_success();
    assert!(
        run.stderr
            .contains("'qa' was deployed as project other-project"),
        "{run}"
    );
    let lookup = run.one_call("aws ec2 describe-images");
    assert!(
        lookup.contains("Name=tag:Project,Values=other-project"),
        "{run}"
    );
    assert!(
        !stage.image_ids().contains(&AMI_OTHER_PROJECT.to_owned()),
        "{run}"
    );
    assert!(stage.image_ids().contains(&AMI_UNUSED.to_owned()), "{run}");
}

#[test]
fn keep_amis_touches_no_ami_and_without_yes_terraform_asks() {
    let stage = two_environments();
    let before = stage.model("aws.json");
    let run = stage.run("destroy.sh", &["--keep-amis", "dev"], Some("yes\n"));
    run.assert_success();
    let destroy = run.one_call("terraform -chdir=$REPO/infra destroy");
    assert!(!destroy.contains("-auto-approve"), "{run}");
    assert!(run.stderr.contains("Enter a value:"), "{run}");
    assert!(run.calls_to("aws").is_empty(), "{run}");
    assert_eq!(workspaces(&stage), ["default", "perf1"]);
    let after = stage.model("aws.json");
    assert_eq!(after["images"], before["images"]);
    assert_eq!(after["snapshots"], before["snapshots"]);
}

#[test]
fn a_failed_terraform_destroy_keeps_the_workspace_and_every_ami() {
    let mut stage = two_environments();
    stage.set("STANDIN_FAIL", "terraform destroy");
    let before = stage.model("aws.json");
    let run = stage.run("destroy.sh", &["--yes", "dev"], None);
    run.assert_failed_at("terraform destroy");
    assert!(
        run.calls_to("terraform -chdir=$REPO/infra workspace delete")
            .is_empty(),
        "{run}"
    );
    assert!(run.calls_to("aws").is_empty(), "{run}");
    assert_eq!(workspaces(&stage), ["default", "dev", "perf1"]);
    assert_eq!(stage.model("aws.json"), before);
}

#[test]
fn destroying_an_environment_that_was_never_deployed_still_cleans_the_amis() {
    let stage = two_environments();
    let run = stage.run("destroy.sh", &["--yes", "nonreg1"], None);
    run.assert_success();
    assert!(
        run.stderr.contains("no Terraform workspace 'nonreg1'"),
        "{run}"
    );
    assert!(
        run.calls_to("terraform -chdir=$REPO/infra destroy")
            .is_empty(),
        "{run}"
    );
    // Without a state, the region is AWS_REGION's.
    assert!(
        run.calls_to("aws ec2 describe-images")
            .iter()
            .all(|call| call.contains(&format!("--region {REGION} "))),
        "{run}"
    );
    assert_eq!(workspaces(&stage), ["default", "dev", "perf1"]);
}

#[test]
fn bad_usage_exits_2_and_calls_nothing() {
    let stage = Stage::new();
    for args in [vec!["--bogus"], vec!["Dev"], vec!["dev", "perf1"]] {
        let run = stage.run("destroy.sh", &args, None);
        assert_eq!(run.code, 2, "destroy.sh {args:?}:\n{run}");
        assert!(run.calls.is_empty(), "destroy.sh {args:?}:\n{run}");
    }
}
