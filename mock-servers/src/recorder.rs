//! A recording MCP client for tests of anything that serves the mock's surface: the mock
//! itself, and a proxy in front of it. It answers sampling (`reply to {prompt}`), elicitation
//! (accept with `{"name":"Ferris"}`, or decline/cancel when the message says so) and roots
//! ([`ROOTS`]), and records every notification it receives.

// rmcp marks sampling, roots and logging deprecated (SEP-2577); the mock serves them on purpose.
#![allow(deprecated)]

use std::{
    sync::{Arc, Mutex},
    time::Duration,
};

use rmcp::{
    ClientHandler, ErrorData, RoleClient,
    model::{
        ClientCapabilities, ClientConfig, CreateMessageRequestParams, CreateMessageResult,
        ElicitRequestParams, ElicitResult, ElicitationAction, Implementation, ListRootsResult,
        LoggingLevel, LoggingMessageNotificationParam, ProgressNotificationParam, ProgressToken,
        ProtocolVersion, ResourceUpdatedNotificationParam, Root, SamplingMessage,
    },
    service::{
        ClientLifecycleMode, NotificationContext, RequestContext, RunningService,
        serve_client_with_lifecycle,
    },
    transport::{
        StreamableHttpClientTransport, streamable_http_client::StreamableHttpClientTransportConfig,
    },
};
use serde_json::{Value, json};
use tokio::sync::Notify;

/// Something the mock sent to the client.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    Progress {
        token: ProgressToken,
        progress: f64,
        total: Option<f64>,
        message: Option<String>,
    },
    Log {
        level: LoggingLevel,
        logger: Option<String>,
        data: Value,
    },
    ResourceUpdated(String),
    ToolsChanged,
    ResourcesChanged,
    PromptsChanged,
    /// `sampling/createMessage`: the user text and maxTokens.
    Sampled(String, u32),
    /// `elicitation/create`: the message and the requested schema.
    Elicited(String, Value),
    RootsListed,
}

/// The roots the recorder answers `roots/list` with.
pub const ROOTS: [&str; 2] = ["file:///a", "file:///b"];

/// A `ClientHandler` that answers sampling (`reply to {prompt}`), elicitation (accept with
/// `{"name":"Ferris"}`, or decline/cancel when the message says so) and roots ([`ROOTS`]),
/// and records every notification.
#[derive(Clone)]
pub struct Recorder {
    events: Arc<Mutex<Vec<Event>>>,
    changed: Arc<Notify>,
    capabilities: ClientCapabilities,
    protocol: ProtocolVersion,
}

impl Default for Recorder {
    fn default() -> Self {
        Self::with_capabilities(
            ClientCapabilities::builder()
                .enable_roots()
                .enable_sampling()
                .enable_elicitation()
                .build(),
        )
    }
}

impl Recorder {
    /// A recorder declaring `capabilities` (and the 2025-11-25 version at `initialize`).
    pub fn with_capabilities(capabilities: ClientCapabilities) -> Self {
        Self {
            events: Arc::default(),
            changed: Arc::default(),
            capabilities,
            protocol: ProtocolVersion::LATEST_WITH_INITIALIZE,
        }
    }

    /// A recorder declaring no capability at all.
    pub fn without_capabilities() -> Self {
        Self::with_capabilities(ClientCapabilities::default())
    }

    fn push(&self, event: Event) {
        self.events.lock().unwrap().push(event);
        self.changed.notify_waiters();
    }

    /// Everything recorded so far.
    pub fn events(&self) -> Vec<Event> {
        self.events.lock().unwrap().clone()
    }

    /// Forgets what was recorded.
    pub fn clear(&self) {
        self.events.lock().unwrap().clear();
    }

    /// Waits (at most 5 s) until `done` holds for the recorded events; returns them.
    pub async fn wait_for(&self, what: &str, done: impl Fn(&[Event]) -> bool) -> Vec<Event> {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        loop {
            let changed = self.changed.notified();
            let events = self.events();
            if done(&events) {
                return events;
            }
            if tokio::time::timeout_at(deadline, changed).await.is_err() {
                panic!("timed out waiting for {what}; recorded {:?}", self.events());
            }
        }
    }

    /// Waits until `event` has been recorded.
    pub async fn wait_event(&self, event: Event) -> Vec<Event> {
        let what = format!("{event:?}");
        self.wait_for(&what, |e| e.contains(&event)).await
    }

    /// Asserts nothing matching `unwanted` arrives within `quiet`.
    pub async fn assert_quiet(&self, quiet: Duration, unwanted: impl Fn(&Event) -> bool) {
        tokio::time::sleep(quiet).await;
        let events = self.events();
        assert!(
            !events.iter().any(unwanted),
            "unexpected notification: {events:?}"
        );
    }
}

