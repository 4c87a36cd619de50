//! The production store: a DynamoDB table keyed by `CandidateName` (S).
//!
//! Listing in a stable order that SQLite can match rules out `Scan`, whose order is the
//! table's internal hash order. Instead every item carries a small `ListShard` number
//! and the global secondary index `ByName` (hash `ListShard`, range `CandidateName`,
//! keys only) keeps each shard sorted by name. A page is one `Query` per shard for the
//! names after the cursor, merged: ascending UTF-8 byte order, exactly as SQLite's.
//! Sharding spreads the index's writes over several partitions, so the index never
//! becomes the one hot key that would throttle every write of the table.
//!
//! Reads of one candidate use `GetItem` with `ConsistentRead`, so a GET right after an
//! acknowledged POST sees it. Listing reads the index, which is eventually consistent.

use std::collections::HashMap;

use async_trait::async_trait;
use aws_config::BehaviorVersion;
use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::error::DisplayErrorContext;
use aws_sdk_dynamodb::operation::get_item::builders::GetItemFluentBuilder;
use aws_sdk_dynamodb::operation::put_item::builders::PutItemFluentBuilder;
use aws_sdk_dynamodb::types::AttributeValue;
use md5::{Digest, Md5};

use super::{CandidateStore, StoreError, StoreTimeouts, parse_stored_name};
use crate::candidate::{Candidate, CandidateName, Page, PageLimit};

/// The table's partition key, as the original service named it.
pub const PARTITION_KEY: &str = "CandidateName";
/// The index that keeps names sorted within each shard.
pub const LIST_INDEX: &str = "ByName";
/// The index's partition key: a number in `0..LIST_SHARDS` derived from the name.
pub const LIST_SHARD_ATTRIBUTE: &str = "ListShard";
/// Changing this re-partitions the index: existing items keep their old shard, so it
/// may grow (queries still cover the old values) but must never shrink.
pub const LIST_SHARDS: u8 = 8;
/// Every DynamoDB action this store calls: the IAM policy in `infra/` grants exactly
/// these, and the test suite checks both against what moto saw the service send.
pub const IAM_ACTIONS: &[&str] = &[
    "dynamodb:DescribeTable",
    "dynamodb:GetItem",
    "dynamodb:PutItem",
    "dynamodb:Query",
];

/// The `PutItem` of `POST /candidate/{name}`: the name and its list shard. Public, with
/// [`get_request`], so that the SDK floor (`benches/dynamodb_floor.rs`) sends exactly
/// the requests the store sends.
pub fn put_request(client: &Client, table: &str, name: &CandidateName) -> PutItemFluentBuilder {
    client
        .put_item()
        .table_name(table)
        .item(PARTITION_KEY, AttributeValue::S(name.to_string()))
        .item(
            LIST_SHARD_ATTRIBUTE,
            AttributeValue::N(list_shard(name).to_string()),
        )
}

/// The `GetItem` of `GET /candidate/{name}`: consistent, and only the key comes back.
pub fn get_request(client: &Client, table: &str, name: &CandidateName) -> GetItemFluentBuilder {
    client
        .get_item()
        .table_name(table)
        .key(PARTITION_KEY, AttributeValue::S(name.to_string()))
        .consistent_read(true)
        .projection_expression("#name")
        .expression_attribute_names("#name", PARTITION_KEY)
}

#[derive(Debug)]
pub struct DynamoDbStore {
    client: Client,
    table: String,
}

/// Attempts per store call, the first included. Each may take an equal share of the
/// call's time (about 3 s of the default 9.5 s), so one stalled attempt leaves room for
/// the retries, and a longer request timeout lengthens every attempt with it.
const MAX_ATTEMPTS: u32 = 3;

/// How the service's DynamoDB client is configured: region, credentials and endpoint
/// from the SDK's standard chain (`AWS_REGION`, `AWS_PROFILE`, `AWS_ENDPOINT_URL`, the
/// instance role), with the store's timeouts and retries. Public so that the SDK floor
/// (`benches/dynamodb_floor.rs`) measures exactly the client the service uses.
pub async fn sdk_config(timeouts: StoreTimeouts) -> aws_config::SdkConfig {
    aws_config::defaults(BehaviorVersion::latest())
        .http_client(crate::aws::http_client())
        .timeout_config(
            TimeoutConfig::builder()
                .connect_timeout(timeouts.connect)
                .operation_attempt_timeout(timeouts.operation / MAX_ATTEMPTS)
                .operation_timeout(timeouts.operation)
                .build(),
        )
        .retry_config(RetryConfig::standard().with_max_attempts(MAX_ATTEMPTS))
        .load()
        .await
}

impl DynamoDbStore {
    /// A store on `table` with the client of [`sdk_config`]. Nothing is sent until the
    /// first call, so an unreachable endpoint does not delay the start.
    pub async fn from_environment(table: String, timeouts: StoreTimeouts) -> Result<Self, String> {
        let config = sdk_config(timeouts).await;
        if config.region().is_none() {
            return Err(format!(
                "CANDIDATES_STORE=dynamodb://{table} needs an AWS region: set AWS_REGION \
                 (or a region in your AWS profile)"
            ));
        }
        Ok(Self {
            client: Client::new(&config),
            table,
        })
    }

