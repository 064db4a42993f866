//! Tools that ask the client something: `sample` (`sampling/createMessage`), `elicit`
//! (`elicitation/create`) and `roots` (`roots/list`); and `--roots-on-initialized`, a
//! `roots/list` sent outside any request when a 2025-11-25 session starts (as many real servers
//! do), whose outcome the `initial_roots` tool reports.
//!
//! 2025-11-25 era: the question is a server→client request on the session, from inside the
//! call. 2026-07-28 era (no server→client requests): the first call answers with an
//! `InputRequiredResult` (one input request and a `requestState`); the client's retry carries
//! the answer in `inputResponses` and gets the same final result as the old era.
//!
//! A client that did not declare the capability gets a tool error (`isError: true`) at once.
//! In the stateless 2025-11-25 HTTP mode rmcp knows no client capabilities (there is no
//! session to ask), so these tools answer with that tool error there.
//!
//! Ownership: the `roots/list` of `--roots-on-initialized` is awaited by a task on the mock's
//! tracker that ends with the answer, after [`INITIAL_ROOTS_TIMEOUT`], when the session's
//! transport closes, or at the stop token, whichever comes first.

// rmcp marks sampling and roots deprecated (SEP-2577); the mock serves them on purpose.
#![allow(deprecated)]

use std::{sync::Arc, time::Duration};

use rmcp::{
    ErrorData as McpError, RoleServer,
    handler::server::{
        tool::{InputResponses as Responses, RequestState},
        wrapper::Parameters,
    },
    model::{
        CallToolResponse, CallToolResult, ClientCapabilities, ClientResult, ContentBlock,
        CreateMessageRequest, CreateMessageRequestParams, CreateMessageResult, ElicitRequest,
        ElicitRequestParams, ElicitResult, ElicitationAction, ElicitationSchema, InputRequest,
        InputRequests, InputRequiredResult, InputResponses, ListRootsRequest, ListRootsResult,
        ProtocolVersion, SamplingMessage, ServerRequest,
    },
    service::{Peer, RequestContext},
    tool, tool_router,
};
use schemars::JsonSchema;
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

use crate::session::{InitialRoots, Session, is_2026_era};
use crate::tools::MockTools;

/// How long `--roots-on-initialized` waits for the client's answer to its `roots/list`.
pub const INITIAL_ROOTS_TIMEOUT: Duration = Duration::from_secs(30);

/// How often the `--roots-on-initialized` task looks whether the session's transport closed
/// (rmcp's `Peer` tells that only when asked).
const CLOSED_POLL: Duration = Duration::from_millis(100);

/// `maxTokens` of the `sample` tool's request.
pub const SAMPLE_MAX_TOKENS: u32 = 100;

/// Arguments of the `sample` tool.
#[derive(Debug, Deserialize, JsonSchema)]
pub struct SampleArgs {
    /// The user message sent to the client's model.
    pub prompt: String,
}

/// Arguments of the `elicit` tool.
#[derive(Debug, Deserialize, JsonSchema)]
pub struct ElicitArgs {
    /// The message shown to the user.
    pub message: String,
}

/// The schema `elicit` asks for: `{ name: string }`, `name` required.
pub fn elicit_schema() -> Value {
    json!({
        "type": "object",
        "properties": { "name": { "type": "string" } },
        "required": ["name"]
    })
}

fn tool_error(text: impl Into<String>) -> CallToolResponse {
    CallToolResult::error(vec![ContentBlock::text(text.into())]).into()
}

fn tool_text(text: impl Into<String>) -> CallToolResponse {
    CallToolResult::success(vec![ContentBlock::text(text.into())]).into()
}

/// One MRTR question: its key in `inputRequests`/`inputResponses` and its `requestState`.
struct Question {
    key: &'static str,
    state: &'static str,
}

const SAMPLE: Question = Question {
    key: "sample",
    state: "mock-mcp:sample",
};
const ELICIT: Question = Question {
    key: "elicit",
    state: "mock-mcp:elicit",
};
const ROOTS: Question = Question {
    key: "roots",
    state: "mock-mcp:roots",
};

/// What a 2026-era call should do next.
enum Round<T> {
    /// First round: ask the client (the `InputRequiredResult` to return).
    Ask(CallToolResponse),
    /// Retry: the client's answer.
    Answered(T),
}

