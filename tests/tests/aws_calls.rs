//! What the service really sends to AWS, observed on the wire (moto's recorder), is
//! exactly what the instance role allows: `candidates::store::IAM_ACTIONS`, which the
//! infrastructure tests in turn compare with the policy in `infra/iam.tf`.

use std::collections::BTreeSet;

use blackbox::{Moto, ServiceBuilder};
use candidates::store::IAM_ACTIONS;

/// Signs the service's requests, so the recording tells them from the test's own.
const SERVICE_KEY: &str = "candidates-service";

#[tokio::test(flavor = "multi_thread")]
async fn the_service_calls_exactly_the_dynamodb_actions_its_role_grants() {
    let moto = Moto::start_recording().await;
    let table = moto.new_table().await;
    let svc = ServiceBuilder::dynamodb(&moto, &table)
        .env("AWS_ACCESS_KEY_ID", SERVICE_KEY)
        .start()
        .await;

    // Every route that touches the store, on its success and failure paths.
    for (post, path) in [
        (false, "/gtg?details"),
        (true, "/candidate/Ada"),
        (true, "/candidate/Grace"),
        (false, "/candidate/Ada"),
        (false, "/candidate/nobody"),
        (false, "/candidates?limit=1"),
    ] {
        let response = if post {
            svc.post(path).await
        } else {
            svc.get(path).await
        };
        assert!(
            response.status().as_u16() < 500,
            "{path}: {}",
            response.status()
        );
    }
    let first = svc.get("/candidates?limit=1").await;
    let cursor = first.headers()["x-next-cursor"]
        .to_str()
        .expect("cursor")
        .to_owned();
    assert_eq!(
        svc.get(&format!("/candidates?limit=1&cursor={cursor}"))
            .await
            .status(),
        200
    );

    let observed = moto.recorded_operations(SERVICE_KEY).await;
    let granted: BTreeSet<String> = IAM_ACTIONS
        .iter()
        .map(|action| {
            action
                .strip_prefix("dynamodb:")
                .expect("a DynamoDB action")
                .to_owned()
        })
        .collect();
    assert_eq!(observed, granted, "calls seen on the wire vs IAM_ACTIONS");
}
