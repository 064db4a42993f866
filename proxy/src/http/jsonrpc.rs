//! The JSON-RPC 2.0 envelope of a POSTed MCP message, checked before rmcp reads it: rmcp
//! answers a body it cannot read with 415 and a text body, and a known method whose params do
//! not fit with -32601 (the params make its untagged `ClientRequest` fall through to a custom
//! request). Pure: bytes in, a [`Message`] or a [`Rejected`] out; the answer's HTTP status is
//! `refusal`'s and its JSON-RPC code `crate::mcp::error`'s.

// Logging is deprecated by SEP-2577 but is part of 2025-11-25, which this proxy carries.
#![allow(deprecated)]

use rmcp::model::{
    CallToolRequestMethod, CallToolRequestParams, ClientJsonRpcMessage, ClientRequest,
    CompleteRequestMethod, CompleteRequestParams, ConstString, DiscoverRequestMethod,
    DiscoverRequestParams, GetPromptRequestMethod, GetPromptRequestParams, InitializeRequestParams,
    InitializeResultMethod, JsonRpcMessage, ListPromptsRequestMethod,
    ListResourceTemplatesRequestMethod, ListResourcesRequestMethod, ListToolsRequestMethod,
    PaginatedRequestParams, ReadResourceRequestMethod, ReadResourceRequestParams, RequestId,
    SetLevelRequestMethod, SetLevelRequestParams, SubscribeRequestMethod, SubscribeRequestParams,
    SubscriptionsListenRequestMethod, SubscriptionsListenRequestParams, UnsubscribeRequestMethod,
    UnsubscribeRequestParams,
};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

use crate::mcp::error::Refusal;

/// What the entry needs of a message that passed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    /// A request's id (`None` for a notification or a response).
    pub request_id: Option<RequestId>,
    /// A request's or notification's method.
    pub method: Option<String>,
}

impl Message {
    /// Whether this is the `initialize` request (the one that opens a session).
    pub fn is_initialize(&self) -> bool {
        self.request_id.is_some() && self.method.as_deref() == Some(InitializeResultMethod::VALUE)
    }
}

/// A message refused: the id to answer with (`None`, sent as `null`, when no valid id could
/// be read) and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejected {
    pub id: Option<RequestId>,
    pub why: Refusal,
}

/// Checks one POSTed body: JSON (else -32700), one JSON-RPC 2.0 message that rmcp reads
/// (else -32600 naming the rule), and for a known method, params that fit it (else -32602
/// naming the field). An unknown method passes (rmcp answers -32601).
pub fn check(body: &[u8]) -> Result<Message, Rejected> {
    let value: Value = serde_json::from_slice(body).map_err(|e| Rejected {
        id: None,
        why: Refusal::NotJson(e.to_string()),
    })?;
    let id = envelope(&value)?;
    let refuse = |why| Rejected {
        id: id.clone(),
        why,
    };
    let message = ClientJsonRpcMessage::deserialize(&value)
        .map_err(|e| refuse(Refusal::NotJsonRpc(e.to_string())))?;
    let method = value
        .get("method")
        .and_then(Value::as_str)
        .map(String::from);
    let JsonRpcMessage::Request(request) = message else {
        return Ok(Message {
            request_id: None,
            method,
        });
    };
    if let ClientRequest::CustomRequest(custom) = &request.request
        && let Some(message) = params_error(&custom.method, custom.params.as_ref())
    {
        return Err(refuse(Refusal::InvalidParams {
            method: custom.method.clone(),
            message,
        }));
    }
    Ok(Message {
        request_id: Some(request.id),
        method,
    })
}

/// The envelope's rules, each refusal naming the one broken; the message's id if it has one.
fn envelope(value: &Value) -> Result<Option<RequestId>, Rejected> {
    let invalid = |id: &Option<RequestId>, what: String| Rejected {
        id: id.clone(),
        why: Refusal::NotJsonRpc(what),
    };
    let object = match value {
        Value::Array(_) => {
            return Err(Rejected {
                id: None,
                why: Refusal::Batch,
            });
        }
        Value::Object(object) => object,
        other => {
            let what = format!("a message is a JSON object, not {}", describe(other));
            return Err(invalid(&None, what));
        }
    };
    let id = match object.get("id") {
        None => None,
        Some(raw) => Some(RequestId::deserialize(raw).map_err(|_| {
            let what = format!(
                "`id` must be a string or an integer (64-bit), not {}",
                describe(raw)
            );
            invalid(&None, what)
        })?),
    };
    if object.get("jsonrpc").and_then(Value::as_str) != Some("2.0") {
        return Err(invalid(&id, "`jsonrpc` must be \"2.0\"".into()));
    }
    if let Some(what) = shape_error(object, id.is_some()) {
        return Err(invalid(&id, what));
    }
    Ok(id)
}

