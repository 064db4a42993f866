//! A scenario's rules beyond its types: what cannot work is an error that says why, before
//! anything starts. Checked in the order of the file: name and models, `[load]`, `[target]`,
//! `[[upstream]]`, the mix's namespaces, `[[phase]]`.

use std::collections::BTreeSet;

use std::collections::BTreeMap;

use super::{
    CapacityModel, Database, MockKind, Op, PhaseAction, Scenario, TRANSPORT_SSE,
    TRANSPORT_STREAMABLE_HTTP, Upstream,
};

impl Scenario {
    /// Every rule, the first broken one as the error.
    pub(super) fn validate(&self) -> Result<(), String> {
        self.validate_models()?;
        self.validate_load()?;
        self.validate_target()?;
        let names = self.validate_upstreams()?;
        self.validate_namespaces(&names)?;
        self.validate_phases()?;
        self.validate_leaks()
    }

    /// `[leaks]`: the settle window and the rounds.
    fn validate_leaks(&self) -> Result<(), String> {
        let l = &self.leaks;
        if let Some(min) = l.settle_min
            && min > l.settle
        {
            return Err(format!(
                "`leaks.settle_min` ({}) is longer than `leaks.settle` ({}), the longest the settle may last",
                humantime::format_duration(min),
                humantime::format_duration(l.settle)
            ));
        }
        if l.cycles == 0 {
            return Err(
                "`leaks.cycles` must be at least 1 (1: one round, judged by one reading)".into(),
            );
        }
        if l.cycles > 1 {
            if !self.phases.is_empty() {
                return Err(format!(
                    "`leaks.cycles = {}` repeats the load in equal rounds; it cannot be combined with `[[phase]]` (a phase happens once): use cycles = 1, or a scenario without phases",
                    l.cycles
                ));
            }
            let round = self.load.duration / l.cycles;
            if round < std::time::Duration::from_secs(1) {
                return Err(format!(
                    "`leaks.cycles = {}` makes rounds of {} of `load.duration` ({}); a round must last at least 1s",
                    l.cycles,
                    humantime::format_duration(round),
                    humantime::format_duration(self.load.duration)
                ));
            }
        }
        if !(l.rss_noise_mib.is_finite() && l.rss_noise_mib >= 0.0) {
            return Err(format!(
                "`leaks.rss_noise_mib` must be a number ≥ 0, got {}",
                l.rss_noise_mib
            ));
        }
        if !(l.rss_mib.is_finite() && l.rss_mib >= 0.0) {
            return Err(format!(
                "`leaks.rss_mib` must be a number ≥ 0, got {}",
                l.rss_mib
            ));
        }
        Ok(())
    }

    /// `name`, `[capacity]`, `[compare]`.
    fn validate_models(&self) -> Result<(), String> {
        if self.name.trim().is_empty() {
            return Err("`name` is empty".into());
        }
        self.capacity.validate()?;
        if !(self.compare.noise.is_finite() && self.compare.noise >= 0.0) {
            return Err(format!(
                "`compare.noise` must be a share ≥ 0 (0.25 = 25 %), got {}",
                self.compare.noise
            ));
        }
        Ok(())
    }

