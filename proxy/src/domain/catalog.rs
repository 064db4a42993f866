//! The merged resources, resource templates and prompts of an instance, and where each
//! belongs (SPEC: prompt names follow the tool prefix rule; URIs pass unchanged and are routed
//! by an index of which upstream listed them). Also the proxy's own pagination of merged
//! lists. Pure: no IO, no async.

use std::collections::HashMap;
use std::sync::Arc;

use rmcp::model::{Prompt, Resource, ResourceTemplate};

use crate::domain::router::{Route, expose};

/// What one upstream listed.
#[derive(Debug, Default, Clone)]
pub struct UpstreamLists {
    pub resources: Vec<Resource>,
    pub templates: Vec<ResourceTemplate>,
    pub prompts: Vec<Prompt>,
}

/// The merged lists and their routes.
#[derive(Debug, Default)]
pub struct Catalog {
    pub resources: Arc<Vec<Resource>>,
    pub templates: Arc<Vec<ResourceTemplate>>,
    pub prompts: Arc<Vec<Prompt>>,
    uris: HashMap<String, String>,
    template_routes: Vec<(UriTemplate, String)>,
    prompt_routes: HashMap<String, Route>,
    /// Upstreams whose lists failed (the catalog is partial; it is not cached).
    pub failed: Vec<String>,
    /// Entries dropped because an earlier upstream already had the name or URI.
    pub collisions: Vec<String>,
}

impl Catalog {
    /// Merges per-upstream lists in instance order; the first upstream to list a URI, a
    /// template or (after the prefix rule) a prompt name owns it.
    pub fn build(
        prefixed: bool,
        lists: Vec<(String, UpstreamLists)>,
        failed: Vec<String>,
    ) -> Catalog {
        let mut c = Catalog {
            failed,
            ..Catalog::default()
        };
        let (mut resources, mut templates, mut prompts) = (Vec::new(), Vec::new(), Vec::new());
        for (upstream, list) in lists {
            for resource in list.resources {
                if c.uris.contains_key(&resource.uri) {
                    c.collisions
                        .push(format!("{} (from {upstream})", resource.uri));
                    continue;
                }
                c.uris.insert(resource.uri.clone(), upstream.clone());
                resources.push(resource);
            }
            for template in list.templates {
                if c.template_routes
                    .iter()
                    .any(|(t, _)| t.source == template.uri_template)
                {
                    c.collisions
                        .push(format!("{} (from {upstream})", template.uri_template));
                    continue;
                }
                c.template_routes
                    .push((UriTemplate::parse(&template.uri_template), upstream.clone()));
                templates.push(template);
            }
            for mut prompt in list.prompts {
                let exposed = expose(&upstream, &prompt.name, prefixed);
                if c.prompt_routes.contains_key(&exposed) {
                    c.collisions.push(format!("{exposed} (from {upstream})"));
                    continue;
                }
                c.prompt_routes.insert(
                    exposed.clone(),
                    Route {
                        upstream: upstream.clone(),
                        tool: prompt.name.to_string(),
                    },
                );
                prompt.name = exposed;
                prompts.push(prompt);
            }
        }
        c.resources = Arc::new(resources);
        c.templates = Arc::new(templates);
        c.prompts = Arc::new(prompts);
        c
    }

    /// The upstream that serves `uri`: the one that listed it, else the first whose template
    /// matches it.
    pub fn resource_owner(&self, uri: &str) -> Option<&str> {
        if let Some(upstream) = self.uris.get(uri) {
            return Some(upstream);
        }
        self.template_routes
            .iter()
            .find(|(t, _)| t.matches(uri))
            .map(|(_, u)| u.as_str())
    }

    /// The upstream that listed the template `uri_template` (completion references).
    pub fn template_owner(&self, uri_template: &str) -> Option<&str> {
        self.template_routes
            .iter()
            .find(|(t, _)| t.source == uri_template)
            .map(|(_, u)| u.as_str())
    }

