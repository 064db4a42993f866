//! `{{name}}` placeholders of a started target (`target.command` or `target.stdio`, its `env`
//! values, `url`, `ready_url`, `metrics_url` and the `config_template` file): which names a text
//! uses, which names a scenario offers, and the rendering.
//!
//! Invariant: pure (no IO); a name that is not offered is an error naming it, never left in
//! the text or replaced by nothing.

use std::collections::{BTreeMap, BTreeSet};

use super::{MockKind, Scenario};

/// The names a text uses, in order of appearance; an unclosed `{{` is an error.
pub fn names(text: &str) -> Result<Vec<String>, String> {
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(start) = rest.find("{{") {
        let after = &rest[start + 2..];
        let Some(end) = after.find("}}") else {
            return Err(format!(
                "an unclosed `{{{{` in \"{}\"",
                &rest[start..].chars().take(40).collect::<String>()
            ));
        };
        out.push(after[..end].trim().to_string());
        rest = &after[end + 2..];
    }
    Ok(out)
}

/// `text` with every placeholder replaced by its value in `vars`; an unknown name is an error
/// naming it.
pub fn render(text: &str, vars: &BTreeMap<String, String>) -> Result<String, String> {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find("{{") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let end = after
            .find("}}")
            .ok_or_else(|| format!("an unclosed `{{{{` in \"{}\"", &rest[start..]))?;
        let name = after[..end].trim();
        let value = vars
            .get(name)
            .ok_or_else(|| format!("unknown placeholder `{{{{{name}}}}}`"))?;
        out.push_str(value);
        rest = &after[end + 2..];
    }
    out.push_str(rest);
    Ok(out)
}

/// Checks that every placeholder in `text` (found in `what`, e.g. "`target.command`") is
/// one `scenario` offers; the error names the placeholder, where it is and what is offered.
pub fn check(scenario: &Scenario, what: &str, text: &str) -> Result<(), String> {
    let offered = offered(scenario);
    for name in names(text).map_err(|e| format!("{what}: {e}"))? {
        if !offered.contains(&name) {
            let why = why_not(scenario, &name);
            return Err(format!(
                "{what}: unknown placeholder `{{{{{name}}}}}`{why} (offered: {})",
                offered
                    .iter()
                    .map(|n| format!("{{{{{n}}}}}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        }
    }
    Ok(())
}

/// Every name a started target's texts may use in `scenario`.
pub fn offered(scenario: &Scenario) -> BTreeSet<String> {
    let mut names: BTreeSet<String> = ["port", "out_dir"].map(String::from).into();
    if scenario.target.config_template.is_some() {
        names.insert("config".into());
    }
    for u in &scenario.upstreams {
        match u.mock {
            MockKind::Serve => {
                names.insert(format!("upstream.{}.url", u.name));
            }
            MockKind::Stdio => {
                for part in ["command", "args", "args_line"] {
                    names.insert(format!("upstream.{}.{part}", u.name));
                }
            }
        }
    }
    names
}

/// A hint for a near miss: `config` without a template, an upstream of the other kind.
fn why_not(scenario: &Scenario, name: &str) -> String {
    if name == "config" {
        return " (it needs `target.config_template`)".into();
    }
    let Some((upstream, part)) = name
        .strip_prefix("upstream.")
        .and_then(|r| r.rsplit_once('.'))
    else {
        return String::new();
    };
    match scenario.upstreams.iter().find(|u| u.name == upstream) {
        None => format!(" (no `[[upstream]]` is named \"{upstream}\")"),
        Some(u) if u.mock == MockKind::Serve && part != "url" => {
            format!(" (upstream \"{upstream}\" is an HTTP mock: it offers `url`)")
        }
        Some(u) if u.mock == MockKind::Stdio && part == "url" => format!(
            " (upstream \"{upstream}\" is a stdio mock: it offers `command`, `args`, `args_line`)"
        ),
        Some(_) => String::new(),
    }
}

/// One argument shell-quoted (single quotes unless it is plainly safe).
pub fn shell_quote(arg: &str) -> String {
    let safe = !arg.is_empty()
        && arg
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_./=:@%+,".contains(&b));
    if safe {
        arg.to_string()
    } else {
        format!("'{}'", arg.replace('\'', r"'\''"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_render_replace_every_placeholder() {
        let text = "--port {{port}} --seed {{ config }}";
        assert_eq!(names(text).unwrap(), vec!["port", "config"]);
        let vars = BTreeMap::from([
            ("port".to_string(), "8080".to_string()),
            ("config".to_string(), "/tmp/c.toml".to_string()),
        ]);
        assert_eq!(
            render(text, &vars).unwrap(),
            "--port 8080 --seed /tmp/c.toml"
        );
        assert_eq!(render("no placeholder", &vars).unwrap(), "no placeholder");
    }

    #[test]
    fn an_unknown_or_unclosed_placeholder_is_an_error_naming_it() {
        let vars = BTreeMap::new();
        let e = render("x {{nope}} y", &vars).unwrap_err();
        assert!(e.contains("`{{nope}}`"), "{e}");
        assert!(names("a {{port").unwrap_err().contains("unclosed"));
    }

    #[test]
    fn shell_quote_quotes_only_what_needs_it() {
        assert_eq!(shell_quote("hang-call@0.2"), "hang-call@0.2");
        assert_eq!(shell_quote("a b"), "'a b'");
        assert_eq!(shell_quote("it's"), r"'it'\''s'");
        assert_eq!(shell_quote(""), "''");
    }
}