    /// `[load]`: the model, the durations, the mix and its arguments, the protocol eras.
    fn validate_load(&self) -> Result<(), String> {
        let load = &self.load;
        match (load.users, load.rate) {
            (Some(0), _) => return Err("`load.users` must be at least 1".into()),
            (_, Some(r)) if !(r.is_finite() && r > 0.0) => {
                return Err(format!("`load.rate` must be a positive number, got {r}"));
            }
            (None, None) => {
                return Err("`load` needs `users = N` (closed model) or `rate = N` (open model, per second)".into());
            }
            _ => {}
        }
        if load.warmup.is_zero() {
            return Err("`load.warmup` must be longer than 0s: a baseline taken before any request counts every connection the target opens lazily as a leak (e.g. warmup = \"2s\")".into());
        }
        if load.duration.is_zero() {
            return Err("`load.duration` must be longer than 0s".into());
        }
        if load.mix.is_empty() {
            return Err(
                "`load.mix` is empty: say what users do, e.g. { \"tools/list\" = 1 }".into(),
            );
        }
        for (key, weight) in &load.mix {
            if Op::parse(key).is_none() {
                return Err(format!(
                    "`load.mix` entry \"{key}\": expected \"tools/list\", \"ping\" or \"tools/call NAME\""
                ));
            }
            if *weight == 0 {
                return Err(format!(
                    "`load.mix` entry \"{key}\": weight must be at least 1"
                ));
            }
        }
        for key in &load.expect_errors {
            if !load.mix.contains_key(key) {
                return Err(format!(
                    "`load.expect_errors` entry \"{key}\" is not in `load.mix`"
                ));
            }
        }
        for (tool, args) in &load.arguments {
            if !args.is_table() {
                return Err(format!(
                    "`load.arguments.{tool}` must be a table of the tool's arguments"
                ));
            }
        }
        if load.request_timeout.is_zero() {
            return Err("`load.request_timeout` must be longer than 0s".into());
        }
        let t = &load.timeouts;
        for (name, value) in [
            ("initialize", t.initialize),
            ("call", t.call),
            ("list", t.list),
            ("ping", t.ping),
            ("delete", t.delete),
        ] {
            if value.is_some_and(|d| d.is_zero()) {
                return Err(format!(
                    "`load.timeouts.{name}` must be longer than 0s (omit it to use `load.request_timeout`)"
                ));
            }
        }
        for (era, weight) in &load.protocols {
            if *weight == 0 {
                return Err(format!(
                    "`load.protocols` entry \"{}\": share must be at least 1",
                    era.as_str()
                ));
            }
        }
        Ok(())
    }

    /// `[target]`: replicas and database, and what applies to the bundled proxy or to an external one.
    fn validate_target(&self) -> Result<(), String> {
        let t = &self.target;
        if t.replicas == 0 {
            return Err("`target.replicas` must be at least 1".into());
        }
        for (field, name) in [
            ("sessions", &t.metrics.sessions),
            ("tasks", &t.metrics.tasks),
            ("upstream_connections", &t.metrics.upstream_connections),
        ] {
            if let Some(n) = name {
                crate::report::selector::Selector::parse(n)
                    .map_err(|e| format!("`target.metrics.{field}` {e}"))?;
            }
        }
        if let Some(w) = self.leaks.expect_reaped_within
            && (w.is_zero() || w > std::time::Duration::from_secs(3600))
        {
            return Err(format!(
                "`leaks.expect_reaped_within` must be between 1ms and 1h, got {}",
                humantime::format_duration(w)
            ));
        }
        if !self.bundled()
            && (t.replicas != 1 || t.database != Database::Sqlite || t.database_url.is_some())
        {
            return Err("`target.replicas`/`target.database`/`target.database_url` apply to the bundled proxy only, not to `target.url`/`target.command`".into());
        }
        if t.replicas > 1 && t.database != Database::Postgres {
            return Err(format!(
                "`target.replicas = {}` needs `database = \"postgres\"`: replicas share one store, and a SQLite file is one process's",
                t.replicas
            ));
        }
        if let Some(url) = &t.database_url {
            if t.database != Database::Postgres {
                return Err("`target.database_url` needs `database = \"postgres\"`".into());
            }
            if !(url.starts_with("postgres://") || url.starts_with("postgresql://")) {
                return Err(format!(
                    "`target.database_url` \"{url}\" is not a postgres:// URL"
                ));
            }
        }
        self.validate_secrets()?;
        if !self.started()
            && (!t.env.is_empty()
                || t.cwd.is_some()
                || t.config_template.is_some()
                || t.ready_url.is_some())
        {
            return Err("`target.env`/`target.cwd`/`target.config_template`/`target.ready_url` apply to a started target (`target.command` or `target.stdio`) only".into());
        }
        if self.bundled() {
            if t.pid.is_some() || t.pid_file.is_some() {
                return Err("`target.pid`/`target.pid_file` need `target.url` (an external target); the bundled proxy's PID is known".into());
            }
            if self.upstreams.is_empty() {
                return Err("no `[[upstream]]`: the bundled proxy needs at least one (or set `target.url` to measure an external endpoint)".into());
            }
            if !["auto", "always", "never"].contains(&t.prefix.as_str()) {
                return Err(format!(
                    "`target.prefix` \"{}\": expected \"auto\", \"always\" or \"never\"",
                    t.prefix
                ));
            }
        } else if self.started() {
            self.validate_started()?;
        } else {
            let url = t.url.as_deref().unwrap_or_default();
            if !(url.starts_with("http://") || url.starts_with("https://")) {
                return Err(format!("`target.url` \"{url}\" is not an http(s) URL"));
            }
            if !self.upstreams.is_empty() {
                return Err("`[[upstream]]` entries are only started for the bundled proxy; with `target.url` the target brings its own (or start it with `target.command`, which reaches the mocks through `{{upstream.NAME.url}}`)".into());
            }
            if !t.proxy_args.is_empty() || t.listen.is_some() {
                return Err("`target.proxy_args`/`target.listen` apply to the bundled proxy only, not to `target.url`".into());
            }
            if t.pid.is_some() && t.pid_file.is_some() {
                return Err("set `target.pid` or `target.pid_file`, not both".into());
            }
        }
        Ok(())
    }