impl ClientHandler for Recorder {
    fn get_info(&self) -> ClientConfig {
        ClientConfig::new(
            self.capabilities.clone(),
            Implementation::new("mock-surface-test", "0"),
        )
        .with_protocol_version(self.protocol.clone())
    }

    async fn create_message(
        &self,
        params: CreateMessageRequestParams,
        _context: RequestContext<RoleClient>,
    ) -> Result<CreateMessageResult, ErrorData> {
        let prompt: String = params
            .messages
            .iter()
            .flat_map(|m| m.content.iter())
            .filter_map(|c| c.as_text().map(|t| t.text.clone()))
            .collect();
        self.push(Event::Sampled(prompt.clone(), params.max_tokens));
        Ok(CreateMessageResult::new(
            SamplingMessage::assistant_text(format!("reply to {prompt}")),
            "mock-model".to_string(),
        ))
    }

    async fn create_elicitation(
        &self,
        request: ElicitRequestParams,
        _context: RequestContext<RoleClient>,
    ) -> Result<ElicitResult, ErrorData> {
        let value = serde_json::to_value(&request).unwrap();
        let message = value["message"].as_str().unwrap_or_default().to_string();
        self.push(Event::Elicited(
            message.clone(),
            value["requestedSchema"].clone(),
        ));
        Ok(if message.contains("decline") {
            ElicitResult::new(ElicitationAction::Decline)
        } else if message.contains("cancel") {
            ElicitResult::new(ElicitationAction::Cancel)
        } else {
            ElicitResult::new(ElicitationAction::Accept).with_content(json!({ "name": "Ferris" }))
        })
    }

    async fn list_roots(
        &self,
        _context: RequestContext<RoleClient>,
    ) -> Result<ListRootsResult, ErrorData> {
        self.push(Event::RootsListed);
        Ok(ListRootsResult::new(
            ROOTS.iter().map(|r| Root::new(*r)).collect(),
        ))
    }

    async fn on_progress(
        &self,
        params: ProgressNotificationParam,
        _context: NotificationContext<RoleClient>,
    ) {
        self.push(Event::Progress {
            token: params.progress_token,
            progress: params.progress,
            total: params.total,
            message: params.message,
        });
    }

    async fn on_logging_message(
        &self,
        params: LoggingMessageNotificationParam,
        _context: NotificationContext<RoleClient>,
    ) {
        self.push(Event::Log {
            level: params.level,
            logger: params.logger,
            data: params.data,
        });
    }

    async fn on_resource_updated(
        &self,
        params: ResourceUpdatedNotificationParam,
        _context: NotificationContext<RoleClient>,
    ) {
        self.push(Event::ResourceUpdated(params.uri));
    }

    async fn on_resource_list_changed(&self, _context: NotificationContext<RoleClient>) {
        self.push(Event::ResourcesChanged);
    }

    async fn on_tool_list_changed(&self, _context: NotificationContext<RoleClient>) {
        self.push(Event::ToolsChanged);
    }

    async fn on_prompt_list_changed(&self, _context: NotificationContext<RoleClient>) {
        self.push(Event::PromptsChanged);
    }
}

pub type Client = RunningService<RoleClient, Recorder>;

/// The 2026-07-28 lifecycle (`server/discover`, no session).
pub fn discover() -> ClientLifecycleMode {
    ClientLifecycleMode::Discover {
        preferred_versions: vec![ProtocolVersion::V_2026_07_28],
    }
}

/// Connects `recorder` to the HTTP mock at `url` (2025-11-25 `initialize` lifecycle).
pub async fn connect(url: &str, recorder: &Recorder) -> Client {
    connect_with(url, recorder, ClientLifecycleMode::Initialize).await
}

/// Connects `recorder` to the HTTP mock at `url` with `lifecycle`.
pub async fn connect_with(
    url: &str,
    recorder: &Recorder,
    lifecycle: ClientLifecycleMode,
) -> Client {
    connect_authorized(url, None, recorder, lifecycle).await
}

/// Connects `recorder` to the MCP endpoint at `url` with `lifecycle`, sending `key` (if any)
/// as `Authorization: Bearer` (a proxy's API key).
pub async fn connect_authorized(
    url: &str,
    key: Option<&str>,
    recorder: &Recorder,
    lifecycle: ClientLifecycleMode,
) -> Client {
    let mut config = StreamableHttpClientTransportConfig::with_uri(url.to_string());
    if let Some(key) = key {
        config = config.auth_header(key.to_string());
    }
    let transport = StreamableHttpClientTransport::with_client(reqwest::Client::new(), config);
    serve_client_with_lifecycle(recorder.clone(), transport, lifecycle)
        .await
        .expect("connect to the MCP endpoint")
}
