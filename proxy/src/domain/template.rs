//! `${NAME}` templates in an upstream's `headers` and `env` values: the names a template needs
//! (checked at seed time) and the rendering with an instance's secrets (at connect). `$$` is a
//! literal `$`; any other `$` is itself. Pure.

use std::collections::BTreeMap;

use crate::domain::secrets::Secret;

/// One piece of a template.
enum Part<'t> {
    Text(&'t str),
    Name(&'t str),
}

/// Whether `name` may be a secret's name: `[A-Za-z_][A-Za-z0-9_]*`, at most 128 bytes.
pub fn is_valid_name(name: &str) -> bool {
    let mut bytes = name.bytes();
    matches!(bytes.next(), Some(b) if b.is_ascii_alphabetic() || b == b'_')
        && bytes.all(|b| b.is_ascii_alphanumeric() || b == b'_')
        && name.len() <= 128
}

fn parts(template: &str) -> Result<Vec<Part<'_>>, String> {
    let mut parts = Vec::new();
    let mut rest = template;
    while let Some(at) = rest.find('$') {
        parts.push(Part::Text(&rest[..at]));
        let after = &rest[at + 1..];
        if let Some(after) = after.strip_prefix('$') {
            parts.push(Part::Text("$"));
            rest = after;
        } else if let Some(inner) = after.strip_prefix('{') {
            let Some(end) = inner.find('}') else {
                return Err(format!("unclosed `${{` in {template:?}"));
            };
            let name = &inner[..end];
            if !is_valid_name(name) {
                return Err(format!(
                    "`${{{name}}}` in {template:?}: a name is [A-Za-z_][A-Za-z0-9_]*"
                ));
            }
            parts.push(Part::Name(name));
            rest = &inner[end + 1..];
        } else {
            parts.push(Part::Text("$"));
            rest = after;
        }
    }
    parts.push(Part::Text(rest));
    Ok(parts)
}

/// The `${NAME}`s `template` uses, in order (a name may repeat); an error says what is wrong.
pub fn names(template: &str) -> Result<Vec<&str>, String> {
    Ok(parts(template)?
        .into_iter()
        .filter_map(|p| match p {
            Part::Name(n) => Some(n),
            Part::Text(_) => None,
        })
        .collect())
}

/// `template` with every `${NAME}` replaced by its secret; `Err(name)` names the first one
/// `secrets` lacks (a template was checked when it was seeded, so a syntax error is one too).
pub fn render(template: &str, secrets: &BTreeMap<String, Secret>) -> Result<Secret, String> {
    let parts = parts(template).map_err(|_| template.to_string())?;
    let mut out = String::with_capacity(template.len());
    for part in parts {
        match part {
            Part::Text(t) => out.push_str(t),
            Part::Name(n) => out.push_str(secrets.get(n).ok_or_else(|| n.to_string())?.expose()),
        }
    }
    Ok(Secret::new(out))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_rendering() {
        assert_eq!(names("Bearer ${TOKEN}").unwrap(), ["TOKEN"]);
        assert_eq!(names("${A}:${_b1}:${A}").unwrap(), ["A", "_b1", "A"]);
        assert!(names("plain $5 and $$").unwrap().is_empty());
        let secrets = BTreeMap::from([("TOKEN".to_string(), Secret::new("t0k"))]);
        assert_eq!(
            render("Bearer ${TOKEN} $$x $y", &secrets).unwrap().expose(),
            "Bearer t0k $x $y"
        );
        assert_eq!(render("${NOPE}", &secrets).unwrap_err(), "NOPE");
    }

    #[test]
    fn bad_templates_say_what_is_wrong() {
        assert!(names("Bearer ${TOKEN").unwrap_err().contains("unclosed"));
        assert!(names("${1X}").unwrap_err().contains("[A-Za-z_]"));
        assert!(names("${}").unwrap_err().contains("[A-Za-z_]"));
        assert!(names("${A-B}").unwrap_err().contains("${A-B}"));
    }
}