    /// `target.secrets`: the bundled proxy's only, names the proxy's templates can name, values
    /// never repeated in an error.
    fn validate_secrets(&self) -> Result<(), String> {
        let secrets = &self.target.secrets;
        if secrets.is_empty() {
            return Ok(());
        }
        if !self.bundled() {
            return Err("`target.secrets` go into the bundled proxy's seed (`[instance.secrets]`); a `target.url`/`target.command`/`target.stdio` target holds its own credentials".into());
        }
        for (name, value) in secrets.expose() {
            if !secret_name(name) {
                return Err(format!(
                    "`target.secrets.{name}`: a secret's name is [A-Za-z_][A-Za-z0-9_]* (at most 128 characters), as `${{NAME}}` in a template names it"
                ));
            }
            if value.is_empty() {
                return Err(format!("`target.secrets.{name}` is empty"));
            }
        }
        Ok(())
    }

    /// `[target]` with `command` (a target the harness starts): its URL, what it excludes, and
    /// every placeholder of its texts (the config template's are checked when it is read).
    fn validate_started(&self) -> Result<(), String> {
        let t = &self.target;
        if t.pid.is_some() || t.pid_file.is_some() {
            return Err("`target.pid`/`target.pid_file` cannot be set with `target.command`/`target.stdio`: the harness starts the target and knows its PID".into());
        }
        if !t.proxy_args.is_empty() || t.listen.is_some() {
            return Err("`target.proxy_args`/`target.listen` apply to the bundled proxy only; with `target.command` put the flags in the command and use `{{port}}`".into());
        }
        let check = |what: &str, text: &str| super::placeholders::check(self, what, text);
        for (k, v) in &t.env {
            check(&format!("`target.env.{k}`"), v)?;
        }
        if let Some(argv) = &t.stdio {
            return self.validate_stdio(argv);
        }
        let command = t.command.as_deref().unwrap_or_default();
        if command.first().is_none_or(|c| c.trim().is_empty()) {
            return Err("`target.command` is empty: give the program and its arguments, e.g. [\"node\", \"dist/index.js\", \"--port\", \"{{port}}\"]".into());
        }
        let Some(url) = &t.url else {
            return Err("`target.command` needs `target.url`, its MCP endpoint (e.g. \"http://127.0.0.1:{{port}}/mcp\")".into());
        };
        for (i, arg) in command.iter().enumerate() {
            check(&format!("`target.command[{i}]`"), arg)?;
        }
        check("`target.url`", url)?;
        if let Some(r) = &t.ready_url {
            check("`target.ready_url`", r)?;
        }
        if let Some(m) = &t.metrics_url {
            check("`target.metrics_url`", m)?;
        }
        for (what, u) in [("url", Some(url)), ("ready_url", t.ready_url.as_ref())] {
            if let Some(u) = u
                && !(u.starts_with("http://") || u.starts_with("https://"))
            {
                return Err(format!("`target.{what}` \"{u}\" is not an http(s) URL"));
            }
        }
        Ok(())
    }

    /// `[target]` with `stdio` (a stdio server the harness runs and talks to itself): its argv
    /// and its placeholders; nothing that belongs to an HTTP target.
    fn validate_stdio(&self, argv: &[String]) -> Result<(), String> {
        let t = &self.target;
        if t.command.is_some() {
            return Err("set `target.command` (a server you reach over HTTP) or `target.stdio` (a stdio server the harness talks to), not both".into());
        }
        if argv.first().is_none_or(|c| c.trim().is_empty()) {
            return Err("`target.stdio` is empty: give the program and its arguments, e.g. [\"node\", \"dist/server.js\"]".into());
        }
        if t.url.is_some() || t.ready_url.is_some() || t.metrics_url.is_some() {
            return Err("`target.url`/`target.ready_url`/`target.metrics_url` do not apply to `target.stdio`: the harness is the server's client over its stdin and stdout (it is ready when it answers `initialize`)".into());
        }
        if !t.headers.is_empty() {
            return Err("`target.headers` do not apply to `target.stdio`: nothing goes over HTTP to a stdio server".into());
        }
        for (i, arg) in argv.iter().enumerate() {
            super::placeholders::check(self, &format!("`target.stdio[{i}]`"), arg)?;
        }
        Ok(())
    }

