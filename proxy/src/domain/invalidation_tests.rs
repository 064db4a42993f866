use super::*;

#[test]
fn payloads_round_trip() {
    let hash = crate::domain::keys::hash_key("demo-key-0001");
    for invalidation in [
        Invalidation::Key(hash),
        Invalidation::Instance("demo".to_string()),
        Invalidation::Instance("a:b:c".to_string()),
        Invalidation::All,
    ] {
        let payload = invalidation.encode();
        assert_eq!(payload.parse::<Invalidation>(), Ok(invalidation.clone()));
    }
    assert_eq!(
        Invalidation::Key(hash).encode(),
        format!("key:{}", hex::encode(hash))
    );
    assert_eq!(Invalidation::All.encode(), "all");
}

#[test]
fn garbage_is_an_error_not_a_panic() {
    let long_hex = "ab".repeat(33);
    for (payload, error) in [
        ("", ParseError::Unknown),
        ("ALL", ParseError::Unknown),
        ("all ", ParseError::Unknown),
        ("flush", ParseError::Unknown),
        ("key:", ParseError::BadKey),
        ("key:abc", ParseError::BadKey),
        ("key:zz", ParseError::BadKey),
        (&long_hex, ParseError::Unknown),
        ("instance:", ParseError::EmptyInstance),
    ] {
        assert_eq!(payload.parse::<Invalidation>(), Err(error), "{payload:?}");
    }
    let odd = format!("key:{}", "é".repeat(32));
    assert_eq!(odd.parse::<Invalidation>(), Err(ParseError::BadKey));
    let too_long = format!("key:{}", "ab".repeat(33));
    assert_eq!(too_long.parse::<Invalidation>(), Err(ParseError::BadKey));
    let too_short = format!("key:{}", "ab".repeat(31));
    assert_eq!(too_short.parse::<Invalidation>(), Err(ParseError::BadKey));
}

#[test]
fn kinds_label_the_metric() {
    assert_eq!(Invalidation::Key([0; 32]).kind(), "key");
    assert_eq!(Invalidation::Instance("x".into()).kind(), "instance");
    assert_eq!(Invalidation::All.kind(), "all");
}

#[test]
fn channel_names_are_plain_identifiers() {
    for ok in [
        "mcp_proxy_invalidate",
        "_x",
        "a",
        "t_0123abcd",
        &"a".repeat(63),
    ] {
        assert_eq!(check_channel(ok), Ok(()), "{ok:?}");
        assert_eq!(parse_channel(ok).as_deref(), Ok(ok));
    }
    for bad in [
        "",
        "0abc",
        "Upper",
        "with-dash",
        "with space",
        "quote\"",
        "semi;colon",
        "ünï",
        &"a".repeat(64),
    ] {
        let e = check_channel(bad).unwrap_err();
        assert!(e.contains("notify channel"), "{bad:?}: {e}");
    }
}

#[test]
fn only_postgres_urls_have_a_listener() {
    assert!(is_postgres_url("postgres://u:p@h/db"));
    assert!(is_postgres_url("postgresql://h/db"));
    assert!(!is_postgres_url("sqlite://mcp-proxy.db"));
    assert!(!is_postgres_url("mysql://h/db"));
    assert!(parse_notify_url("sqlite://x.db").is_err());
    assert!(parse_notify_url("postgres://h/db").is_ok());
}
