//! Latency distributions (SPEC contract): `fixed:5ms`, `uniform:1ms..20ms`,
//! `lognormal:median=20ms,p99=200ms`; applied to every tool, or to one with `TOOL=SPEC`.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use rand::RngExt;

/// One latency distribution.
#[derive(Debug, Clone, PartialEq)]
pub enum Distribution {
    Fixed(Duration),
    Uniform(Duration, Duration),
    /// Log-normal with the given median and 99th percentile.
    LogNormal {
        median: Duration,
        p99: Duration,
    },
}

/// z of the 99th percentile of the standard normal distribution.
const Z_99: f64 = 2.326_347_874_040_841;

impl Distribution {
    /// A sample from the distribution.
    pub fn sample(&self, rng: &mut impl rand::Rng) -> Duration {
        match *self {
            Self::Fixed(d) => d,
            Self::Uniform(lo, hi) => {
                if hi <= lo {
                    lo
                } else {
                    Duration::from_secs_f64(rng.random_range(lo.as_secs_f64()..hi.as_secs_f64()))
                }
            }
            Self::LogNormal { median, p99 } => {
                let mu = median.as_secs_f64().ln();
                let sigma = (p99.as_secs_f64() / median.as_secs_f64()).ln() / Z_99;
                // Box-Muller: a standard normal from two uniforms.
                let u1: f64 = 1.0 - rng.random::<f64>();
                let u2: f64 = rng.random::<f64>();
                let z = (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos();
                Duration::from_secs_f64((mu + sigma * z).exp().min(600.0))
            }
        }
    }
}

fn duration(s: &str, spec: &str) -> Result<Duration, String> {
    humantime::parse_duration(s.trim())
        .map_err(|e| format!("invalid latency {spec:?}: duration {s:?}: {e}"))
}

impl FromStr for Distribution {
    type Err = String;
    fn from_str(spec: &str) -> Result<Self, String> {
        let (kind, args) = spec
            .split_once(':')
            .ok_or_else(|| format!("invalid latency {spec:?}: expected fixed:D, uniform:D..D or lognormal:median=D,p99=D"))?;
        match kind {
            "fixed" => Ok(Self::Fixed(duration(args, spec)?)),
            "uniform" => {
                let (lo, hi) = args
                    .split_once("..")
                    .ok_or_else(|| format!("invalid latency {spec:?}: uniform needs LOW..HIGH"))?;
                let (lo, hi) = (duration(lo, spec)?, duration(hi, spec)?);
                if hi < lo {
                    return Err(format!(
                        "invalid latency {spec:?}: LOW must not exceed HIGH"
                    ));
                }
                Ok(Self::Uniform(lo, hi))
            }
            "lognormal" => {
                let mut median = None;
                let mut p99 = None;
                for part in args.split(',') {
                    match part.split_once('=') {
                        Some(("median", d)) => median = Some(duration(d, spec)?),
                        Some(("p99", d)) => p99 = Some(duration(d, spec)?),
                        _ => {
                            return Err(format!(
                                "invalid latency {spec:?}: expected median=D,p99=D"
                            ));
                        }
                    }
                }
                let (Some(median), Some(p99)) = (median, p99) else {
                    return Err(format!(
                        "invalid latency {spec:?}: lognormal needs median= and p99="
                    ));
                };
                if median.is_zero() || p99 < median {
                    return Err(format!("invalid latency {spec:?}: needs 0 < median <= p99"));
                }
                Ok(Self::LogNormal { median, p99 })
            }
            other => Err(format!(
                "invalid latency {spec:?}: unknown distribution {other:?} (fixed, uniform, lognormal)"
            )),
        }
    }
}

impl fmt::Display for Distribution {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let h = humantime::format_duration;
        match *self {
            Self::Fixed(d) => write!(f, "fixed:{}", h(d)),
            Self::Uniform(lo, hi) => write!(f, "uniform:{}..{}", h(lo), h(hi)),
            Self::LogNormal { median, p99 } => {
                write!(f, "lognormal:median={},p99={}", h(median), h(p99))
            }
        }
    }
}

/// Latency of every tool (`default`) and of named tools (`per_tool`, which wins).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Latency {
    pub default: Option<Distribution>,
    pub per_tool: BTreeMap<String, Distribution>,
}

impl Latency {
    /// Parses `SPEC` (every tool) and `TOOL=SPEC` entries.
    pub fn parse<S: AsRef<str>>(specs: &[S]) -> Result<Latency, String> {
        let mut latency = Latency::default();
        for spec in specs {
            let spec = spec.as_ref();
            match spec.split_once('=') {
                Some((tool, dist)) if !tool.contains(':') => {
                    latency.per_tool.insert(tool.to_string(), dist.parse()?);
                }
                _ => latency.default = Some(spec.parse()?),
            }
        }
        Ok(latency)
    }

    pub fn for_tool(&self, tool: &str) -> Option<&Distribution> {
        self.per_tool.get(tool).or(self.default.as_ref())
    }

    /// The entries, as `parse` accepts them.
    pub fn specs(&self) -> Vec<String> {
        let mut out: Vec<String> = self.default.iter().map(|d| d.to_string()).collect();
        out.extend(self.per_tool.iter().map(|(t, d)| format!("{t}={d}")));
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn parses_the_three_distributions_and_per_tool_entries() {
        let l = Latency::parse(&[
            "fixed:5ms",
            "sleep=uniform:1ms..20ms",
            "add=lognormal:median=20ms,p99=200ms",
        ])
        .unwrap();
        assert_eq!(
            l.for_tool("echo"),
            Some(&Distribution::Fixed(Duration::from_millis(5)))
        );
        assert!(matches!(
            l.for_tool("sleep"),
            Some(Distribution::Uniform(..))
        ));
        assert_eq!(Latency::parse(&l.specs()).unwrap(), l);
    }

    #[test]
    fn lognormal_hits_its_median_and_p99() {
        let d: Distribution = "lognormal:median=20ms,p99=200ms".parse().unwrap();
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        let mut samples: Vec<f64> = (0..20_000)
            .map(|_| d.sample(&mut rng).as_secs_f64())
            .collect();
        samples.sort_by(f64::total_cmp);
        let median = samples[samples.len() / 2];
        let p99 = samples[samples.len() * 99 / 100];
        assert!((0.018..0.022).contains(&median), "median {median}");
        assert!((0.17..0.23).contains(&p99), "p99 {p99}");
    }

    #[test]
    fn bad_latency_names_the_problem() {
        let e = |s: &str| Latency::parse(&[s]).unwrap_err();
        assert!(e("gaussian:5ms").contains("unknown distribution"));
        assert!(e("fixed:soon").contains("duration"));
        assert!(e("uniform:5ms").contains("LOW..HIGH"));
        assert!(e("uniform:9ms..1ms").contains("must not exceed"));
        assert!(e("lognormal:median=20ms").contains("needs median= and p99="));
        assert!(e("5ms").contains("expected fixed"));
    }
}