    /// `[[upstream]]`: names (unique slugs), connection modes, stateless mocks; returns the names.
    fn validate_upstreams(&self) -> Result<BTreeSet<&str>, String> {
        let slug = |s: &str| {
            !s.is_empty()
                && s.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        };
        let mut names = BTreeSet::new();
        for u in &self.upstreams {
            if !slug(&u.name) {
                return Err(format!(
                    "`upstream.name` \"{}\" must be a slug of [a-z0-9-]",
                    u.name
                ));
            }
            if !names.insert(u.name.as_str()) {
                return Err(format!("upstream \"{}\" is defined twice", u.name));
            }
            if !["shared", "per-request", "per-session"].contains(&u.connection.as_str()) {
                return Err(format!(
                    "upstream \"{}\": `connection` \"{}\": expected \"shared\", \"per-request\" or \"per-session\"",
                    u.name, u.connection
                ));
            }
            if u.mock == MockKind::Stdio && (u.stateless || u.tls) {
                return Err(format!(
                    "upstream \"{}\": `stateless` and `tls` apply to `mock = \"serve\"` only",
                    u.name
                ));
            }
            Self::validate_transport(u)?;
            self.validate_credentials(u)?;
        }
        Ok(names)
    }

    /// An upstream's `transport`: `"streamable-http"` or `"sse"`, for `mock = "serve"` only
    /// (a stdio mock's transport is stdio); `sse` is sessionful (not `stateless`).
    fn validate_transport(u: &Upstream) -> Result<(), String> {
        let Some(transport) = &u.transport else {
            return Ok(());
        };
        let which = format!("upstream \"{}\"", u.name);
        if ![TRANSPORT_STREAMABLE_HTTP, TRANSPORT_SSE].contains(&transport.as_str()) {
            return Err(format!(
                "{which}: `transport` \"{transport}\": expected \"{TRANSPORT_STREAMABLE_HTTP}\" or \"{TRANSPORT_SSE}\" (2024-11-05 HTTP+SSE)"
            ));
        }
        if u.mock != MockKind::Serve {
            return Err(format!(
                "{which}: `transport = \"{transport}\"` applies to `mock = \"serve\"` only (a stdio mock is reached over stdio)"
            ));
        }
        if u.sse() && u.stateless {
            return Err(format!(
                "{which}: `stateless` does not apply to `transport = \"{TRANSPORT_SSE}\"` (an HTTP+SSE session lives as long as its event stream)"
            ));
        }
        Ok(())
    }

    /// An upstream's `require_header` (what its mock asks for) and `headers` (what the bundled
    /// proxy sends it): HTTP mocks only, well-formed, every `${NAME}` in `target.secrets`.
    /// An error names the upstream and the field, never a value.
    fn validate_credentials(&self, u: &Upstream) -> Result<(), String> {
        let which = format!("upstream \"{}\"", u.name);
        if let Some(spec) = &u.require_header {
            if u.mock != MockKind::Serve {
                return Err(format!(
                    "{which}: `require_header` applies to `mock = \"serve\"` only (a stdio mock gets no HTTP request to check)"
                ));
            }
            let expected = "expects \"Name: value\" (e.g. \"Authorization: Bearer abc\")";
            let Some((name, value)) = spec.expose().split_once(':') else {
                return Err(format!("{which}: `require_header` {expected}: no `:`"));
            };
            if !header_name(name.trim()) {
                return Err(format!(
                    "{which}: `require_header` {expected}: `{}` is not a header name",
                    name.trim()
                ));
            }
            if value.trim().is_empty() || !header_value(value) {
                return Err(format!(
                    "{which}: `require_header` {expected}: the value is empty or holds a character a header cannot carry"
                ));
            }
        }
        if u.headers.is_empty() {
            return Ok(());
        }
        if u.mock != MockKind::Serve {
            return Err(format!(
                "{which}: `headers` apply to HTTP upstreams (`mock = \"serve\"`) only"
            ));
        }
        if !self.bundled() {
            return Err(format!(
                "{which}: `headers` go into the bundled proxy's seed; a `target.command` target sends its upstreams what its own config says"
            ));
        }
        let secrets = self.target.secrets.expose();
        for (name, template) in &u.headers {
            let field = format!("{which}: `headers.{name}`");
            if !header_name(name) {
                return Err(format!("{field}: `{name}` is not a header name"));
            }
            for needed in template_names(template).map_err(|e| format!("{field}: {e}"))? {
                if !secrets.contains_key(needed) {
                    return Err(format!(
                        "{field} uses `${{{needed}}}`, which `target.secrets` does not define"
                    ));
                }
            }
            if !header_value(&render(template, secrets)) {
                return Err(format!(
                    "{field}: its value (with `target.secrets`) holds a character a header cannot carry"
                ));
            }
        }
        Ok(())
    }

