# The service's store (service/src/store/dynamodb.rs): items keyed by CandidateName; each item
# also carries a small ListShard number, and the ByName index (hash ListShard, range
# CandidateName, keys only) keeps each shard sorted by name for paginated listing.
resource "aws_dynamodb_table" "candidates" {
  name                        = local.table_name
  billing_mode                = "PAY_PER_REQUEST"
  hash_key                    = "CandidateName"
  deletion_protection_enabled = var.deletion_protection

  attribute {
    name = "CandidateName"
    type = "S"
  }

  attribute {
    name = "ListShard"
    type = "N"
  }

  # hash_key/range_key work with every 6.x provider; from 6.29 they are deprecated in favour of
  # a key_schema block, which older 6.x releases reject.
  global_secondary_index {
    name            = "ByName"
    hash_key        = "ListShard"
    range_key       = "CandidateName"
    projection_type = "KEYS_ONLY"
  }

  point_in_time_recovery {
    enabled = true
  }

  # Encrypted with the AWS managed key (aws/dynamodb): no key to pay for or to grant.
  server_side_encryption {
    enabled = true
  }

  tags = {
    Name = local.table_name
  }
}