impl Question {
    /// The first round asks `request`; the retry must echo our state and carry the answer.
    fn round<T: DeserializeOwned>(
        &self,
        request: InputRequest,
        state: Option<String>,
        responses: Option<InputResponses>,
    ) -> Result<Round<T>, McpError> {
        match state.as_deref() {
            None => {
                let mut requests = InputRequests::new();
                requests.insert(self.key.to_string(), request);
                let ask = InputRequiredResult::new(Some(requests), Some(self.state.to_string()));
                Ok(Round::Ask(ask.into()))
            }
            Some(s) if s == self.state => {
                let answer = responses
                    .and_then(|mut r| r.remove(self.key))
                    .ok_or_else(|| {
                        McpError::invalid_params(
                            format!("inputResponses has no {:?} answer", self.key),
                            None,
                        )
                    })?;
                let answer = serde_json::from_value(answer).map_err(|e| {
                    McpError::invalid_params(
                        format!("inputResponses[{:?}] is not a valid answer: {e}", self.key),
                        None,
                    )
                })?;
                Ok(Round::Answered(answer))
            }
            Some(other) => Err(McpError::invalid_params(
                format!("unexpected requestState {other:?}"),
                None,
            )),
        }
    }
}

fn capabilities(context: &RequestContext<RoleServer>) -> ClientCapabilities {
    context.client_capabilities().unwrap_or_default()
}

fn sampled(result: &CreateMessageResult) -> CallToolResponse {
    let text: String = result
        .message
        .content
        .iter()
        .filter_map(|block| block.as_text().map(|t| t.text.as_str()))
        .collect();
    tool_text(format!("sampled: {text}"))
}

fn elicited(result: &ElicitResult) -> CallToolResponse {
    match &result.action {
        ElicitationAction::Accept => {
            let content = result.content.clone().unwrap_or(Value::Null);
            tool_text(format!("accepted: {content}"))
        }
        ElicitationAction::Decline => tool_text("declined"),
        ElicitationAction::Cancel => tool_text("cancelled"),
        other => tool_error(format!("elicitation/create: unknown action {other:?}")),
    }
}

fn rooted(result: &ListRootsResult) -> CallToolResponse {
    let uris: Vec<&str> = result.roots.iter().map(|r| r.uri.as_str()).collect();
    tool_text(uris.join(","))
}

impl MockTools {
    /// `--roots-on-initialized`, on `notifications/initialized`: asks a 2025-11-25 session's
    /// client for its roots, outside any request (rmcp puts it on the session's GET stream),
    /// and records the outcome in the session. A client without the roots capability is not
    /// asked (its outcome says so); a session of another era is left alone.
    pub(crate) fn ask_initial_roots(&self, peer: &Peer<RoleServer>) {
        let Some(info) = peer.peer_info() else {
            return;
        };
        if info.protocol_version >= ProtocolVersion::V_2026_07_28 {
            return;
        }
        if info.capabilities.roots.is_none() {
            self.session.set_initial_roots(InitialRoots::Failed(
                "the client has no roots capability".into(),
            ));
            return;
        }
        self.session.set_initial_roots(InitialRoots::Pending);
        self.tasks.spawn(initial_roots(
            peer.clone(),
            self.session.clone(),
            self.stop.clone(),
        ));
    }
}

/// Awaits the answer to one `roots/list` and records it in `session`; ends early (recording
/// nothing more: nobody can ask any longer) when the transport closes or `stop` fires.
async fn initial_roots(peer: Peer<RoleServer>, session: Arc<Session>, stop: CancellationToken) {
    let closed = async {
        while !peer.is_transport_closed() {
            tokio::time::sleep(CLOSED_POLL).await;
        }
    };
    let outcome = tokio::select! {
        answer = tokio::time::timeout(INITIAL_ROOTS_TIMEOUT, peer.list_roots()) => match answer {
            Ok(Ok(result)) => InitialRoots::Answered(
                result.roots.into_iter().map(|r| r.uri).collect(),
            ),
            Ok(Err(e)) => InitialRoots::Failed(format!("roots/list failed: {e}")),
            Err(_) => InitialRoots::Failed(format!(
                "roots/list: no answer within {}",
                humantime::format_duration(INITIAL_ROOTS_TIMEOUT)
            )),
        },
        () = closed => {
            tracing::debug!(session = session.id, "session closed before roots/list was answered");
            return;
        }
        () = stop.cancelled() => return,
    };
    tracing::debug!(session = session.id, ?outcome, "initial roots/list");
    session.set_initial_roots(outcome);
}

