//! `junit.xml` (quick-junit): one test suite per kind of check (thresholds, leaks,
//! regressions), one test case per check. A failure's message says what failed and by how
//! much; a check the target could not answer is `skipped` with the reason.

use quick_junit::{NonSuccessKind, Report as JUnit, TestCase, TestCaseStatus, TestSuite};

use super::format::failure;
use crate::report::Kind;
use crate::report::Report;

pub fn render(r: &Report) -> anyhow::Result<String> {
    let mut junit = JUnit::new(format!("mcp-loadgen {}", r.name));
    junit.add_test_suites(suites(r));
    Ok(junit.to_string()?)
}

/// The report's test suites: `NAME.thresholds`, `NAME.leaks`, `NAME.regressions` (those
/// with checks).
pub fn suites(r: &Report) -> Vec<TestSuite> {
    let mut out = Vec::new();
    for (kind, suffix) in [
        (Kind::Threshold, "thresholds"),
        (Kind::Leak, "leaks"),
        (Kind::Regression, "regressions"),
    ] {
        let checks: Vec<_> = r.checks.iter().filter(|c| c.kind == kind).collect();
        if checks.is_empty() {
            continue;
        }
        let mut suite = TestSuite::new(format!("{}.{suffix}", r.name));
        for c in checks {
            let status = match (&c.skipped, c.passed) {
                (Some(why), _) => {
                    let mut s = TestCaseStatus::skipped();
                    s.set_message(why.as_str());
                    s
                }
                (None, true) => TestCaseStatus::success(),
                (None, false) => {
                    let mut s = TestCaseStatus::non_success(NonSuccessKind::Failure);
                    s.set_message(failure(c));
                    s.set_type(suffix);
                    s
                }
            };
            let mut case = TestCase::new(c.name.as_str(), status);
            case.set_classname(format!("mcp-loadgen.{}.{suffix}", r.name));
            case.set_system_out(c.line());
            suite.add_test_case(case);
        }
        out.push(suite);
    }
    out
}
