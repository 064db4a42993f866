//! Fault specs (SPEC contract): `NAME[:ARG][@PROBABILITY]`, e.g. `hang-call`, `crash-after:5`,
//! `disconnect-mid-call@0.2`, `list-changed-every:500ms`. Parsing errors name the problem.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

/// What a fault does. See the crate docs for the behaviour of each.
#[derive(Debug, Clone, PartialEq)]
pub enum FaultKind {
    /// The port is closed: connections are refused (with a probability below 1: accepted and
    /// reset at once).
    Refuse,
    /// HTTP 500 with a body on `initialize` / `server/discover` (stdio: a JSON-RPC error).
    InitError,
    /// 200 with invalid JSON (`init-garbage`) or a wrong JSON-RPC id (`init-garbage:wrong-id`)
    /// on `initialize` / `server/discover`.
    InitGarbage { wrong_id: bool },
    /// TCP accepted, nothing ever read or written.
    HangAccept,
    /// `initialize` / `server/discover` read, never answered.
    HangInitialize,
    /// `tools/call` never answered; everything else works.
    HangCall,
    /// `tools/call`: the connection is cut after the response headers, mid-stream.
    DisconnectMidCall,
    /// After N requests: stdio exits (status 3); HTTP stops serving.
    CrashAfter(u64),
    /// A session's requests get 404 after N `tools/call`s on it (the re-initialize signal).
    ExpireSessionAfter(u64),
    /// Responses are written one byte at a time, `per_byte` apart.
    SlowDrip { per_byte: Duration },
    /// Every session gets `notifications/tools/list_changed` on this period.
    ListChangedEvery(Duration),
}

impl FaultKind {
    /// The fault's name as written in a spec (`hang-call`).
    pub fn name(&self) -> &'static str {
        match self {
            Self::Refuse => "refuse",
            Self::InitError => "init-error",
            Self::InitGarbage { .. } => "init-garbage",
            Self::HangAccept => "hang-accept",
            Self::HangInitialize => "hang-initialize",
            Self::HangCall => "hang-call",
            Self::DisconnectMidCall => "disconnect-mid-call",
            Self::CrashAfter(_) => "crash-after",
            Self::ExpireSessionAfter(_) => "expire-session-after",
            Self::SlowDrip { .. } => "slow-drip",
            Self::ListChangedEvery(_) => "list-changed-every",
        }
    }
}

/// A fault and how often it fires (1.0 = always).
#[derive(Debug, Clone, PartialEq)]
pub struct Fault {
    pub kind: FaultKind,
    pub probability: f64,
}

/// A spec that does not parse; the message says which part is wrong and what was expected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid fault {spec:?}: {message}")]
pub struct FaultParseError {
    pub spec: String,
    pub message: String,
}

pub const FAULT_NAMES: &[&str] = &[
    "refuse",
    "init-error",
    "init-garbage[:wrong-id]",
    "hang-accept",
    "hang-initialize",
    "hang-call",
    "disconnect-mid-call",
    "crash-after:N",
    "expire-session-after:N",
    "slow-drip[:DURATION]",
    "list-changed-every:DURATION",
];

impl FromStr for Fault {
    type Err = FaultParseError;

