//! The target's `/metrics` (Prometheus text exposition), read into [`TargetMetrics`]: the
//! bundled proxy's SPEC names, or for another target the series `[target.metrics]` names
//! ([`MetricMap`]) for sessions, tasks and upstream connections.

use crate::report::sample::TargetMetrics;
use crate::report::selector::Selector;

/// The target's own series for what the leak checks follow (`[target.metrics]`); an unset
/// one keeps the SPEC name.
#[derive(Debug, Clone, Default)]
pub struct MetricMap {
    pub sessions: Option<Selector>,
    pub tasks: Option<Selector>,
    pub upstream_connections: Option<Selector>,
}

impl MetricMap {
    /// From the scenario's texts (validated already; a bad one is an error naming it).
    pub fn parse(
        sessions: Option<&str>,
        tasks: Option<&str>,
        upstream_connections: Option<&str>,
    ) -> Result<MetricMap, String> {
        let p = |t: Option<&str>| t.map(Selector::parse).transpose();
        Ok(MetricMap {
            sessions: p(sessions)?,
            tasks: p(tasks)?,
            upstream_connections: p(upstream_connections)?,
        })
    }

    pub fn is_empty(&self) -> bool {
        self.sessions.is_none() && self.tasks.is_none() && self.upstream_connections.is_none()
    }

    /// The mapped series this line belongs to, if any.
    fn slot<'m>(
        &self,
        m: &'m mut TargetMetrics,
        name: &str,
        labels: &str,
    ) -> Option<&'m mut Option<f64>> {
        let hit = |s: &Option<Selector>| s.as_ref().is_some_and(|s| s.matches(name, labels));
        if hit(&self.sessions) {
            Some(&mut m.sessions)
        } else if hit(&self.tasks) {
            Some(&mut m.tokio_alive_tasks)
        } else if hit(&self.upstream_connections) {
            Some(&mut m.upstream_active)
        } else {
            None
        }
    }
}

/// The proxy's query names (`mcp_proxy_db_queries_total{query}`) that write.
const WRITE_QUERIES: &[&str] = &["touch_keys", "apply_seed", "create_key", "revoke_key"];
/// The query names that read config (an instance's upstreams, an API key).
const CONFIG_QUERIES: &[&str] = &["instance_config", "api_key"];

impl TargetMetrics {
    /// Parses Prometheus text exposition: sums each SPEC family over its labels (upstream
    /// connections: `state="active"` only).
    pub fn parse(text: &str) -> TargetMetrics {
        TargetMetrics::parse_mapped(text, &MetricMap::default())
    }

    /// [`parse`](TargetMetrics::parse), with `map`'s series in place of the SPEC names of
    /// sessions, tasks and upstream connections it sets.
    pub fn parse_mapped(text: &str, map: &MetricMap) -> TargetMetrics {
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
            if let Some(slot) = map.slot(&mut m, name, labels) {
                *slot = Some(slot.unwrap_or(0.0) + value);
                continue;
            }
            let slot = match name {
                "mcp_proxy_tokio_alive_tasks" if map.tasks.is_none() => &mut m.tokio_alive_tasks,
                "mcp_proxy_sessions" if map.sessions.is_none() => &mut m.sessions,
                "mcp_proxy_upstream_connections"
                    if map.upstream_connections.is_none()
                        && labels.contains("state=\"active\"") =>
                {
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