    /// Where an exposed prompt name goes (`Route::tool` is the upstream's prompt name).
    pub fn prompt_route(&self, name: &str) -> Option<&Route> {
        self.prompt_routes.get(name)
    }

    pub fn is_complete(&self) -> bool {
        self.failed.is_empty()
    }
}

/// An RFC 6570 URI template reduced to what matching needs: literal text and expressions.
/// A simple `{var}` matches one or more characters up to the next `/`, `?` or `#`; a reserved
/// or fragment expansion (`{+var}`, `{#var}`) matches anything; form-style query and other
/// operators (`{?q}`, `{&q}`, `{/p}`, `{.e}`, `{;m}`) match their optional tail.
#[derive(Debug, Clone)]
struct UriTemplate {
    source: String,
    parts: Vec<Part>,
}

#[derive(Debug, Clone, PartialEq)]
enum Part {
    Literal(String),
    /// Matches `[^/?#]+`.
    Segment,
    /// Matches anything, possibly empty.
    Any,
}

impl UriTemplate {
    fn parse(source: &str) -> Self {
        let mut parts = Vec::new();
        let mut rest = source;
        while let Some(open) = rest.find('{') {
            let Some(close) = rest[open..].find('}').map(|c| open + c) else {
                break;
            };
            if open > 0 {
                parts.push(Part::Literal(rest[..open].to_string()));
            }
            let expr = &rest[open + 1..close];
            parts.push(match expr.chars().next() {
                Some('+' | '#' | '?' | '&' | '/' | '.' | ';') => Part::Any,
                _ => Part::Segment,
            });
            rest = &rest[close + 1..];
        }
        if !rest.is_empty() {
            parts.push(Part::Literal(rest.to_string()));
        }
        Self {
            source: source.to_string(),
            parts,
        }
    }

    fn matches(&self, uri: &str) -> bool {
        fn go(parts: &[Part], s: &str) -> bool {
            match parts.split_first() {
                None => s.is_empty(),
                Some((Part::Literal(l), rest)) => {
                    s.strip_prefix(l.as_str()).is_some_and(|t| go(rest, t))
                }
                Some((Part::Any, rest)) => (0..=s.len())
                    .filter(|&i| s.is_char_boundary(i))
                    .any(|i| go(rest, &s[i..])),
                Some((Part::Segment, rest)) => {
                    let end = s.find(['/', '?', '#']).unwrap_or(s.len());
                    (1..=end)
                        .filter(|&i| s.is_char_boundary(i))
                        .any(|i| go(rest, &s[i..]))
                }
            }
        }
        go(&self.parts, uri)
    }
}

/// A cursor this proxy did not hand out (or one for a list that has since changed).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid cursor {0:?}: not one this proxy handed out (or the list changed)")]
pub struct BadCursor(pub String);

/// One page of a merged list: `cursor` is the proxy's own (an offset it handed out), `size`
/// the page size (0: everything at once). An unknown cursor is invalid params, naming it.
pub fn page<T: Clone>(
    items: &[T],
    cursor: Option<&str>,
    size: usize,
) -> Result<(Vec<T>, Option<String>), BadCursor> {
    let start = match cursor {
        None => 0,
        Some(c) => c
            .strip_prefix("o:")
            .and_then(|n| n.parse::<usize>().ok())
            .filter(|&n| n <= items.len())
            .ok_or_else(|| BadCursor(c.to_string()))?,
    };
    if size == 0 {
        return Ok((items[start..].to_vec(), None));
    }
    let end = start.saturating_add(size).min(items.len());
    let next = (end < items.len()).then(|| format!("o:{end}"));
    Ok((items[start..end].to_vec(), next))
}

#[cfg(test)]
mod tests {
    use super::*;
    fn resource(uri: &str) -> Resource {
        serde_json::from_value(serde_json::json!({"uri": uri, "name": uri})).unwrap()
    }