/// A request or notification has a string `method`; a response has an id and exactly one of
/// `result` and `error`.
fn shape_error(object: &Map<String, Value>, has_id: bool) -> Option<String> {
    let result = object.contains_key("result");
    let error = object.contains_key("error");
    match object.get("method") {
        Some(Value::String(_)) if result || error => {
            Some("a message has `method` or `result`/`error`, not both".into())
        }
        Some(Value::String(_)) => None,
        Some(other) => Some(format!(
            "`method` must be a string, not {}",
            describe(other)
        )),
        None if result && error => Some("a response has `result` or `error`, not both".into()),
        None if (result || error) && !has_id => Some("a response needs an `id`".into()),
        None if result || error => None,
        None => Some(
            "a message needs `method` (a request or notification) or `result`/`error` \
             (a response)"
                .into(),
        ),
    }
}

/// A JSON value's kind, for a message that names it (a number as written).
fn describe(value: &Value) -> String {
    match value {
        Value::Null => "null".into(),
        Value::Bool(_) => "a boolean".into(),
        Value::Number(n) => n.to_string(),
        Value::String(_) => "a string".into(),
        Value::Array(_) => "an array".into(),
        Value::Object(_) => "an object".into(),
    }
}

/// Names what is wrong, if any.
type Fit = fn(&Value) -> Option<String>;

/// The methods the proxy answers whose params rmcp types. A request of one of these that rmcp
/// read as a custom request has params that do not fit.
const TYPED: &[(&str, Fit)] = &[
    (
        InitializeResultMethod::VALUE,
        misfit::<InitializeRequestParams>,
    ),
    (
        DiscoverRequestMethod::VALUE,
        misfit::<DiscoverRequestParams>,
    ),
    (
        CallToolRequestMethod::VALUE,
        misfit::<CallToolRequestParams>,
    ),
    (
        ListToolsRequestMethod::VALUE,
        misfit::<PaginatedRequestParams>,
    ),
    (
        ListResourcesRequestMethod::VALUE,
        misfit::<PaginatedRequestParams>,
    ),
    (
        ListResourceTemplatesRequestMethod::VALUE,
        misfit::<PaginatedRequestParams>,
    ),
    (
        ReadResourceRequestMethod::VALUE,
        misfit::<ReadResourceRequestParams>,
    ),
    (
        SubscribeRequestMethod::VALUE,
        misfit::<SubscribeRequestParams>,
    ),
    (
        UnsubscribeRequestMethod::VALUE,
        misfit::<UnsubscribeRequestParams>,
    ),
    (
        ListPromptsRequestMethod::VALUE,
        misfit::<PaginatedRequestParams>,
    ),
    (
        GetPromptRequestMethod::VALUE,
        misfit::<GetPromptRequestParams>,
    ),
    (
        CompleteRequestMethod::VALUE,
        misfit::<CompleteRequestParams>,
    ),
    (
        SetLevelRequestMethod::VALUE,
        misfit::<SetLevelRequestParams>,
    ),
    (
        SubscriptionsListenRequestMethod::VALUE,
        misfit::<SubscriptionsListenRequestParams>,
    ),
];

/// For a known method rmcp could not type: what is wrong with its params, in serde's words with
/// the field's path (`arguments: invalid type: string "x", expected a map`). `None` for a
/// method not in [`TYPED`] (rmcp's -32601 stands).
fn params_error(method: &str, params: Option<&Value>) -> Option<String> {
    let (_, fit) = TYPED.iter().find(|(known, _)| *known == method)?;
    let Some(params) = params else {
        return Some(format!("{method} needs `params`"));
    };
    Some(fit(params).unwrap_or_else(|| format!("the params do not fit {method}")))
}

