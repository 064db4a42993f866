//! A Prometheus series selector, `name` or `name{label="value",…}`, as `[target.metrics]`
//! names a target's own series: parsed once (scenario validation says what is wrong) and
//! matched against `/metrics` lines by the parser in `observe::metrics`.
//!
//! Pure.

use std::fmt;

/// A metric name and the labels a series must carry (others may be present).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Selector {
    pub name: String,
    pub labels: Vec<(String, String)>,
}

fn is_name(s: &str, colon: bool) -> bool {
    let mut chars = s.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || (colon && c == ':'))
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || (colon && c == ':'))
}

impl Selector {
    /// Parses `name` or `name{label="value",…}`; the error says what is wrong.
    pub fn parse(text: &str) -> Result<Selector, String> {
        let text = text.trim();
        let (name, rest) = match text.split_once('{') {
            Some((n, r)) => (n.trim(), Some(r)),
            None => (text, None),
        };
        if !is_name(name, true) {
            return Err(format!(
                "\"{text}\": expected a metric name such as `mcp_sessions_active`, optionally with labels `name{{label=\"value\"}}`"
            ));
        }
        let mut labels = Vec::new();
        if let Some(rest) = rest {
            let inner = rest
                .strip_suffix('}')
                .ok_or_else(|| format!("\"{text}\": the label set is not closed with `}}`"))?;
            for pair in inner.split(',').map(str::trim).filter(|p| !p.is_empty()) {
                let (k, v) = pair
                    .split_once('=')
                    .ok_or_else(|| format!("\"{text}\": `{pair}` is not label=\"value\""))?;
                let v = v.trim();
                let (k, ok) = (
                    k.trim(),
                    v.len() >= 2 && v.starts_with('"') && v.ends_with('"'),
                );
                if !is_name(k, false) || !ok {
                    return Err(format!("\"{text}\": `{pair}` is not label=\"value\""));
                }
                labels.push((k.to_string(), v[1..v.len() - 1].to_string()));
            }
        }
        Ok(Selector {
            name: name.to_string(),
            labels,
        })
    }

    /// Does the series `name` with the label set `labels` (the text between the braces)
    /// match?
    pub fn matches(&self, name: &str, labels: &str) -> bool {
        name == self.name
            && self.labels.iter().all(|(k, v)| {
                labels.split(',').any(|kv| {
                    kv.split_once('=')
                        .is_some_and(|(lk, lv)| lk.trim() == k && lv.trim().trim_matches('"') == v)
                })
            })
    }
}

impl fmt::Display for Selector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name)?;
        if !self.labels.is_empty() {
            let l: Vec<String> = self
                .labels
                .iter()
                .map(|(k, v)| format!("{k}=\"{v}\""))
                .collect();
            write!(f, "{{{}}}", l.join(","))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_matches_a_name_with_labels() {
        let s = Selector::parse(r#"nodejs_active_handles{type="Socket"}"#).unwrap();
        assert!(s.matches("nodejs_active_handles", r#"type="Socket",x="1""#));
        assert!(!s.matches("nodejs_active_handles", r#"type="Timer""#));
        assert!(!s.matches("other", r#"type="Socket""#));
        assert_eq!(s.to_string(), r#"nodejs_active_handles{type="Socket"}"#);
        assert!(
            Selector::parse("mcp_sessions_active")
                .unwrap()
                .matches("mcp_sessions_active", "")
        );
        for bad in ["", "9x", "a b", "x{y}", r#"x{y="1""#, "x{y=1}"] {
            assert!(Selector::parse(bad).is_err(), "{bad}");
        }
    }
}
