-- Upstream credentials: header templates (`${NAME}`), caller headers forwarded to
-- per-session/per-request upstreams, and each instance's secrets, sealed (AES-256-GCM; the
-- key never reaches the database; `key_id` says which key sealed the value).
ALTER TABLE upstreams ADD COLUMN headers TEXT NOT NULL DEFAULT '{}';
ALTER TABLE upstreams ADD COLUMN forward_headers TEXT NOT NULL DEFAULT '{}';

CREATE TABLE IF NOT EXISTS instance_secrets (
    instance_id TEXT NOT NULL REFERENCES instances(id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    sealed TEXT NOT NULL,
    key_id TEXT NOT NULL,
    updated_at BIGINT NOT NULL,
    PRIMARY KEY (instance_id, name)
);
