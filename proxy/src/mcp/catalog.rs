//! Resources, resource templates, prompts, completion and logging: merged from the upstreams
//! (`crate::domain::catalog`), routed by prompt name (the tool prefix rule) or by URI (the index of who
//! listed it; a template that matches), and passed through unchanged otherwise.

#![allow(deprecated)] // logging is deprecated by SEP-2577 but part of 2025-11-25

use std::sync::Arc;

use rmcp::RoleServer;
use rmcp::model::{
    CompleteRequestParams, CompleteResult, ErrorData, GetPromptRequestParams, GetPromptResponse,
    ListPromptsResult, ListResourceTemplatesResult, ListResourcesResult, PaginatedRequestParams,
    ReadResourceRequestParams, ReadResourceResponse, Reference, SetLevelRequestParams,
    SubscribeRequestParams, UnsubscribeRequestParams,
};
use rmcp::service::RequestContext;

use super::error::Refusal;
use super::{ProxyHandler, cursor, era_of, mark_complete};
use crate::domain::catalog::{self, Catalog, UpstreamLists};
use crate::domain::model::{ConnectionMode, InstanceConfig, UpstreamConfig};
use crate::domain::router::{self, Route};
use crate::upstream::Era;
use crate::upstream::relay::Downstream;

impl ProxyHandler {
    /// The instance's merged resources, templates and prompts: cached per instance (dropped on
    /// an upstream's `list_changed`), built by asking every upstream that offers them. A failing
    /// upstream is logged, counted and left out; a partial catalog is not cached.
    pub(super) async fn catalog(&self, config: &InstanceConfig, era: Era) -> Arc<Catalog> {
        self.state
            .caches
            .catalogs
            .get_or_build(&self.instance_id, || self.build_catalog(config, era))
            .await
    }

    async fn build_catalog(&self, config: &InstanceConfig, era: Era) -> Catalog {
        let timeout = self.state.settings.call_timeout;
        let (ok, failed) = self
            .ask_every_upstream(config, era, "resources and prompts", |lease| async move {
                let lists = async {
                    Ok(UpstreamLists {
                        resources: lease.list_resources(timeout).await?,
                        templates: lease.list_resource_templates(timeout).await?,
                        prompts: lease.list_prompts(timeout).await?,
                    })
                }
                .await;
                (lease, lists)
            })
            .await;
        let catalog = Catalog::build(config.prefixed(), ok, failed);
        if !catalog.collisions.is_empty() {
            tracing::warn!(instance = %self.instance_id, collisions = ?catalog.collisions,
                "resources or prompts listed twice; the first upstream's wins");
        }
        catalog
    }

    pub(super) async fn resources_page(
        &self,
        request: &Option<PaginatedRequestParams>,
        ctx: &RequestContext<RoleServer>,
    ) -> Result<ListResourcesResult, ErrorData> {
        let config = self.config(ctx).await?;
        let catalog = self.catalog(&config, era_of(ctx)).await;
        let (items, next) = catalog::page(
            &catalog.resources,
            cursor(request),
            self.state.settings.list_page_size,
        )?;
        let mut result = ListResourcesResult::with_all_items(items);
        result.next_cursor = next;
        Ok(result)
    }

    pub(super) async fn templates_page(
        &self,
        request: &Option<PaginatedRequestParams>,
        ctx: &RequestContext<RoleServer>,
    ) -> Result<ListResourceTemplatesResult, ErrorData> {
        let config = self.config(ctx).await?;
        let catalog = self.catalog(&config, era_of(ctx)).await;
        let (items, next) = catalog::page(
            &catalog.templates,
            cursor(request),
            self.state.settings.list_page_size,
        )?;
        let mut result = ListResourceTemplatesResult::with_all_items(items);
        result.next_cursor = next;
        Ok(result)
    }

