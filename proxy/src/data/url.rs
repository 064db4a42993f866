//! Database URLs as a person gives them: which forms the store accepts ([`check`]), and the
//! form an error or a log may show ([`redact`]: never a password).

/// The forms the store accepts, as an error message lists them.
pub const ACCEPTED: &str = "sqlite://PATH, sqlite::memory: or postgres://USER:PASSWORD@HOST/DB";

/// Refuses a value that is not a URL of a database the store speaks, saying which forms are
/// accepted (and, for what looks like a file path, the URL it probably meant).
pub fn check(url: &str) -> Result<(), String> {
    if url.starts_with("sqlite:")
        || url.starts_with("postgres://")
        || url.starts_with("postgresql://")
    {
        return Ok(());
    }
    let hint = if url.contains("://") || url.is_empty() {
        String::new()
    } else {
        format!(" (a SQLite file is written sqlite://{url})")
    };
    Err(format!("not a database URL: expected {ACCEPTED}{hint}"))
}

/// `url` with the password of its user info and any `password=` query value replaced by `***`.
pub fn redact(url: &str) -> String {
    let mut out = url.to_string();
    if let Some(scheme) = out.find("://") {
        let start = scheme + 3;
        let end = out[start..]
            .find(['/', '?', '#'])
            .map_or(out.len(), |i| start + i);
        if let Some(at) = out[start..end].rfind('@')
            && let Some(colon) = out[start..start + at].find(':')
        {
            out.replace_range(start + colon + 1..start + at, "***");
        }
    }
    if let Some(query) = out.find('?') {
        let (head, tail) = out.split_at(query + 1);
        let pairs: Vec<String> = tail
            .split('&')
            .map(|pair| match pair.split_once('=') {
                Some((k, _)) if k.eq_ignore_ascii_case("password") => format!("{k}=***"),
                _ => pair.to_string(),
            })
            .collect();
        out = format!("{head}{}", pairs.join("&"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redacts_passwords_only() {
        assert_eq!(
            redact("postgres://u:secretpw@127.0.0.1:1/db"),
            "postgres://u:***@127.0.0.1:1/db"
        );
        assert_eq!(
            redact("postgres://u:p@ss:w@h/db?sslmode=disable&password=x"),
            "postgres://u:***@h/db?sslmode=disable&password=***"
        );
        assert_eq!(redact("postgres://u@h/db"), "postgres://u@h/db");
        assert_eq!(redact("postgres://h/db?a=b@c:d"), "postgres://h/db?a=b@c:d");
        assert_eq!(redact("sqlite://x.db"), "sqlite://x.db");
        assert_eq!(redact("not a url"), "not a url");
    }

    #[test]
    fn names_the_accepted_forms() {
        for good in [
            "sqlite://a.db",
            "sqlite::memory:",
            "postgres://h/d",
            "postgresql://h/d",
        ] {
            assert_eq!(check(good), Ok(()), "{good}");
        }
        let bare = check("/tmp/x.db").unwrap_err();
        assert!(
            bare.contains(ACCEPTED) && bare.contains("sqlite:///tmp/x.db"),
            "{bare}"
        );
        let other = check("mysql://h/d").unwrap_err();
        assert!(
            other.contains(ACCEPTED) && !other.contains("sqlite://mysql"),
            "{other}"
        );
    }
}
