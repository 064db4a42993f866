//! A tool's `arguments` built from its `inputSchema` (JSON Schema), for a target whose tools
//! the scenario does not give arguments for.
//!
//! Pure: no IO. Invariant: every `required` property gets a value of its declared type, and
//! nothing else is filled in; what the schema cannot tell (an unresolvable `$ref`, a
//! reference cycle deeper than [`MAX_DEPTH`]) becomes `null` rather than a panic.
//!
//! The rules: `$ref` (local `#/…` pointers), `anyOf`/`oneOf`/`allOf` take their first
//! alternative (a `null` alternative is skipped); `const`, then `default`, then the first
//! `enum` value, then `examples[0]` win for any type; otherwise string: `"load N"` (`N`
//! the request's id; `format` `uri`/`email`/`date-time`/`uuid` respected, `minLength`/
//! `maxLength` too); integer/number: `minimum` (or just above `exclusiveMinimum`), else 1
//! (`maximum` if that is below 1); boolean: `true`; object: its required properties;
//! array: `[]`, or `minItems` items of `items`; `null`: `null`.

use serde_json::{Map, Value, json};

/// How deep `$ref`s and nested objects are followed.
const MAX_DEPTH: usize = 24;

/// The arguments of request `n` of a tool with `schema` as its `inputSchema`.
pub fn arguments(schema: &Value, n: u64) -> Value {
    match value_for(schema, schema, n, 0) {
        Value::Object(m) => Value::Object(m),
        // an `inputSchema` is an object schema; anything else gets no arguments
        _ => json!({}),
    }
}

/// A value valid against `schema` (inside the document `root`).
fn value_for(schema: &Value, root: &Value, n: u64, depth: usize) -> Value {
    if depth > MAX_DEPTH {
        return Value::Null;
    }
    let Some(s) = schema.as_object() else {
        // `true` or a missing schema: anything goes
        return json!(format!("load {n}"));
    };
    if let Some(target) = s.get("$ref").and_then(Value::as_str) {
        return match resolve(root, target) {
            Some(t) => value_for(t, root, n, depth + 1),
            None => Value::Null,
        };
    }
    for key in ["anyOf", "oneOf", "allOf"] {
        if let Some(first) = first_alternative(s.get(key)) {
            return value_for(first, root, n, depth + 1);
        }
    }
    if let Some(v) = given(s) {
        return v;
    }
    match type_of(s) {
        Some("string") => string(s, n),
        Some("integer") => number(s, true),
        Some("number") => number(s, false),
        Some("boolean") => json!(true),
        Some("null") => Value::Null,
        Some("array") => array(s, root, n, depth),
        Some("object") => object(s, root, n, depth),
        _ => json!(format!("load {n}")),
    }
}

/// The schema's own value: `const`, `default`, `enum[0]`, `examples[0]`.
fn given(s: &Map<String, Value>) -> Option<Value> {
    if let Some(c) = s.get("const") {
        return Some(c.clone());
    }
    if let Some(d) = s.get("default") {
        return Some(d.clone());
    }
    for key in ["enum", "examples"] {
        if let Some(first) = s.get(key).and_then(Value::as_array).and_then(|a| a.first()) {
            return Some(first.clone());
        }
    }
    None
}

/// `type` (the first that is not `null` when it is a list); an object with `properties`
/// and no `type` is an object.
fn type_of(s: &Map<String, Value>) -> Option<&str> {
    match s.get("type") {
        Some(Value::String(t)) => Some(t),
        Some(Value::Array(ts)) => ts
            .iter()
            .filter_map(Value::as_str)
            .find(|t| *t != "null")
            .or(Some("null")),
        _ if s.contains_key("properties") || s.contains_key("required") => Some("object"),
        _ if s.contains_key("items") => Some("array"),
        _ => None,
    }
}

/// The first alternative of an `anyOf`/`oneOf`/`allOf` that is not `{"type": "null"}`.
fn first_alternative(list: Option<&Value>) -> Option<&Value> {
    let alts = list?.as_array()?;
    alts.iter()
        .find(|a| a.get("type").and_then(Value::as_str) != Some("null"))
        .or_else(|| alts.first())
}

/// A local JSON pointer (`#/$defs/X`, `#/definitions/X`, `#`) in `root`.
fn resolve<'a>(root: &'a Value, target: &str) -> Option<&'a Value> {
    let pointer = target.strip_prefix('#')?;
    if pointer.is_empty() {
        return Some(root);
    }
    root.pointer(pointer)
}

fn string(s: &Map<String, Value>, n: u64) -> Value {
    let mut text = match s.get("format").and_then(Value::as_str) {
        Some("uri") | Some("url") | Some("uri-reference") => {
            format!("https://example.com/load-{n}")
        }
        Some("email") => format!("load{n}@example.com"),
        Some("date-time") => "2026-01-01T00:00:00Z".to_string(),
        Some("date") => "2026-01-01".to_string(),
        Some("uuid") => format!("00000000-0000-4000-8000-{n:012}"),
        _ => format!("load {n}"),
    };
    let len = |k: &str| s.get(k).and_then(Value::as_u64).map(|v| v as usize);
    if let Some(min) = len("minLength") {
        while text.chars().count() < min {
            text.push('x');
        }
    }
    if let Some(max) = len("maxLength") {
        text = text.chars().take(max).collect();
    }
    json!(text)
}

fn number(s: &Map<String, Value>, integer: bool) -> Value {
    let bound = |k: &str| s.get(k).and_then(Value::as_f64);
    let v = if let Some(min) = bound("minimum") {
        min
    } else if let Some(ex) = bound("exclusiveMinimum") {
        ex + 1.0
    } else {
        match bound("maximum") {
            Some(max) if max < 1.0 => max,
            _ => 1.0,
        }
    };
    if integer {
        json!(v.ceil() as i64)
    } else if v.fract() == 0.0 && v.abs() < 1e15 {
        json!(v as i64)
    } else {
        json!(v)
    }
}

fn array(s: &Map<String, Value>, root: &Value, n: u64, depth: usize) -> Value {
    let count = s.get("minItems").and_then(Value::as_u64).unwrap_or(0);
    let item = s.get("items").cloned().unwrap_or(Value::Bool(true));
    Value::Array(
        (0..count.min(64))
            .map(|_| value_for(&item, root, n, depth + 1))
            .collect(),
    )
}

fn object(s: &Map<String, Value>, root: &Value, n: u64, depth: usize) -> Value {
    let props = s.get("properties").and_then(Value::as_object);
    let mut out = Map::new();
    for name in s
        .get("required")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
    {
        let prop = props
            .and_then(|p| p.get(name))
            .cloned()
            .unwrap_or(Value::Bool(true));
        out.insert(name.to_string(), value_for(&prop, root, n, depth + 1));
    }
    Value::Object(out)
}

#[cfg(test)]
#[path = "schema_tests.rs"]
mod tests;