    /// With more than one upstream (or `prefix = "always"`), a call to a namespace nobody defines can never succeed.
    fn validate_namespaces(&self, names: &BTreeSet<&str>) -> Result<(), String> {
        let t = &self.target;
        // With more than one upstream (or prefix = "always"), tool names carry their
        // upstream's namespace: a call to a namespace nobody defines can never succeed.
        let prefixed = self.bundled()
            && (t.prefix == "always" || (t.prefix == "auto" && self.upstreams.len() > 1));
        if prefixed {
            for (op, _) in self.ops() {
                if let Op::Call(name) = op {
                    let Some((ns, _)) = name.split_once("__") else {
                        return Err(format!(
                            "`load.mix` entry \"tools/call {name}\": with several upstreams tool names are `UPSTREAM__TOOL`"
                        ));
                    };
                    if !names.contains(ns) {
                        return Err(format!(
                            "`load.mix` entry \"tools/call {name}\" names upstream \"{ns}\", which no `[[upstream]]` defines"
                        ));
                    }
                }
            }
        }
        Ok(())
    }

    /// `[[phase]]`: in the load, with what each action needs; one SIGTERM at most.
    fn validate_phases(&self) -> Result<(), String> {
        let (load, t) = (&self.load, &self.target);
        for (i, p) in self.phases.iter().enumerate() {
            let which = format!(
                "`phase` #{} (at {})",
                i + 1,
                humantime::format_duration(p.at)
            );
            if p.at >= load.duration {
                return Err(format!(
                    "{which} starts after the load ends ({})",
                    humantime::format_duration(load.duration)
                ));
            }
            match p.action {
                PhaseAction::Faults => {
                    let Some(name) = &p.upstream else {
                        return Err(format!("{which}: `upstream` is missing"));
                    };
                    let Some(u) = self.upstreams.iter().find(|u| &u.name == name) else {
                        return Err(format!(
                            "{which}: upstream \"{name}\" is not defined by any `[[upstream]]`"
                        ));
                    };
                    if u.mock != MockKind::Serve {
                        return Err(format!(
                            "{which}: upstream \"{name}\" is a stdio mock; only `mock = \"serve\"` can switch faults at run time"
                        ));
                    }
                    if p.faults.is_none() && p.latency.is_none() {
                        return Err(format!("{which}: set `faults` and/or `latency`"));
                    }
                }
                PhaseAction::RollingRestart | PhaseAction::DbRestart | PhaseAction::RevokeKey => {
                    let action = p.action.as_str();
                    if !self.bundled() {
                        return Err(format!(
                            "{which}: `action = \"{action}\"` needs the bundled proxy (no `target.url`)"
                        ));
                    }
                    if p.upstream.is_some() || p.faults.is_some() || p.latency.is_some() {
                        return Err(format!(
                            "{which}: `action = \"{action}\"` takes no upstream, faults or latency"
                        ));
                    }
                    if p.action == PhaseAction::DbRestart
                        && (t.database != Database::Postgres || t.database_url.is_some())
                    {
                        return Err(format!(
                            "{which}: `action = \"db-restart\"` restarts the harness's own PostgreSQL: set `database = \"postgres\"` without `database_url`"
                        ));
                    }
                }
                PhaseAction::Sigterm => {
                    if t.replicas > 1 {
                        return Err(format!(
                            "{which}: `action = \"sigterm\"` stops one target; with replicas use `action = \"rolling-restart\"`"
                        ));
                    }
                    if !self.bundled() && !self.started() && t.pid.is_none() && t.pid_file.is_none()
                    {
                        return Err(format!(
                            "{which}: `action = \"sigterm\"` needs the target's PID"
                        ));
                    }
                    if p.upstream.is_some() || p.faults.is_some() || p.latency.is_some() {
                        return Err(format!(
                            "{which}: `action = \"sigterm\"` takes no upstream, faults or latency"
                        ));
                    }
                }
            }
        }
        if self
            .phases
            .iter()
            .filter(|p| p.action == PhaseAction::Sigterm)
            .count()
            > 1
        {
            return Err("only one `action = \"sigterm\"` phase per scenario".into());
        }
        Ok(())
    }
}

