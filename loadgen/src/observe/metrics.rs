//! The target's `/metrics` (Prometheus text exposition), read into [`TargetMetrics`].

use crate::report::sample::TargetMetrics;

/// The proxy's query names (`mcp_proxy_db_queries_total{query}`) that write.
const WRITE_QUERIES: &[&str] = &["touch_keys", "apply_seed", "create_key", "revoke_key"];
/// The query names that read config (an instance's upstreams, an API key).
const CONFIG_QUERIES: &[&str] = &["instance_config", "api_key"];

impl TargetMetrics {
    /// Parses Prometheus text exposition: sums each SPEC family over its labels (upstream
    /// connections: `state="active"` only).
    pub fn parse(text: &str) -> TargetMetrics {
        let mut m = TargetMetrics::default();
        for line in text.lines() {
            if line.starts_with('#') || line.trim().is_empty() {
                continue;
            }
            let (series, value) = match line.rsplit_once(' ') {
                Some((s, v)) => (s.trim(), v.trim()),
                None => continue,
            };
            let Ok(value) = value.parse::<f64>() else {
                continue;
            };
            let (name, labels) = match series.split_once('{') {
                Some((n, l)) => (n, l.trim_end_matches('}')),
                None => (series, ""),
            };
            let slot = match name {
                "mcp_proxy_tokio_alive_tasks" => &mut m.tokio_alive_tasks,
                "mcp_proxy_sessions" => &mut m.sessions,
                "mcp_proxy_upstream_connections" if labels.contains("state=\"active\"") => {
                    &mut m.upstream_active
                }
                "mcp_proxy_inflight_requests" => &mut m.inflight,
                "mcp_proxy_config_cache_hits_total" => &mut m.config_cache_hits,
                "mcp_proxy_config_cache_misses_total" => &mut m.config_cache_misses,
                "mcp_proxy_db_pool_size" => &mut m.db_pool_size,
                "mcp_proxy_db_pool_idle" => &mut m.db_pool_idle,
                "mcp_proxy_db_queries_total" => {
                    let query = label_value(labels, "query").unwrap_or_default();
                    let add = |slot: &mut Option<f64>| *slot = Some(slot.unwrap_or(0.0) + value);
                    if CONFIG_QUERIES.contains(&query) {
                        add(&mut m.db_config_queries);
                    }
                    if WRITE_QUERIES.contains(&query) {
                        add(&mut m.db_writes);
                    }
                    if query == "touch_keys" {
                        add(&mut m.db_last_used_writes);
                    }
                    // present (as 0) whenever the family is, so a window's delta is defined
                    m.db_config_queries.get_or_insert(0.0);
                    m.db_writes.get_or_insert(0.0);
                    m.db_last_used_writes.get_or_insert(0.0);
                    &mut m.db_queries
                }
                "mcp_proxy_child_processes" => &mut m.child_processes,
                "mcp_proxy_requests_total" => &mut m.requests,
                "mcp_proxy_invalidation_listener_up" => &mut m.listener_up,
                _ => continue,
            };
            *slot = Some(slot.unwrap_or(0.0) + value);
        }
        m
    }
}

/// `name="value"` out of a Prometheus label set.
fn label_value<'a>(labels: &'a str, name: &str) -> Option<&'a str> {
    labels.split(',').find_map(|kv| {
        let (k, v) = kv.split_once('=')?;
        (k.trim() == name).then(|| v.trim().trim_matches('"'))
    })
}
