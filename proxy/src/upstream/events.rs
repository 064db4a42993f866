//! Where what an upstream sends on its own goes: list changes, resource updates and log
//! messages reach the downstream sessions through [`SessionEvents`], which `Sessions` in the
//! sessions layer above implements, so this layer never imports that one.

use std::sync::Arc;

use futures::future::BoxFuture;
use rmcp::model::{LoggingMessageNotificationParam, ResourceUpdatedNotificationParam};

/// Which merged list changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ListKind {
    Tools,
    Resources,
    Prompts,
}

/// The downstream side of an instance's upstream connections. `only` is the one session a
/// `per-session` connection belongs to (`None`: every session of the instance that wants it).
pub trait SessionEvents: Send + Sync {
    /// An upstream of `instance` changed one of its lists.
    fn list_changed<'a>(self: Arc<Self>, instance: &'a str, kind: ListKind) -> BoxFuture<'a, ()>;

    /// An upstream of `instance` says a resource changed.
    fn resource_updated<'a>(
        &'a self,
        instance: &'a str,
        only: Option<u64>,
        params: ResourceUpdatedNotificationParam,
    ) -> BoxFuture<'a, ()>;

    /// An upstream of `instance` sent a log message.
    fn log<'a>(
        &'a self,
        instance: &'a str,
        only: Option<u64>,
        params: LoggingMessageNotificationParam,
    ) -> BoxFuture<'a, ()>;
}
