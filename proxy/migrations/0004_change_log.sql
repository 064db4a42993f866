-- The change log of a SQLite deployment: every write that changes what a running proxy caches
-- (`Store::notify`) appends its invalidation payload here in its own transaction, so a
-- `serve` process hears of writes made by another process (the CLI) by watching SQLite's
-- `data_version` and reading the rows after the last one it applied. Ids are contiguous
-- (MAX + 1 under SQLite's write lock), so a reader that finds a gap knows rows were pruned
-- before it read them. `writer` names the store (one per process) that wrote the row: a
-- process applies its own writes at once and skips them here. PostgreSQL announces with
-- `pg_notify` and leaves this table empty.
CREATE TABLE IF NOT EXISTS changes (
    id BIGINT PRIMARY KEY,
    payload TEXT NOT NULL,
    writer TEXT NOT NULL,
    at_ms BIGINT NOT NULL
);
