use super::*;

#[test]
fn a_json_result_with_our_id_is_an_answer() {
    let a = parse_answer(
        "application/json",
        r#"{"jsonrpc":"2.0","id":3,"result":{"tools":[]}}"#,
        3,
    );
    assert_eq!(a, Ok(Answer::Result(json!({ "tools": [] }))));
}

#[test]
fn sse_skips_priming_notifications_and_server_requests() {
    let body = "id: 0\nretry: 3000\ndata: \n\n\
        data: {\"jsonrpc\":\"2.0\",\"method\":\"notifications/progress\",\"params\":{}}\n\n\
        data: {\"jsonrpc\":\"2.0\",\"id\":99,\"method\":\"roots/list\"}\n\n\
        id: 1\r\ndata: {\"jsonrpc\":\"2.0\",\"id\":7,\"result\":{\"content\":[]}}\r\n\r\n";
    let a = parse_answer("text/event-stream", body, 7);
    assert_eq!(a, Ok(Answer::Result(json!({ "content": [] }))));
}

#[test]
fn errors_wrong_ids_and_non_json_rpc_are_told_apart() {
    let e = parse_answer(
        "application/json",
        r#"{"jsonrpc":"2.0","id":1,"error":{"code":-32603,"message":"upstream \"x\" down"}}"#,
        1,
    );
    assert_eq!(e, Ok(Answer::Error(-32603, "upstream \"x\" down".into())));
    let w = parse_answer(
        "application/json",
        r#"{"jsonrpc":"2.0","id":2,"result":{}}"#,
        1,
    );
    assert!(matches!(w, Err(Invalid::WrongId(_))), "{w:?}");
    let n = parse_answer("application/json", r#"{"jsonrpc":"2.0","id":1}"#, 1);
    assert!(matches!(n, Err(Invalid::NotJsonRpc(_))), "{n:?}");
    let v = parse_answer(
        "application/json",
        r#"{"jsonrpc":"1.0","id":1,"result":{}}"#,
        1,
    );
    assert!(matches!(v, Err(Invalid::NotJsonRpc(_))), "{v:?}");
    let b = parse_answer(
        "application/json",
        r#"{"jsonrpc":"2.0","id":1,"result":{},"error":{}}"#,
        1,
    );
    assert!(matches!(b, Err(Invalid::NotJsonRpc(_))), "{b:?}");
    let g = parse_answer("application/json", "<html>oops</html>", 1);
    assert!(matches!(g, Err(Invalid::Unparsable(_))), "{g:?}");
    let empty = parse_answer("text/event-stream", "data: \n\n", 1);
    assert!(matches!(empty, Err(Invalid::Unparsable(_))), "{empty:?}");
}

#[test]
fn tool_errors_are_recognised() {
    assert!(Answer::Result(json!({ "isError": true, "content": [] })).is_tool_error());
    assert!(!Answer::Result(json!({ "content": [] })).is_tool_error());
}

#[test]
fn requests_carry_the_era() {
    let r = request(Protocol::V2026_07_28, 5, "tools/list", None);
    assert_eq!(
        r["params"]["_meta"]["io.modelcontextprotocol/protocolVersion"],
        "2026-07-28"
    );
    assert_eq!(r["id"], 5);
    let r = request(
        Protocol::V2025_11_25,
        6,
        "tools/call",
        Some(json!({ "name": "echo" })),
    );
    assert!(r["params"].get("_meta").is_none());
    assert_eq!(r["params"]["name"], "echo");
    assert_eq!(initialize(1)["params"]["protocolVersion"], "2025-11-25");
}

#[test]
fn cancellations_name_the_request_and_the_reason_in_both_eras() {
    let c = cancelled(Protocol::V2025_11_25, 9, "timeout");
    assert_eq!(
        c,
        json!({ "jsonrpc": "2.0", "method": "notifications/cancelled",
                "params": { "requestId": 9, "reason": "timeout" } })
    );
    let c = cancelled(Protocol::V2026_07_28, 4, "the load stopped");
    assert!(c.get("id").is_none());
    assert_eq!(c["params"]["requestId"], 4);
    assert_eq!(
        c["params"]["_meta"]["io.modelcontextprotocol/protocolVersion"],
        "2026-07-28"
    );
}
