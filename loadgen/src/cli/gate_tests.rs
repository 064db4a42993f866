use super::*;

#[test]
fn a_leak_is_the_worst_then_an_unjudged_scenario_then_a_threshold() {
    assert_eq!(worst([]), 0);
    assert_eq!(worst([0, 0]), 0);
    assert_eq!(worst([0, 1, 0]), 1);
    assert_eq!(worst([1, 3, 0]), 3);
    assert_eq!(worst([3, 2, 1]), 2);
    assert_eq!(worst([2, 1]), 2);
    assert_eq!(worst([0, 101]), 101, "a crashed run is not judged either");
    assert_eq!(worst([101, 2]), 2);
}

fn fixture() -> Report {
    Report::read(&Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/report.json")).unwrap()
}

fn gate() -> Gate {
    let failed = Ran {
        id: "broken".into(),
        file: "scenarios/gate/broken.toml".into(),
        code: 3,
        seconds: 0.2,
        report: None,
        stderr_tail: "mcp-loadgen: scenarios/gate/broken.toml: unknown field `userz`".into(),
    };
    let breached = Ran {
        id: "fixture".into(),
        file: "scenarios/gate/fixture.toml".into(),
        code: 1,
        seconds: 21.0,
        report: Some(fixture()),
        stderr_tail: String::new(),
    };
    Gate {
        exit_code: worst([3, 1]),
        ran: vec![breached, failed],
        seconds: 21.2,
    }
}

#[test]
fn the_summary_names_every_scenario_and_what_failed() {
    let s = gate().summary(Path::new("reports/gate"));
    assert!(
        s.starts_with("## ❌ Leak gate — COULD NOT JUDGE (exit 3)"),
        "{s}"
    );
    assert!(
        s.contains("| `fixture` | ❌ threshold breached | 36,165 |"),
        "{s}"
    );
    assert!(
        s.contains("| `broken` | ❌ could not run (exit 3) |"),
        "{s}"
    );
    assert!(
        s.contains("- error rate: measured 6.36 %, target ≤ 5.00 %, off by 1.36 %"),
        "{s}"
    );
    assert!(s.contains("unknown field `userz`"));
    assert!(s.contains("reports/gate/fixture/report.html"));
}

#[test]
fn the_junit_holds_every_scenarios_suites_and_an_error_for_the_unjudged() {
    let xml = gate().junit().unwrap();
    for suite in ["fixture.thresholds", "fixture.leaks", "broken.harness"] {
        assert!(
            xml.contains(&format!("<testsuite name=\"{suite}\"")),
            "{suite}: {xml}"
        );
    }
    assert!(
        xml.contains("<error message=\"scenarios/gate/broken.toml could not be judged (exit 3)"),
        "{xml}"
    );
    assert!(
        xml.contains("<failure message=\"error rate: measured 6.36 %"),
        "{xml}"
    );
}