#[tool_router(router = client_request_router, vis = "pub(crate)")]
impl MockTools {
    /// Asks the client's model (`sampling/createMessage`) and returns its reply.
    #[tool(description = "Ask the client to sample a reply to `prompt`")]
    async fn sample(
        &self,
        Parameters(SampleArgs { prompt }): Parameters<SampleArgs>,
        RequestState(state): RequestState,
        Responses(responses): Responses,
        context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, McpError> {
        if capabilities(&context).sampling.is_none() {
            return Ok(tool_error("the client has no sampling capability"));
        }
        let params = CreateMessageRequestParams::new(
            vec![SamplingMessage::user_text(prompt)],
            SAMPLE_MAX_TOKENS,
        );
        if is_2026_era(&context) {
            let request = InputRequest::CreateMessage(CreateMessageRequest::new(params));
            return Ok(match SAMPLE.round(request, state, responses)? {
                Round::Ask(ask) => ask,
                Round::Answered(result) => sampled(&result),
            });
        }
        Ok(match context.peer.create_message(params).await {
            Ok(result) => sampled(&result),
            Err(e) => tool_error(format!("sampling/createMessage failed: {e}")),
        })
    }

    /// Asks the user for a name (`elicitation/create`, form mode).
    #[tool(description = "Ask the client to elicit a name, showing `message`")]
    async fn elicit(
        &self,
        Parameters(ElicitArgs { message }): Parameters<ElicitArgs>,
        RequestState(state): RequestState,
        Responses(responses): Responses,
        context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, McpError> {
        if capabilities(&context).elicitation.is_none() {
            return Ok(tool_error("the client has no elicitation capability"));
        }
        let requested_schema: ElicitationSchema = serde_json::from_value(elicit_schema())
            .map_err(|e| McpError::internal_error(format!("elicitation schema: {e}"), None))?;
        let params = ElicitRequestParams::FormElicitationParams {
            meta: None,
            message,
            requested_schema,
        };
        if is_2026_era(&context) {
            let request = InputRequest::Elicitation(ElicitRequest::new(params));
            return Ok(match ELICIT.round(request, state, responses)? {
                Round::Ask(ask) => ask,
                Round::Answered(result) => elicited(&result),
            });
        }
        let request = ServerRequest::ElicitRequest(ElicitRequest::new(params));
        Ok(match context.peer.send_request(request).await {
            Ok(ClientResult::ElicitResult(result)) => elicited(&result),
            Ok(other) => tool_error(format!("elicitation/create: unexpected answer {other:?}")),
            Err(e) => tool_error(format!("elicitation/create failed: {e}")),
        })
    }

    /// Lists the client's roots (`roots/list`) and returns their URIs, comma-separated.
    #[tool(description = "Ask the client for its roots; returns their URIs joined by ','")]
    async fn roots(
        &self,
        RequestState(state): RequestState,
        Responses(responses): Responses,
        context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, McpError> {
        if capabilities(&context).roots.is_none() {
            return Ok(tool_error("the client has no roots capability"));
        }
        if is_2026_era(&context) {
            let request = InputRequest::ListRoots(ListRootsRequest::default());
            return Ok(match ROOTS.round(request, state, responses)? {
                Round::Ask(ask) => ask,
                Round::Answered(result) => rooted(&result),
            });
        }
        Ok(match context.peer.list_roots().await {
            Ok(result) => rooted(&result),
            Err(e) => tool_error(format!("roots/list failed: {e}")),
        })
    }

    /// What the client answered to the `roots/list` of `--roots-on-initialized`, for this
    /// session.
    #[tool(
        description = "The roots the client gave at notifications/initialized (--roots-on-initialized): URIs joined by ',', \"pending\", \"error: ...\", or \"off\""
    )]
    async fn initial_roots(&self, context: RequestContext<RoleServer>) -> String {
        if !self.roots_on_initialized {
            return "off".into();
        }
        if is_2026_era(&context) {
            return "error: no session, no notifications/initialized in the 2026-07-28 era".into();
        }
        match self.session.initial_roots() {
            // the `initialized` notification is handled on a task of its own, so a call may
            // overtake it; no capability: it would not be asked (stateless 2025-11-25 included)
            InitialRoots::NotAsked if capabilities(&context).roots.is_none() => {
                "error: the client has no roots capability".into()
            }
            InitialRoots::NotAsked | InitialRoots::Pending => "pending".into(),
            InitialRoots::Answered(uris) => uris.join(","),
            InitialRoots::Failed(why) => format!("error: {why}"),
        }
    }
}
