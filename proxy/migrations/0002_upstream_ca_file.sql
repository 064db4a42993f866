-- An https:// upstream's private CA (a PEM file path read by each replica at connect).
ALTER TABLE upstreams ADD COLUMN ca_file TEXT;