impl CapacityModel {
    fn validate(&self) -> Result<(), String> {
        let positive = |name: &str, v: f64| {
            if v.is_finite() && v > 0.0 {
                Ok(())
            } else {
                Err(format!(
                    "`capacity.{name}` must be a positive number, got {v}"
                ))
            }
        };
        if let Some(r) = self.target_rate {
            positive("target_rate", r)?;
        }
        positive("vcpus", self.vcpus)?;
        positive("concurrency", self.concurrency.into())?;
        positive("max_instances", self.max_instances.into())?;
        if !(self.utilisation > 0.0 && self.utilisation <= 1.0) {
            return Err(format!(
                "`capacity.utilisation` must be in (0, 1], got {}",
                self.utilisation
            ));
        }
        if self.min_instances > self.max_instances {
            return Err(format!(
                "`capacity.min_instances` ({}) is more than `max_instances` ({})",
                self.min_instances, self.max_instances
            ));
        }
        for (name, v) in [
            ("vcpu_second_usd", self.vcpu_second_usd),
            ("db_read_usd", self.db_read_usd),
            ("db_write_usd", self.db_write_usd),
        ] {
            if !(v.is_finite() && v >= 0.0) {
                return Err(format!("`capacity.{name}` must be a price ≥ 0, got {v}"));
            }
        }
        Ok(())
    }
}

/// A secret's name as the bundled proxy's templates name it: `[A-Za-z_][A-Za-z0-9_]*`, at most
/// 128 bytes.
fn secret_name(name: &str) -> bool {
    let mut bytes = name.bytes();
    matches!(bytes.next(), Some(b) if b.is_ascii_alphabetic() || b == b'_')
        && bytes.all(|b| b.is_ascii_alphanumeric() || b == b'_')
        && name.len() <= 128
}

/// An HTTP header name: a non-empty token (RFC 9110).
fn header_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

/// An HTTP header value: no control character but a tab.
fn header_value(value: &str) -> bool {
    !value.chars().any(|c| c.is_control() && c != '\t')
}

/// One piece of a `${NAME}` template (the bundled proxy's syntax: `$$` is a `$`, any other `$`
/// is itself).
enum Part<'t> {
    Text(&'t str),
    Name(&'t str),
}

fn parts(template: &str) -> Result<Vec<Part<'_>>, String> {
    let mut parts = Vec::new();
    let mut rest = template;
    while let Some(at) = rest.find('$') {
        parts.push(Part::Text(&rest[..at]));
        let after = &rest[at + 1..];
        if let Some(after) = after.strip_prefix('$') {
            parts.push(Part::Text("$"));
            rest = after;
        } else if let Some(inner) = after.strip_prefix('{') {
            let Some(end) = inner.find('}') else {
                return Err("unclosed `${`".into());
            };
            let name = &inner[..end];
            if !secret_name(name) {
                return Err(format!(
                    "`${{{name}}}`: a name is [A-Za-z_][A-Za-z0-9_]* (at most 128 characters)"
                ));
            }
            parts.push(Part::Name(name));
            rest = &inner[end + 1..];
        } else {
            parts.push(Part::Text("$"));
            rest = after;
        }
    }
    parts.push(Part::Text(rest));
    Ok(parts)
}

/// The `${NAME}`s a template uses, in order.
fn template_names(template: &str) -> Result<Vec<&str>, String> {
    Ok(parts(template)?
        .into_iter()
        .filter_map(|p| match p {
            Part::Name(n) => Some(n),
            Part::Text(_) => None,
        })
        .collect())
}

/// A checked template with its `${NAME}`s replaced (an unknown one by nothing).
fn render(template: &str, secrets: &BTreeMap<String, String>) -> String {
    parts(template)
        .unwrap_or_default()
        .into_iter()
        .map(|p| match p {
            Part::Text(t) => t,
            Part::Name(n) => secrets.get(n).map_or("", String::as_str),
        })
        .collect()
}