fn misfit<P: DeserializeOwned>(params: &Value) -> Option<String> {
    serde_path_to_error::deserialize::<_, P>(params)
        .err()
        .map(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn rejected(body: &str) -> Rejected {
        check(body.as_bytes()).expect_err(body)
    }

    /// The JSON-RPC code and message a refusal becomes.
    fn words(r: &Rejected) -> (i32, String) {
        let e = rmcp::model::ErrorData::from(r.why.clone());
        (e.code.0, e.message.into_owned())
    }

    #[test]
    fn not_json_is_a_parse_error_with_a_null_id() {
        for body in ["{not json", "", "{\"id\": 1,"] {
            let r = rejected(body);
            assert_eq!(r.id, None, "{body}");
            assert_eq!(words(&r).0, -32700, "{body}");
            assert!(words(&r).1.starts_with("parse error: "), "{r:?}");
        }
    }

    #[test]
    fn a_batch_is_refused_as_not_supported() {
        let r = rejected(r#"[{"jsonrpc":"2.0","id":1,"method":"ping"}]"#);
        assert_eq!(
            r,
            Rejected {
                id: None,
                why: Refusal::Batch
            }
        );
        assert!(words(&r).1.contains("batches are not supported"));
    }

    #[test]
    fn each_broken_envelope_rule_is_named() {
        let cases = [
            ("3", None, "a JSON object, not 3"),
            (r#""x""#, None, "not a string"),
            (
                r#"{"jsonrpc":"2.0","id":null,"method":"ping"}"#,
                None,
                "`id` must be a string or an integer (64-bit), not null",
            ),
            (
                r#"{"jsonrpc":"2.0","id":{"a":1},"method":"ping"}"#,
                None,
                "not an object",
            ),
            (
                r#"{"jsonrpc":"2.0","id":[1],"method":"ping"}"#,
                None,
                "not an array",
            ),
            (
                r#"{"jsonrpc":"2.0","id":1.5,"method":"ping"}"#,
                None,
                "not 1.5",
            ),
            (
                r#"{"jsonrpc":"2.0","id":true,"method":"ping"}"#,
                None,
                "not a boolean",
            ),
            (
                r#"{"id":4,"method":"ping"}"#,
                Some(4),
                "`jsonrpc` must be \"2.0\"",
            ),
            (
                r#"{"jsonrpc":"1.0","id":4,"method":"ping"}"#,
                Some(4),
                "`jsonrpc` must be \"2.0\"",
            ),
            (
                r#"{"jsonrpc":"2.0","id":5,"method":7}"#,
                Some(5),
                "`method` must be a string, not 7",
            ),
            (r#"{"jsonrpc":"2.0","id":6}"#, Some(6), "needs `method`"),
            (
                r#"{"hello":"world","jsonrpc":"2.0"}"#,
                None,
                "needs `method`",
            ),
            (
                r#"{"jsonrpc":"2.0","id":7,"method":"ping","result":{}}"#,
                Some(7),
                "not both",
            ),
            (
                r#"{"jsonrpc":"2.0","result":{}}"#,
                None,
                "a response needs an `id`",
            ),
            (
                r#"{"jsonrpc":"2.0","id":8,"result":{},"error":{}}"#,
                Some(8),
                "not both",
            ),
        ];
        for (body, id, needle) in cases {
            let r = rejected(body);
            assert_eq!(r.id, id.map(RequestId::Number), "{body}");
            let (code, message) = words(&r);
            assert_eq!(code, -32600, "{body}");
            assert!(
                message.contains(needle),
                "{body}: {message:?} should say {needle:?}"
            );
        }
    }

    #[test]
    fn params_that_do_not_fit_a_known_method_name_the_field() {
        let cases = [
            (
                json!({"method":"tools/call","params":{"arguments":{}}}),
                "tools/call",
                "missing field `name`",
            ),
            (
                json!({"method":"tools/call","params":{"name":"a","arguments":"x"}}),
                "tools/call",
                "arguments: invalid type: string \"x\", expected a map",
            ),
            (
                json!({"method":"initialize","params":{"capabilities":{},"clientInfo":{"name":"c","version":"1"}}}),
                "initialize",
                "missing field `protocolVersion`",
            ),
            (
                json!({"method":"resources/read","params":{}}),
                "resources/read",
                "missing field `uri`",
            ),
            (
                json!({"method":"tools/call"}),
                "tools/call",
                "tools/call needs `params`",
            ),
        ];
        for (mut body, method, needle) in cases {
            body["jsonrpc"] = json!("2.0");
            body["id"] = json!("r-1");
            let r = rejected(&body.to_string());
            assert_eq!(r.id, Some(RequestId::String("r-1".into())), "{body}");
            let Refusal::InvalidParams { method: m, .. } = &r.why else {
                panic!("{body}: {r:?}");
            };
            assert_eq!(m, method);
            let (code, message) = words(&r);
            assert_eq!(code, -32602, "{body}");
            assert!(
                message.contains(needle),
                "{body}: {message:?} should say {needle:?}"
            );
        }
    }

    #[test]
    fn good_messages_and_unknown_methods_pass() {
        let ok = |body: Value| check(body.to_string().as_bytes()).unwrap();
        let init = ok(
            json!({"jsonrpc":"2.0","id":1,"method":"initialize","params":{
            "protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"c","version":"1"}}}),
        );
        assert!(init.is_initialize());
        assert_eq!(init.request_id, Some(RequestId::Number(1)));
        let call = ok(
            json!({"jsonrpc":"2.0","id":"a","method":"tools/call","params":{"name":"x","arguments":{"k":1}}}),
        );
        assert!(!call.is_initialize());
        assert_eq!(call.method.as_deref(), Some("tools/call"));
        // an integer written as a float is the integer (as rmcp reads it)
        let float = ok(json!({"jsonrpc":"2.0","id":2.0,"method":"ping"}));
        assert_eq!(float.request_id, Some(RequestId::Number(2)));
        let unknown =
            ok(json!({"jsonrpc":"2.0","id":3,"method":"no/such/method","params":{"x":1}}));
        assert_eq!(unknown.method.as_deref(), Some("no/such/method"));
        let note = ok(json!({"jsonrpc":"2.0","method":"notifications/initialized"}));
        assert_eq!(
            (note.request_id, note.method.as_deref()),
            (None, Some("notifications/initialized"))
        );
        // rmcp serves a list whose optional params do not fit as one without params: so do we
        let list = ok(json!({"jsonrpc":"2.0","id":4,"method":"tools/list","params":{"cursor":3}}));
        assert_eq!(list.request_id, Some(RequestId::Number(4)));
        let answer = ok(json!({"jsonrpc":"2.0","id":9,"result":{}}));
        assert_eq!(answer.request_id, None);
    }
}