    async fn query_shard(
        &self,
        shard: u8,
        after: Option<&CandidateName>,
        want: usize,
    ) -> Result<Vec<CandidateName>, StoreError> {
        let mut names = Vec::with_capacity(want);
        let mut start_key: Option<HashMap<String, AttributeValue>> = None;
        loop {
            let remaining = i32::try_from(want - names.len()).unwrap_or(i32::MAX);
            let query = self
                .client
                .query()
                .table_name(&self.table)
                .index_name(LIST_INDEX)
                .expression_attribute_names("#shard", LIST_SHARD_ATTRIBUTE)
                .expression_attribute_values(":shard", AttributeValue::N(shard.to_string()))
                .scan_index_forward(true)
                .limit(remaining)
                .set_exclusive_start_key(start_key.take());
            let query = match after {
                Some(after) => query
                    .key_condition_expression("#shard = :shard AND #name > :after")
                    .expression_attribute_names("#name", PARTITION_KEY)
                    .expression_attribute_values(":after", AttributeValue::S(after.to_string())),
                None => query.key_condition_expression("#shard = :shard"),
            };
            let output = query.send().await.map_err(|err| sdk_error("list", err))?;
            names.extend(output.items().iter().filter_map(name_of));
            // A page can stop short of `Limit` when it reaches 1 MB; keep reading.
            match output.last_evaluated_key() {
                Some(key) if names.len() < want => start_key = Some(key.clone()),
                _ => return Ok(names),
            }
        }
    }
}

/// The index shard of a name: stable across releases and instances, because both the
/// writer and every reader of the index derive it the same way.
pub fn list_shard(name: &CandidateName) -> u8 {
    Md5::digest(name.as_str().as_bytes())[0] % LIST_SHARDS
}

fn name_of(item: &HashMap<String, AttributeValue>) -> Option<CandidateName> {
    let raw = item.get(PARTITION_KEY)?.as_s().ok()?;
    parse_stored_name("dynamodb", raw.clone())
}

fn sdk_error<E>(operation: &'static str, err: E) -> StoreError
where
    E: std::error::Error + Send + Sync + 'static,
{
    StoreError::unavailable(operation, DisplayErrorContext(err).to_string())
}

#[async_trait]
impl CandidateStore for DynamoDbStore {
    async fn put(&self, name: &CandidateName) -> Result<(), StoreError> {
        put_request(&self.client, &self.table, name)
            .send()
            .await
            .map_err(|err| sdk_error("put", err))?;
        Ok(())
    }

    async fn get(&self, name: &CandidateName) -> Result<Option<Candidate>, StoreError> {
        let output = get_request(&self.client, &self.table, name)
            .send()
            .await
            .map_err(|err| sdk_error("get", err))?;
        Ok(output.item().and_then(name_of).map(Candidate::from))
    }

    async fn list(
        &self,
        limit: PageLimit,
        after: Option<&CandidateName>,
    ) -> Result<Page, StoreError> {
        // Any name among the first `limit + 1` overall is among the first `limit + 1` of
        // its own shard, so that many per shard is enough to fill the page and to know
        // whether another one follows.
        let want = limit.get() + 1;
        let shards = (0..LIST_SHARDS).map(|shard| self.query_shard(shard, after, want));
        let mut names: Vec<CandidateName> = futures_util::future::try_join_all(shards)
            .await?
            .into_iter()
            .flatten()
            .collect();
        names.sort_unstable();
        Ok(Page::from_sorted(names, limit))
    }

    async fn ping(&self) -> Result<(), StoreError> {
        self.client
            .describe_table()
            .table_name(&self.table)
            .send()
            .await
            .map_err(|err| sdk_error("ping", err))?;
        Ok(())
    }

    fn backend(&self) -> &'static str {
        "dynamodb"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shards_are_stable_and_in_range() {
        // Written down once: a change here would hide existing items from listings.
        let fixed = [("John Smith", 1), ("Zoë", 3), ("a", 4), ("李小龙", 6)];
        for (raw, shard) in fixed {
            let name = CandidateName::parse(raw).expect("valid");
            assert_eq!(list_shard(&name), shard, "{raw}");
        }
    }

    #[test]
    fn names_spread_over_every_shard() {
        let mut seen = [0u32; LIST_SHARDS as usize];
        for i in 0..800 {
            let name = CandidateName::parse(format!("candidate-{i}")).expect("valid");
            seen[usize::from(list_shard(&name))] += 1;
        }
        assert!(seen.iter().all(|&n| n > 50), "uneven shards: {seen:?}");
    }

    #[test]
    fn iam_actions_are_sorted_and_unique() {
        let mut sorted = IAM_ACTIONS.to_vec();
        sorted.sort_unstable();
        sorted.dedup();
        assert_eq!(sorted, IAM_ACTIONS);
    }
}
