//! The OpenAPI document and the router describe the same API.

use std::collections::BTreeSet;

use blackbox::{ServiceBuilder, repo_root};
use serde_norway::Value;

const METHODS: &[&str] = &[
    "get", "put", "post", "delete", "options", "head", "patch", "trace",
];

fn document() -> Value {
    let text =
        std::fs::read_to_string(repo_root().join("docs/openapi.yaml")).expect("docs/openapi.yaml");
    serde_norway::from_str(&text).expect("docs/openapi.yaml is YAML")
}

fn documented_endpoints(doc: &Value) -> BTreeSet<(String, String)> {
    let paths = doc["paths"].as_mapping().expect("paths");
    paths
        .iter()
        .flat_map(|(path, item)| {
            let path = path.as_str().expect("path").to_owned();
            item.as_mapping()
                .expect("path item")
                .keys()
                .filter_map(|k| k.as_str())
                .filter(|k| METHODS.contains(k))
                .map(move |method| (method.to_uppercase(), path.clone()))
                .collect::<Vec<_>>()
        })
        .collect()
}

#[test]
fn every_route_is_documented_and_every_documented_route_exists() {
    let served: BTreeSet<(String, String)> = candidates::api::endpoints()
        .into_iter()
        .map(|e| (e.method.to_owned(), e.path.to_owned()))
        .collect();
    let documented = documented_endpoints(&document());
    let undocumented: Vec<_> = served.difference(&documented).collect();
    let phantom: Vec<_> = documented.difference(&served).collect();
    assert!(
        undocumented.is_empty(),
        "served but not in docs/openapi.yaml: {undocumented:?}"
    );
    assert!(
        phantom.is_empty(),
        "in docs/openapi.yaml but not served: {phantom:?}"
    );
}

#[test]
fn the_document_is_openapi_3_with_a_response_for_every_operation() {
    let doc = document();
    assert!(doc["openapi"].as_str().is_some_and(|v| v.starts_with("3.")));
    for (method, path) in documented_endpoints(&doc) {
        let operation = &doc["paths"][path.as_str()][method.to_lowercase().as_str()];
        let responses = operation["responses"].as_mapping().expect("responses");
        assert!(
            !responses.is_empty(),
            "{method} {path} documents no response"
        );
    }
}

#[tokio::test]
async fn the_service_serves_the_document_it_was_built_with() {
    let svc = ServiceBuilder::memory().start().await;
    let response = svc.get("/openapi.yaml").await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "application/yaml");
    let served = response.text().await.expect("body");
    let on_disk = std::fs::read_to_string(repo_root().join("docs/openapi.yaml")).expect("doc");
    assert_eq!(served, on_disk);
}
