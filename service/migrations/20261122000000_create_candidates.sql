-- One row per candidate. BINARY collation (the default, spelled out because the API's
-- listing order depends on it) sorts names by their UTF-8 bytes, as DynamoDB does.
CREATE TABLE IF NOT EXISTS candidates (
    name TEXT NOT NULL PRIMARY KEY COLLATE BINARY
) STRICT, WITHOUT ROWID;
