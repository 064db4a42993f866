//! `GET /control` (counters) and `POST /control` (switch faults and latency at run time).
//! Bad input gets a 400 naming the field.

use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::{Value, json};

use crate::faults::{Fault, Latency};
use crate::http_faults::HttpFaults;

pub fn router(ctx: Arc<HttpFaults>) -> Router {
    Router::new()
        .route("/control", get(counters).post(update))
        .with_state(ctx)
}

async fn counters(State(ctx): State<Arc<HttpFaults>>) -> Response {
    axum::Json(ctx.counters().await).into_response()
}

fn bad(field: &str, message: impl std::fmt::Display) -> Response {
    (
        StatusCode::BAD_REQUEST,
        axum::Json(json!({ "error": message.to_string(), "field": field })),
    )
        .into_response()
}

/// Body: `{"faults": ["hang-call@0.5", …], "latency": "fixed:5ms" | ["echo=fixed:5ms", …]}`.
/// `faults` replaces the active faults (an empty list clears them); an absent field is kept.
async fn update(State(ctx): State<Arc<HttpFaults>>, body: Bytes) -> Response {
    let body: Value = match serde_json::from_slice(&body) {
        Ok(v @ Value::Object(_)) => v,
        Ok(_) => return bad("body", "expected a JSON object"),
        Err(e) => return bad("body", format!("invalid JSON: {e}")),
    };
    if let Some(key) = body
        .as_object()
        .into_iter()
        .flatten()
        .map(|(k, _)| k)
        .find(|k| *k != "faults" && *k != "latency")
    {
        return bad(
            key,
            format!("unknown field {key:?} (expected faults, latency)"),
        );
    }
    let faults = match body.get("faults") {
        None => ctx.state.faults(),
        Some(Value::Array(items)) => {
            let mut faults = Vec::with_capacity(items.len());
            for (i, item) in items.iter().enumerate() {
                let field = format!("faults[{i}]");
                let Some(spec) = item.as_str() else {
                    return bad(&field, "expected a string such as \"hang-call@0.5\"");
                };
                match spec.parse::<Fault>() {
                    Ok(f) => faults.push(f),
                    Err(e) => return bad(&field, e),
                }
            }
            faults
        }
        Some(_) => return bad("faults", "expected a list of fault specs"),
    };
    let latency = match body.get("latency") {
        None => None,
        Some(Value::String(s)) => match Latency::parse(&[s]) {
            Ok(l) => Some(l),
            Err(e) => return bad("latency", e),
        },
        Some(Value::Array(items)) => {
            let mut specs = Vec::new();
            for (i, item) in items.iter().enumerate() {
                match item.as_str() {
                    Some(s) => specs.push(s.to_string()),
                    None => return bad(&format!("latency[{i}]"), "expected a string"),
                }
            }
            match Latency::parse(&specs) {
                Ok(l) => Some(l),
                Err(e) => return bad("latency", e),
            }
        }
        Some(_) => return bad("latency", "expected a spec or a list of specs"),
    };
    ctx.state.set(faults, latency);
    axum::Json(ctx.counters().await).into_response()
}
