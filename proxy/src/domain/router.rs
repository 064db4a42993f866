//! Tool-name prefixing and routing (SPEC contract `{namespace}__{tool}`). Pure: no IO, no
//! async, so every rule is unit-tested here.

use std::collections::HashMap;
use std::sync::Arc;

use rmcp::model::Tool;

use crate::domain::model::InstanceConfig;

/// Separator between namespace and tool name.
pub const SEP: &str = "__";

/// Where a downstream tool name goes: which upstream, and the upstream's own tool name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    pub upstream: String,
    pub tool: String,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RouteError {
    #[error("unknown tool {0:?}: this instance has no upstreams")]
    NoUpstreams(String),
    #[error(
        "unknown tool {name:?}: expected `namespace{SEP}tool` with a namespace of this instance ({known})"
    )]
    UnknownNamespace { name: String, known: String },
    #[error("unknown tool {0:?}")]
    UnknownTool(String),
}

/// The name a downstream client sees for `tool` of upstream `namespace`.
pub fn expose(namespace: &str, tool: &str, prefixed: bool) -> String {
    if prefixed {
        format!("{namespace}{SEP}{tool}")
    } else {
        tool.to_string()
    }
}

/// Splits `namespace__tool` at the first separator. Namespaces are `[a-z0-9-]+` and cannot
/// contain the separator, so the split is unambiguous even if the tool name contains it.
pub fn split(name: &str) -> Option<(&str, &str)> {
    let (ns, tool) = name.split_once(SEP)?;
    (!ns.is_empty() && !tool.is_empty()).then_some((ns, tool))
}

/// Routes a name without the tool list when the instance's naming allows it: prefixed names
/// carry their upstream, and a single-upstream instance is transparent. Returns `Ok(None)`
/// when only the merged tool index can tell (several upstreams, `prefix = "never"`).
pub fn route_by_name(config: &InstanceConfig, name: &str) -> Result<Option<Route>, RouteError> {
    if config.upstreams.is_empty() {
        return Err(RouteError::NoUpstreams(name.to_string()));
    }
    if config.prefixed() {
        let unknown = || RouteError::UnknownNamespace {
            name: name.to_string(),
            known: config
                .upstreams
                .iter()
                .map(|u| u.name.as_str())
                .collect::<Vec<_>>()
                .join(", "),
        };
        let (ns, tool) = split(name).ok_or_else(unknown)?;
        if config.upstream(ns).is_none() {
            return Err(unknown());
        }
        return Ok(Some(Route {
            upstream: ns.to_string(),
            tool: tool.to_string(),
        }));
    }
    if let [only] = config.upstreams.as_slice() {
        return Ok(Some(Route {
            upstream: only.name.clone(),
            tool: name.to_string(),
        }));
    }
    Ok(None)
}

/// The merged tool list of an instance and the route of every exposed name.
#[derive(Debug, Default)]
pub struct ToolIndex {
    pub tools: Arc<Vec<Tool>>,
    routes: HashMap<String, Route>,
    /// Upstreams whose list failed (the list is partial; it is not cached).
    pub failed: Vec<String>,
    /// Names dropped because two upstreams exposed the same name (`prefix = "never"`).
    pub collisions: Vec<String>,
}

impl ToolIndex {
    /// Merges per-upstream lists (in instance order). With `prefixed` each tool is renamed
    /// `namespace__tool`; otherwise names are kept and, on a collision, the first upstream wins.
    pub fn build(
        prefixed: bool,
        lists: Vec<(String, Vec<Tool>)>,
        failed: Vec<String>,
    ) -> ToolIndex {
        let mut tools = Vec::new();
        let mut routes = HashMap::new();
        let mut collisions = Vec::new();
        for (upstream, list) in lists {
            for mut tool in list {
                let exposed = expose(&upstream, &tool.name, prefixed);
                if routes.contains_key(&exposed) {
                    collisions.push(format!("{exposed} (from {upstream})"));
                    continue;
                }
                routes.insert(
                    exposed.clone(),
                    Route {
                        upstream: upstream.clone(),
                        tool: tool.name.to_string(),
                    },
                );
                tool.name = exposed.into();
                tools.push(tool);
            }
        }
        ToolIndex {
            tools: Arc::new(tools),
            routes,
            failed,
            collisions,
        }
    }

