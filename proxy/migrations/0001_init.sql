-- Portable schema: runs unchanged on SQLite and PostgreSQL (TEXT and BIGINT only,
-- timestamps as unix milliseconds, no autoincrement).
CREATE TABLE IF NOT EXISTS upstreams (
    name TEXT PRIMARY KEY,
    transport TEXT NOT NULL,
    url TEXT,
    command TEXT,
    args TEXT NOT NULL DEFAULT '[]',
    env TEXT NOT NULL DEFAULT '{}',
    connection TEXT NOT NULL DEFAULT 'shared',
    updated_at BIGINT NOT NULL
);

CREATE TABLE IF NOT EXISTS instances (
    id TEXT PRIMARY KEY,
    prefix TEXT NOT NULL DEFAULT 'auto',
    updated_at BIGINT NOT NULL
);

CREATE TABLE IF NOT EXISTS instance_upstreams (
    instance_id TEXT NOT NULL REFERENCES instances(id) ON DELETE CASCADE,
    upstream_name TEXT NOT NULL REFERENCES upstreams(name) ON DELETE CASCADE,
    position BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (instance_id, upstream_name)
);

CREATE TABLE IF NOT EXISTS api_keys (
    id TEXT PRIMARY KEY,
    instance_id TEXT NOT NULL REFERENCES instances(id) ON DELETE CASCADE,
    key_hash TEXT NOT NULL UNIQUE,
    created_at BIGINT NOT NULL,
    revoked_at BIGINT,
    last_used_at BIGINT
);

CREATE INDEX IF NOT EXISTS api_keys_instance ON api_keys (instance_id);