    fn from_str(spec: &str) -> Result<Fault, FaultParseError> {
        let err = |message: String| FaultParseError {
            spec: spec.to_string(),
            message,
        };
        let (body, probability) = match spec.rsplit_once('@') {
            Some((body, p)) => {
                let p: f64 = p
                    .parse()
                    .map_err(|_| err(format!("probability {p:?} is not a number")))?;
                if !(p > 0.0 && p <= 1.0) {
                    return Err(err(format!("probability {p} must be in (0, 1]")));
                }
                (body, p)
            }
            None => (spec, 1.0),
        };
        let (name, arg) = match body.split_once(':') {
            Some((name, arg)) => (name, Some(arg)),
            None => (body, None),
        };
        let count = |arg: Option<&str>| -> Result<u64, FaultParseError> {
            let arg = arg.ok_or_else(|| err(format!("{name} needs a count, e.g. {name}:5")))?;
            arg.parse::<u64>()
                .map_err(|_| err(format!("count {arg:?} is not a whole number")))
        };
        let duration = |arg: &str| -> Result<Duration, FaultParseError> {
            humantime::parse_duration(arg)
                .map_err(|e| err(format!("duration {arg:?}: {e} (e.g. 500ms, 2s)")))
        };
        let no_arg = |kind: FaultKind| match arg {
            None => Ok(kind),
            Some(a) => Err(err(format!("{name} takes no argument (got {a:?})"))),
        };
        let kind = match name {
            "refuse" => no_arg(FaultKind::Refuse)?,
            "init-error" => no_arg(FaultKind::InitError)?,
            "init-garbage" => match arg {
                None => FaultKind::InitGarbage { wrong_id: false },
                Some("wrong-id") => FaultKind::InitGarbage { wrong_id: true },
                Some(a) => {
                    return Err(err(format!(
                        "init-garbage takes `wrong-id` or nothing (got {a:?})"
                    )));
                }
            },
            "hang-accept" => no_arg(FaultKind::HangAccept)?,
            "hang-initialize" => no_arg(FaultKind::HangInitialize)?,
            "hang-call" => no_arg(FaultKind::HangCall)?,
            "disconnect-mid-call" => no_arg(FaultKind::DisconnectMidCall)?,
            "crash-after" => FaultKind::CrashAfter(count(arg)?),
            "expire-session-after" => FaultKind::ExpireSessionAfter(count(arg)?),
            "slow-drip" => FaultKind::SlowDrip {
                per_byte: match arg {
                    Some(a) => duration(a)?,
                    None => Duration::from_millis(1),
                },
            },
            "list-changed-every" => {
                let a = arg.ok_or_else(|| {
                    err("list-changed-every needs a period, e.g. list-changed-every:500ms".into())
                })?;
                let d = duration(a)?;
                if d.is_zero() {
                    return Err(err("the period must be above zero".into()));
                }
                FaultKind::ListChangedEvery(d)
            }
            other => {
                return Err(err(format!(
                    "unknown fault {other:?} (known: {})",
                    FAULT_NAMES.join(", ")
                )));
            }
        };
        Ok(Fault { kind, probability })
    }
}

impl fmt::Display for Fault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.kind.name())?;
        match &self.kind {
            FaultKind::InitGarbage { wrong_id: true } => f.write_str(":wrong-id")?,
            FaultKind::CrashAfter(n) | FaultKind::ExpireSessionAfter(n) => write!(f, ":{n}")?,
            FaultKind::SlowDrip { per_byte } => {
                write!(f, ":{}", humantime::format_duration(*per_byte))?
            }
            FaultKind::ListChangedEvery(d) => write!(f, ":{}", humantime::format_duration(*d))?,
            _ => {}
        }
        if self.probability < 1.0 {
            write!(f, "@{}", self.probability)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_round_trips_every_fault() {
        for spec in [
            "refuse",
            "init-error",
            "init-garbage",
            "init-garbage:wrong-id",
            "hang-accept",
            "hang-initialize",
            "hang-call@0.5",
            "disconnect-mid-call@0.2",
            "crash-after:3",
            "expire-session-after:10",
            "slow-drip:2ms",
            "list-changed-every:500ms",
        ] {
            let fault: Fault = spec.parse().unwrap();
            assert_eq!(fault.to_string(), spec);
        }
        assert_eq!(
            "slow-drip".parse::<Fault>().unwrap().kind,
            FaultKind::SlowDrip {
                per_byte: Duration::from_millis(1)
            }
        );
    }

    #[test]
    fn bad_specs_say_what_is_wrong() {
        let e = |s: &str| s.parse::<Fault>().unwrap_err().to_string();
        assert!(e("explode").contains("unknown fault"));
        assert!(e("hang-call@2").contains("must be in (0, 1]"));
        assert!(e("hang-call@often").contains("not a number"));
        assert!(e("crash-after").contains("needs a count"));
        assert!(e("crash-after:x").contains("not a whole number"));
        assert!(e("list-changed-every:soon").contains("duration"));
        assert!(e("list-changed-every:0s").contains("above zero"));
        assert!(e("refuse:1").contains("takes no argument"));
    }
}