    pub fn route(&self, name: &str) -> Option<&Route> {
        self.routes.get(name)
    }

    pub fn is_complete(&self) -> bool {
        self.failed.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::model::{ConnectionMode, PrefixMode, UpstreamConfig, UpstreamTransport};

    fn instance(prefix: PrefixMode, names: &[&str]) -> InstanceConfig {
        InstanceConfig {
            id: "i".into(),
            prefix,
            upstreams: names
                .iter()
                .map(|n| UpstreamConfig {
                    name: n.to_string(),
                    transport: UpstreamTransport::StreamableHttp {
                        url: "http://127.0.0.1:1/mcp".into(),
                        ca_file: None,
                        headers: Default::default(),
                    },
                    connection: ConnectionMode::Shared,
                    forward_headers: Default::default(),
                    credentials: Default::default(),
                })
                .collect(),
        }
    }

    fn tool(name: &str) -> Tool {
        Tool::new(name.to_string(), "d", Arc::new(serde_json::Map::new()))
    }

    #[test]
    fn single_upstream_auto_is_transparent() {
        let c = instance(PrefixMode::Auto, &["echo"]);
        let r = route_by_name(&c, "echo").unwrap().unwrap();
        assert_eq!((r.upstream.as_str(), r.tool.as_str()), ("echo", "echo"));
        // a name that merely looks prefixed is passed through untouched
        let r = route_by_name(&c, "x__y").unwrap().unwrap();
        assert_eq!(r.tool, "x__y");
    }

    #[test]
    fn prefixed_names_route_by_namespace() {
        let c = instance(PrefixMode::Auto, &["a", "b-2"]);
        let r = route_by_name(&c, "b-2__do__it").unwrap().unwrap();
        assert_eq!((r.upstream.as_str(), r.tool.as_str()), ("b-2", "do__it"));
        assert!(matches!(
            route_by_name(&c, "c__x"),
            Err(RouteError::UnknownNamespace { .. })
        ));
        assert!(matches!(
            route_by_name(&c, "plain"),
            Err(RouteError::UnknownNamespace { .. })
        ));
        assert!(matches!(
            route_by_name(&c, "a__"),
            Err(RouteError::UnknownNamespace { .. })
        ));
        let always = instance(PrefixMode::Always, &["a"]);
        assert_eq!(route_by_name(&always, "a__t").unwrap().unwrap().tool, "t");
    }

    #[test]
    fn never_with_many_upstreams_needs_the_index() {
        let c = instance(PrefixMode::Never, &["a", "b"]);
        assert_eq!(route_by_name(&c, "t").unwrap(), None);
        let index = ToolIndex::build(
            false,
            vec![
                ("a".into(), vec![tool("t"), tool("u")]),
                ("b".into(), vec![tool("t"), tool("v")]),
            ],
            vec![],
        );
        assert_eq!(index.route("t").unwrap().upstream, "a");
        assert_eq!(index.route("v").unwrap().upstream, "b");
        assert_eq!(index.tools.len(), 3);
        assert_eq!(index.collisions, vec!["t (from b)".to_string()]);
    }

    #[test]
    fn prefixed_index_renames_tools() {
        let index = ToolIndex::build(true, vec![("a".into(), vec![tool("t")])], vec!["b".into()]);
        assert_eq!(index.tools[0].name, "a__t");
        assert_eq!(index.route("a__t").unwrap().tool, "t");
        assert!(!index.is_complete());
    }

    #[test]
    fn no_upstreams_is_an_error() {
        let c = instance(PrefixMode::Auto, &[]);
        assert!(matches!(
            route_by_name(&c, "x"),
            Err(RouteError::NoUpstreams(_))
        ));
    }
}
