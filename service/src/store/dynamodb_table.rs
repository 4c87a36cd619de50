//! The candidates table as `infra/dynamodb.tf` declares it: the name as partition key, and
//! the index that keeps names sorted within each shard. The service never creates it
//! (Terraform does); the black-box tests and the SDK floor (`benches/dynamodb_floor.rs`)
//! create it in moto with this one request.

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::operation::create_table::builders::CreateTableFluentBuilder;
use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, GlobalSecondaryIndex, KeySchemaElement, KeyType, Projection,
    ProjectionType, ScalarAttributeType,
};

use super::{LIST_INDEX, LIST_SHARD_ATTRIBUTE, PARTITION_KEY};

/// `CreateTable` for `table`, ready to send.
pub fn create_table_request(client: &Client, table: &str) -> CreateTableFluentBuilder {
    let key = |name: &str, key_type| {
        KeySchemaElement::builder()
            .attribute_name(name)
            .key_type(key_type)
            .build()
            .expect("a key schema with a name and a type")
    };
    let attribute = |name: &str, kind| {
        AttributeDefinition::builder()
            .attribute_name(name)
            .attribute_type(kind)
            .build()
            .expect("an attribute with a name and a type")
    };
    let index = GlobalSecondaryIndex::builder()
        .index_name(LIST_INDEX)
        .key_schema(key(LIST_SHARD_ATTRIBUTE, KeyType::Hash))
        .key_schema(key(PARTITION_KEY, KeyType::Range))
        .projection(
            Projection::builder()
                .projection_type(ProjectionType::KeysOnly)
                .build(),
        )
        .build()
        .expect("an index with a name and a key schema");
    client
        .create_table()
        .table_name(table)
        .billing_mode(BillingMode::PayPerRequest)
        .attribute_definitions(attribute(PARTITION_KEY, ScalarAttributeType::S))
        .attribute_definitions(attribute(LIST_SHARD_ATTRIBUTE, ScalarAttributeType::N))
        .key_schema(key(PARTITION_KEY, KeyType::Hash))
        .global_secondary_indexes(index)
}