    fn template(t: &str) -> ResourceTemplate {
        serde_json::from_value(serde_json::json!({"uriTemplate": t, "name": t})).unwrap()
    }

    fn prompt(name: &str) -> Prompt {
        Prompt::new(name, None::<String>, None)
    }

    #[test]
    fn uri_templates_match_like_rfc6570() {
        let t = UriTemplate::parse("mock://items/{id}");
        assert!(t.matches("mock://items/abc"));
        assert!(!t.matches("mock://items/"));
        assert!(!t.matches("mock://items/a/b"));
        assert!(!t.matches("mock://other/abc"));
        let t = UriTemplate::parse("file:///{+path}");
        assert!(t.matches("file:///a/b/c.txt"));
        let t = UriTemplate::parse("db://{table}/rows{?limit,offset}");
        assert!(t.matches("db://users/rows"));
        assert!(t.matches("db://users/rows?limit=3"));
        assert!(!t.matches("db://users/cols"));
        let t = UriTemplate::parse("x://{a}-{b}");
        assert!(t.matches("x://one-two"));
    }

    #[test]
    fn catalog_routes_uris_templates_and_prompts() {
        let a = UpstreamLists {
            resources: vec![resource("mock://a"), resource("mock://shared")],
            templates: vec![template("mock://items/{id}")],
            prompts: vec![prompt("greet")],
        };
        let b = UpstreamLists {
            resources: vec![resource("mock://shared"), resource("mock://b")],
            templates: vec![template("mock://items/{id}"), template("b://{x}")],
            prompts: vec![prompt("greet")],
        };
        let c = Catalog::build(
            true,
            vec![("a".into(), a.clone()), ("b".into(), b.clone())],
            vec![],
        );
        assert_eq!(c.resources.len(), 3);
        assert_eq!(c.resource_owner("mock://shared"), Some("a"));
        assert_eq!(c.resource_owner("mock://b"), Some("b"));
        assert_eq!(c.resource_owner("mock://items/9"), Some("a"));
        assert_eq!(c.resource_owner("b://y"), Some("b"));
        assert_eq!(c.resource_owner("nobody://listed"), None);
        assert_eq!(c.template_owner("b://{x}"), Some("b"));
        assert_eq!(
            c.prompts
                .iter()
                .map(|p| p.name.as_str())
                .collect::<Vec<_>>(),
            ["a__greet", "b__greet"]
        );
        let r = c.prompt_route("b__greet").unwrap();
        assert_eq!((r.upstream.as_str(), r.tool.as_str()), ("b", "greet"));
        assert_eq!(c.collisions.len(), 2);

        let never = Catalog::build(
            false,
            vec![("a".into(), a), ("b".into(), b)],
            vec!["c".into()],
        );
        assert_eq!(never.prompts.len(), 1);
        assert_eq!(never.prompt_route("greet").unwrap().upstream, "a");
        assert!(!never.is_complete());
    }

    #[test]
    fn pages_and_cursors() {
        let items: Vec<u32> = (0..5).collect();
        let (p1, c1) = page(&items, None, 2).unwrap();
        assert_eq!((p1, c1.as_deref()), (vec![0, 1], Some("o:2")));
        let (p2, c2) = page(&items, c1.as_deref(), 2).unwrap();
        assert_eq!((p2, c2.as_deref()), (vec![2, 3], Some("o:4")));
        let (p3, c3) = page(&items, c2.as_deref(), 2).unwrap();
        assert_eq!((p3, c3), (vec![4], None));
        let (all, none) = page(&items, None, 0).unwrap();
        assert_eq!((all.len(), none), (5, None));
        for bad in ["", "7", "o:x", "o:6"] {
            let e = page(&items, Some(bad), 2).unwrap_err();
            assert!(e.to_string().contains("invalid cursor"), "{e}");
        }
    }
}
