use serde_json::{Value, json};

use super::arguments;

/// `mock-mcp`'s `tools/list` as it answers it (rmcp + schemars), trimmed to the tools used.
fn mock_schema(tool: &str) -> Value {
    let tools = json!({
        "echo": {"$schema":"https://json-schema.org/draft/2020-12/schema","properties":{"text":{"description":"Text returned verbatim.","type":"string"}},"required":["text"],"type":"object"},
        "add": {"$schema":"https://json-schema.org/draft/2020-12/schema","properties":{"a":{"description":"First addend.","format":"double","type":"number"},"b":{"description":"Second addend.","format":"double","type":"number"}},"required":["a","b"],"type":"object"},
        "sleep": {"$schema":"https://json-schema.org/draft/2020-12/schema","properties":{"ms":{"description":"How long to sleep, in milliseconds (capped at 600000).","format":"uint64","minimum":0,"type":"integer"}},"required":["ms"],"type":"object"},
        "log": {"$defs":{"LoggingLevel":{"deprecated":true,"description":"Logging levels supported by the MCP protocol","enum":["debug","info","notice","warning","error","critical","alert","emergency"],"type":"string"}},"$schema":"https://json-schema.org/draft/2020-12/schema","properties":{"level":{"$ref":"#/$defs/LoggingLevel","description":"The message's level."},"message":{"description":"The message (sent as `data`).","type":"string"}},"required":["level","message"],"type":"object"},
        "poke": {"$defs":{"PokeWhat":{"oneOf":[{"const":"tools","type":"string"},{"const":"resources","type":"string"}]}},"$schema":"https://json-schema.org/draft/2020-12/schema","properties":{"what":{"anyOf":[{"$ref":"#/$defs/PokeWhat"},{"type":"null"}]}},"type":"object"},
        "bump": {"properties":{},"type":"object"}
    });
    tools[tool].clone()
}

#[test]
fn the_mocks_tools_get_their_required_arguments() {
    assert_eq!(
        arguments(&mock_schema("echo"), 7),
        json!({"text": "load 7"})
    );
    assert_eq!(arguments(&mock_schema("add"), 7), json!({"a": 1, "b": 1}));
    assert_eq!(arguments(&mock_schema("sleep"), 7), json!({"ms": 0}));
    assert_eq!(
        arguments(&mock_schema("log"), 3),
        json!({"level": "debug", "message": "load 3"})
    );
    // nothing required: nothing sent
    assert_eq!(arguments(&mock_schema("poke"), 1), json!({}));
    assert_eq!(arguments(&mock_schema("bump"), 1), json!({}));
}

/// The reference `server-everything`'s tools (zod-to-json-schema, draft-07).
#[test]
fn server_everything_shapes() {
    let echo = json!({"type":"object","properties":{"message":{"type":"string","description":"Message to echo"}},"required":["message"],"additionalProperties":false,"$schema":"http://json-schema.org/draft-07/schema#"});
    assert_eq!(arguments(&echo, 12), json!({"message": "load 12"}));
    let add = json!({"type":"object","properties":{"a":{"type":"number","description":"First number"},"b":{"type":"number","description":"Second number"}},"required":["a","b"],"additionalProperties":false,"$schema":"http://json-schema.org/draft-07/schema#"});
    assert_eq!(arguments(&add, 1), json!({"a": 1, "b": 1}));
    let long = json!({"type":"object","properties":{"duration":{"type":"number","default":10,"description":"Duration of the operation in seconds"},"steps":{"type":"number","default":5,"description":"Number of steps in the operation"}},"additionalProperties":false,"$schema":"http://json-schema.org/draft-07/schema#"});
    assert_eq!(arguments(&long, 1), json!({}));
    let mut required = long.clone();
    required["required"] = json!(["duration", "steps"]);
    assert_eq!(arguments(&required, 1), json!({"duration": 10, "steps": 5}));
    let annotated = json!({"type":"object","properties":{"messageType":{"type":"string","enum":["error","success","debug"]},"includeImage":{"type":"boolean","default":false}},"required":["messageType","includeImage"]});
    assert_eq!(
        arguments(&annotated, 1),
        json!({"messageType": "error", "includeImage": false})
    );
}

#[test]
fn nested_objects_arrays_and_bounds() {
    let schema = json!({
        "type": "object",
        "required": ["user", "tags", "none", "count", "ratio", "flag", "any", "short", "site"],
        "properties": {
            "user": {"type": "object", "required": ["id"], "properties": {
                "id": {"type": "integer", "exclusiveMinimum": 10}, "nick": {"type": "string"}}},
            "tags": {"type": "array", "minItems": 2, "items": {"type": "string", "examples": ["a"]}},
            "none": {"type": "array", "items": {"type": "string"}},
            "count": {"type": ["integer", "null"], "maximum": -3},
            "ratio": {"type": "number", "minimum": 0.5},
            "flag": {"type": "boolean"},
            "any": {},
            "short": {"type": "string", "maxLength": 4, "minLength": 2},
            "site": {"type": "string", "format": "uri"}
        }
    });
    assert_eq!(
        arguments(&schema, 5),
        json!({
            "user": {"id": 11},
            "tags": ["a", "a"],
            "none": [],
            "count": -3,
            "ratio": 0.5,
            "flag": true,
            "any": "load 5",
            "short": "load",
            "site": "https://example.com/load-5"
        })
    );
}

#[test]
fn cycles_and_dangling_refs_end_without_panic() {
    let cyclic = json!({
        "$defs": {"Node": {"type": "object", "required": ["next"], "properties": {"next": {"$ref": "#/$defs/Node"}}}},
        "$ref": "#/$defs/Node"
    });
    let v = arguments(&cyclic, 1);
    assert!(v.get("next").is_some(), "{v}");
    let dangling = json!({"type": "object", "required": ["x"], "properties": {"x": {"$ref": "#/$defs/Missing"}}});
    assert_eq!(arguments(&dangling, 1), json!({"x": null}));
    assert_eq!(arguments(&json!({"type": "string"}), 1), json!({}));
}