    pub(super) async fn prompts_page(
        &self,
        request: &Option<PaginatedRequestParams>,
        ctx: &RequestContext<RoleServer>,
    ) -> Result<ListPromptsResult, ErrorData> {
        let config = self.config(ctx).await?;
        let catalog = self.catalog(&config, era_of(ctx)).await;
        let (items, next) = catalog::page(
            &catalog.prompts,
            cursor(request),
            self.state.settings.list_page_size,
        )?;
        let mut result = ListPromptsResult::with_all_items(items);
        result.next_cursor = next;
        Ok(result)
    }

    /// The upstream that serves `uri`. With one upstream the proxy is transparent (the
    /// upstream answers for URIs it never listed, as it would directly); with several, the
    /// catalog tells, and a URI nobody listed (or templated) is an error naming it.
    async fn resource_upstream<'c>(
        &self,
        config: &'c InstanceConfig,
        uri: &str,
        era: Era,
    ) -> Result<&'c UpstreamConfig, ErrorData> {
        if let [only] = config.upstreams.as_slice() {
            return Ok(only);
        }
        let catalog = self.catalog(config, era).await;
        catalog
            .resource_owner(uri)
            .and_then(|name| config.upstream(name))
            .ok_or_else(|| {
                Refusal::UnknownResource {
                    uri: uri.to_string(),
                    down: catalog.failed.clone(),
                }
                .into()
            })
    }

    /// Where a prompt name goes: by the prefix rule, else by the catalog (`prefix = "never"`).
    async fn prompt_route(
        &self,
        config: &InstanceConfig,
        name: &str,
        era: Era,
    ) -> Result<Route, ErrorData> {
        let unknown = || Refusal::UnknownPrompt(name.to_string()).into();
        match router::route_by_name(config, name) {
            Ok(Some(route)) => Ok(route),
            Ok(None) => self
                .catalog(config, era)
                .await
                .prompt_route(name)
                .cloned()
                .ok_or_else(unknown),
            Err(e) => Err(Refusal::BadPromptName {
                name: name.to_string(),
                message: e.to_string().replacen("tool", "prompt", 1),
            }
            .into()),
        }
    }

    pub(super) async fn read(
        &self,
        mut request: ReadResourceRequestParams,
        ctx: &RequestContext<RoleServer>,
    ) -> Result<ReadResourceResponse, ErrorData> {
        let config = self.config(ctx).await?;
        let upstream = self
            .resource_upstream(&config, &request.uri, era_of(ctx))
            .await?;
        let meta = Self::meta(ctx, request.meta.take());
        let timeout = self.state.settings.call_timeout;
        let downstream = Downstream::of(ctx);
        let what = format!("reading {:?}", request.uri);
        self.on_upstream(upstream, era_of(ctx), &what, |lease| async move {
            let r = lease
                .read_resource(request, meta, timeout, Some(downstream))
                .await;
            (lease, r)
        })
        .await
        .map(|mut response| {
            if let ReadResourceResponse::Complete(r) = &mut response {
                mark_complete(&mut r.result_type, ctx);
            }
            response
        })
    }

    /// Needs a session (2025-11-25): its subscription is recorded so that the upstream's
    /// `resources/updated` for the URI reaches it.
    pub(super) async fn subscribe_uri(
        &self,
        request: SubscribeRequestParams,
        ctx: &RequestContext<RoleServer>,
    ) -> Result<(), ErrorData> {
        let Some(session) = self.session_id() else {
            return Err(Refusal::NeedsSession(
                "resources/subscribe needs a session (protocol 2025-11-25); with 2026-07-28 use subscriptions/listen",
            )
            .into());
        };
        let config = self.config(ctx).await?;
        let upstream = self
            .resource_upstream(&config, &request.uri, Era::Sessions)
            .await?;
        if upstream.connection == ConnectionMode::PerRequest {
            return Err(Refusal::SubscribePerRequest {
                upstream: upstream.name.clone(),
            }
            .into());
        }
        let uri = request.uri.clone();
        let timeout = self.state.settings.call_timeout;
        self.on_upstream(
            upstream,
            Era::Sessions,
            &format!("subscribing to {uri:?}"),
            |lease| async move {
                let r = lease.subscribe(request, timeout).await;
                (lease, r)
            },
        )
        .await?;
        self.state
            .sessions
            .subscribe(&self.instance_id, session, &uri);
        Ok(())
    }

    /// One 2026-07-28 listen stream: registered with the sessions (so `list_changed` and the
    /// updates it asked for reach it) until it ends; the URIs it watches are subscribed on the
    /// shared upstream connections that own them (a `per-request` or `per-session` upstream
    /// keeps no connection for a caller without a session, so its URIs get no updates) and
    /// unsubscribed when nobody else wants them.
    pub(super) async fn listen_stream(
        &self,
        context: rmcp::service::SubscriptionContext,
    ) -> Result<(), ErrorData> {
        let guard = self
            .state
            .sessions
            .listen(self.instance_id.clone(), context.sink().clone());
        let config = self.config(context.request_context()).await?;
        let timeout = self.state.settings.call_timeout;
        let mut watched = Vec::new();
        let uris = context
            .accepted()
            .resource_subscriptions
            .clone()
            .unwrap_or_default();
        for uri in uris {
            let Ok(upstream) = self.resource_upstream(&config, &uri, Era::Stateless).await else {
                continue;
            };
            if upstream.connection != ConnectionMode::Shared {
                continue;
            }
            let params = SubscribeRequestParams::new(uri.clone());
            let subscribed = self
                .on_upstream(
                    upstream,
                    Era::Sessions,
                    &format!("subscribing to {uri:?}"),
                    |lease| async move {
                        let r = lease.subscribe(params, timeout).await;
                        (lease, r)
                    },
                )
                .await;
            match subscribed {
                Ok(()) => watched.push((upstream.clone(), uri)),
                Err(e) => {
                    tracing::warn!(%uri, error = %e.message, "listen: upstream subscription failed")
                }
            }
        }
        tokio::select! {
            _ = context.cancelled() => {}
            _ = self.state.sessions_ct.cancelled() => {}
        }
        drop(guard);
        for (upstream, uri) in watched {
            if self
                .state
                .sessions
                .anyone_subscribed(&self.instance_id, &uri)
            {
                continue;
            }
            let params = UnsubscribeRequestParams::new(uri.clone());
            let _ = self
                .on_upstream(
                    &upstream,
                    Era::Sessions,
                    "unsubscribing",
                    |lease| async move {
                        let r = lease.unsubscribe(params, timeout).await;
                        (lease, r)
                    },
                )
                .await;
        }
        Ok(())
    }

    /// A shared connection keeps its upstream subscription while another session or listener
    /// of the instance still wants the URI.
    pub(super) async fn unsubscribe_uri(
        &self,
        request: UnsubscribeRequestParams,
        ctx: &RequestContext<RoleServer>,
    ) -> Result<(), ErrorData> {
        let Some(session) = self.session_id() else {
            return Err(Refusal::NeedsSession(
                "resources/unsubscribe needs a session (protocol 2025-11-25)",
            )
            .into());
        };
        let sessions = &self.state.sessions;
        sessions.unsubscribe(&self.instance_id, session, &request.uri);
        let others = sessions.anyone_subscribed(&self.instance_id, &request.uri);
        let config = self.config(ctx).await?;
        let upstream = self
            .resource_upstream(&config, &request.uri, Era::Sessions)
            .await?;
        if others && upstream.connection == ConnectionMode::Shared {
            return Ok(());
        }
        let uri = request.uri.clone();
        let timeout = self.state.settings.call_timeout;
        self.on_upstream(
            upstream,
            Era::Sessions,
            &format!("unsubscribing from {uri:?}"),
            |lease| async move {
                let r = lease.unsubscribe(request, timeout).await;
                (lease, r)
            },
        )
        .await
    }

    pub(super) async fn prompt(
        &self,
        mut request: GetPromptRequestParams,
        ctx: &RequestContext<RoleServer>,
    ) -> Result<GetPromptResponse, ErrorData> {
        let config = self.config(ctx).await?;
        let route = self
            .prompt_route(&config, &request.name, era_of(ctx))
            .await?;
        let upstream = config
            .upstream(&route.upstream)
            .ok_or_else(|| Refusal::UnknownPrompt(request.name.clone()))?;
        let exposed = std::mem::replace(&mut request.name, route.tool);
        let meta = Self::meta(ctx, request.meta.take());
        let timeout = self.state.settings.call_timeout;
        let downstream = Downstream::of(ctx);
        self.on_upstream(
            upstream,
            era_of(ctx),
            &format!("getting prompt {exposed:?}"),
            |lease| async move {
                let r = lease
                    .get_prompt(request, meta, timeout, Some(downstream))
                    .await;
                (lease, r)
            },
        )
        .await
        .map(|mut response| {
            if let GetPromptResponse::Complete(r) = &mut response {
                mark_complete(&mut r.result_type, ctx);
            }
            response
        })
    }

    /// Completion of a prompt argument (routed and renamed like the prompt) or of a resource
    /// template argument (routed by who listed the template).
    pub(super) async fn completion(
        &self,
        mut request: CompleteRequestParams,
        ctx: &RequestContext<RoleServer>,
    ) -> Result<CompleteResult, ErrorData> {
        let config = self.config(ctx).await?;
        let upstream = match &mut request.r#ref {
            Reference::Prompt(prompt) => {
                let route = self
                    .prompt_route(&config, &prompt.name, era_of(ctx))
                    .await?;
                prompt.name = route.tool;
                config.upstream(&route.upstream)
            }
            Reference::Resource(template) => {
                if let [only] = config.upstreams.as_slice() {
                    Some(only)
                } else {
                    let owner = self.catalog(&config, era_of(ctx)).await;
                    owner
                        .template_owner(&template.uri)
                        .and_then(|n| config.upstream(n))
                }
            }
            _ => None,
        }
        .ok_or(Refusal::NoCompletionTarget)?;
        let meta = Self::meta(ctx, request.meta.take());
        let timeout = self.state.settings.call_timeout;
        self.on_upstream(
            upstream,
            Era::Sessions,
            "completing an argument",
            |lease| async move {
                let r = lease.complete(request, meta, timeout).await;
                (lease, r)
            },
        )
        .await
        .map(|mut result| {
            mark_complete(&mut result.result_type, ctx);
            result
        })
    }

    /// Records the session's level (the proxy filters what each session hears) and tells the
    /// upstreams that log: a connection this session owns at its level, a shared one at the
    /// most verbose level any session of the instance wants (each is filtered here).
    /// An upstream that fails is logged and skipped: the level still applies to the others.
    pub(super) async fn log_level(
        &self,
        request: SetLevelRequestParams,
        ctx: &RequestContext<RoleServer>,
    ) -> Result<(), ErrorData> {
        if let Some(session) = self.session_id() {
            self.state
                .sessions
                .set_log_level(&self.instance_id, session, request.level);
        }
        let config = self.config(ctx).await?;
        let timeout = self.state.settings.call_timeout;
        let logging = config.upstreams.iter().filter(|u| {
            self.state
                .caches
                .capabilities
                .get(&u.name)
                .is_some_and(|c| c.logging.is_some())
        });
        futures::future::join_all(logging.map(|upstream| {
            let mut params = request.clone();
            if upstream.connection == ConnectionMode::Shared {
                params.level = self.state.sessions.most_verbose_level(&self.instance_id);
            }
            async move {
                let result = self
                    .on_upstream(upstream, Era::Sessions, "setting the log level", |lease| async move {
                        let r = lease.set_level(params, timeout).await;
                        (lease, r)
                    })
                    .await;
                if let Err(e) = result {
                    tracing::warn!(upstream = %upstream.name, error = %e.message, "logging/setLevel not applied upstream");
                }
            }
        }))
        .await;
        Ok(())
    }
}
