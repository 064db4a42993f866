//! The merge gate's `junit.xml` (every scenario's suites) and `summary.md` (the verdict, one
//! row per scenario, what failed).

use std::fmt::Write as _;
use std::path::Path;

use quick_junit::{NonSuccessKind, Report as JUnit, TestCase, TestCaseStatus, TestSuite};

use super::format;
use crate::report::gate::{Gate, Ran};
use crate::report::{HTML, ms, thousands};

impl Gate {
    /// Every scenario's test suites in one JUnit report; a scenario that could not be judged
    /// is one suite with an `error` test case saying why.
    pub fn junit(&self) -> anyhow::Result<String> {
        let mut junit = JUnit::new("mcp-loadgen gate");
        for r in &self.ran {
            match &r.report {
                Some(report) => {
                    junit.add_test_suites(super::junit::suites(report));
                }
                None => {
                    let mut status = TestCaseStatus::non_success(NonSuccessKind::Error);
                    status.set_message(format!(
                        "{} could not be judged (exit {}): {}",
                        r.file.display(),
                        r.code,
                        r.stderr_tail.lines().last().unwrap_or("no output")
                    ));
                    status.set_type("harness");
                    let mut case = TestCase::new("run", status);
                    case.set_classname(format!("mcp-loadgen.{}", r.id));
                    case.set_system_err(r.stderr_tail.as_str());
                    let mut suite = TestSuite::new(format!("{}.harness", r.id));
                    suite.add_test_case(case);
                    junit.add_test_suite(suite);
                }
            }
        }
        Ok(junit.to_string()?)
    }

    /// `summary.md`: the verdict, one row per scenario, what failed (bounded like
    /// `report.md`: far under GitHub's 1 MiB).
    pub fn summary(&self, out: &Path) -> String {
        let mut s = String::new();
        let verdict = match self.exit_code {
            0 => "PASS",
            1 => "THRESHOLD BREACHED",
            2 => "LEAK FOUND",
            _ => "COULD NOT JUDGE",
        };
        let icon = if self.exit_code == 0 { "✅" } else { "❌" };
        let _ = writeln!(
            s,
            "## {icon} Leak gate — {verdict} (exit {})\n\n{} scenarios in {:.0} s; reports in `{}`.\n",
            self.exit_code,
            self.ran.len(),
            self.seconds,
            out.display()
        );
        let _ = writeln!(
            s,
            "| scenario | verdict | requests | failed | p99 ms | time | failed checks |\n|---|---|---:|---:|---:|---:|---|"
        );
        for r in &self.ran {
            let icon = match r.code {
                0 => "✅",
                _ => "❌",
            };
            match &r.report {
                Some(rep) => {
                    let failed: Vec<&str> = rep
                        .checks
                        .iter()
                        .filter(|c| !c.passed)
                        .map(|c| c.name.as_str())
                        .take(8)
                        .collect();
                    let _ = writeln!(
                        s,
                        "| `{}` | {icon} {} | {} | {} | {} | {:.0} s | {} |",
                        r.id,
                        rep.verdict(),
                        thousands(rep.load.requests as f64),
                        thousands(rep.load.failed as f64),
                        ms(rep.mix_latency().p99_us as f64),
                        r.seconds,
                        failed.join(", ")
                    );
                }
                None => {
                    let _ = writeln!(
                        s,
                        "| `{}` | {icon} could not run (exit {}) | — | — | — | {:.0} s | {} |",
                        r.id,
                        r.code,
                        r.seconds,
                        r.stderr_tail
                            .lines()
                            .last()
                            .unwrap_or("")
                            .replace('|', "\\|")
                            .chars()
                            .take(300)
                            .collect::<String>()
                    );
                }
            }
        }
        let failing: Vec<&Ran> = self.ran.iter().filter(|r| r.code != 0).collect();
        if !failing.is_empty() {
            let _ = writeln!(s, "\n### What failed\n");
            for r in failing {
                let _ = writeln!(s, "**`{}`**\n", r.id);
                match &r.report {
                    Some(rep) => {
                        for c in rep.checks.iter().filter(|c| !c.passed).take(20) {
                            let _ = writeln!(s, "- {}", format::failure(c).replace('\n', " "));
                        }
                        for n in rep.notes.iter().take(10) {
                            let _ =
                                writeln!(s, "- note: {}", n.chars().take(400).collect::<String>());
                        }
                        let _ = writeln!(s, "\n`{}`\n", out.join(&r.id).join(HTML).display());
                    }
                    None => {
                        let _ = writeln!(s, "```\n{}\n```\n", r.stderr_tail);
                    }
                }
            }
        }
        s
    }
}
