//! `ci/k8s/loadgen-job.yaml` (ci/k8s/README.md): the sharded Indexed Job, its scenario, its
//! reports volume and the merge Job agree with each other and with the harness's CLI
//! (`run SCENARIO --shard I/N --out DIR`, `merge REPORT... --out DIR`).

use std::path::{Path, PathBuf};

use mcp_loadgen::scenario::Scenario;
use serde::Deserialize;
use serde_json::Value;

const SHARD_JOB: &str = "mcp-loadgen";
const MERGE_JOB: &str = "mcp-loadgen-merge";
const SCENARIO_MAP: &str = "mcp-loadgen-scenario";
const REPORTS_PVC: &str = "mcp-loadgen-reports";
const INDEX: &str = "${JOB_COMPLETION_INDEX}";

fn manifest_path() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../ci/k8s/loadgen-job.yaml")
}

/// Every non-empty YAML document of the manifest.
fn documents() -> Vec<Value> {
    let path = manifest_path();
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    serde_norway::Deserializer::from_str(&text)
        .enumerate()
        .map(|(i, doc)| {
            Value::deserialize(doc)
                .unwrap_or_else(|e| panic!("{}: document #{}: {e}", path.display(), i + 1))
        })
        .filter(|v| !v.is_null())
        .collect()
}

fn find<'a>(docs: &'a [Value], kind: &str, name: &str) -> &'a Value {
    let found: Vec<&Value> = docs
        .iter()
        .filter(|d| d["kind"] == kind && d["metadata"]["name"] == name)
        .collect();
    assert_eq!(
        found.len(),
        1,
        "expected exactly one {kind} \"{name}\" in the manifest"
    );
    found[0]
}

fn str_at<'a>(v: &'a Value, pointer: &str) -> &'a str {
    v.pointer(pointer)
        .and_then(Value::as_str)
        .unwrap_or_else(|| panic!("`{pointer}` is missing or not a string in {v}"))
}

fn int_at(v: &Value, pointer: &str) -> i64 {
    v.pointer(pointer)
        .and_then(Value::as_i64)
        .unwrap_or_else(|| panic!("`{pointer}` is missing or not an integer"))
}

/// A resource quantity written as a number (`2`) or a string (`"2"`, `1Gi`).
fn quantity(v: &Value, pointer: &str) -> String {
    match v.pointer(pointer) {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Number(n)) => n.to_string(),
        other => panic!("`{pointer}` is not a quantity: {other:?}"),
    }
}

/// The one container of a Job's pod template.
fn container(job: &Value) -> &Value {
    let containers = job
        .pointer("/spec/template/spec/containers")
        .and_then(Value::as_array)
        .expect("the Job has containers");
    assert_eq!(containers.len(), 1, "one container per pod: {containers:?}");
    &containers[0]
}

/// The container's argv as the harness sees it: `command` + `args`, with a `sh -c "exec …"`
/// wrapper unwrapped into its words.
fn argv(job: &Value) -> Vec<String> {
    let c = container(job);
    let words: Vec<String> = ["command", "args"]
        .iter()
        .filter_map(|k| c[*k].as_array())
        .flatten()
        .map(|w| w.as_str().expect("command words are strings").to_string())
        .collect();
    if words.len() >= 3 && words[0] == "sh" && words[1] == "-c" {
        assert_eq!(words.len(), 3, "sh -c takes one script: {words:?}");
        let script: Vec<&str> = words[2].split_whitespace().collect();
        // Without `exec` the shell is PID 1 and swallows SIGTERM: the harness would never
        // stop its load and tear down when the pod is stopped.
        assert_eq!(
            script.first(),
            Some(&"exec"),
            "the sh -c script must `exec` the harness: {}",
            words[2]
        );
        script[1..].iter().map(|w| w.to_string()).collect()
    } else {
        words
    }
}

/// The value of `--name VALUE` or `--name=VALUE`.
fn flag<'a>(argv: &'a [String], name: &str) -> Option<&'a str> {
    let eq = format!("{name}=");
    argv.iter().enumerate().find_map(|(i, w)| {
        if w == name {
            argv.get(i + 1).map(String::as_str)
        } else {
            w.strip_prefix(&eq)
        }
    })
}

/// The mount path of the Job's volume for which `pick` holds.
fn mount_path(job: &Value, pick: impl Fn(&Value) -> bool) -> String {
    let volumes = job
        .pointer("/spec/template/spec/volumes")
        .and_then(Value::as_array)
        .expect("the Job's pod has volumes");
    let chosen: Vec<&str> = volumes
        .iter()
        .filter(|v| pick(v))
        .map(|v| v["name"].as_str().expect("a volume has a name"))
        .collect();
    assert_eq!(chosen.len(), 1, "one such volume in {volumes:?}");
    let mounts = container(job)["volumeMounts"]
        .as_array()
        .expect("the container mounts volumes");
    let paths: Vec<&str> = mounts
        .iter()
        .filter(|m| m["name"] == chosen[0])
        .map(|m| m["mountPath"].as_str().expect("a mount has a mountPath"))
        .collect();
    assert_eq!(
        paths.len(),
        1,
        "volume \"{}\" mounted once: {mounts:?}",
        chosen[0]
    );
    paths[0].trim_end_matches('/').to_string()
}

fn reports_mount(job: &Value) -> String {
    mount_path(job, |v| {
        v.pointer("/persistentVolumeClaim/claimName") == Some(&Value::from(REPORTS_PVC))
    })
}

/// `path` lies strictly inside the directory `dir`.
fn under(path: &str, dir: &str) -> bool {
    path.strip_prefix(dir)
        .and_then(|rest| rest.strip_prefix('/'))
        .is_some_and(|rest| !rest.is_empty() && !rest.split('/').any(|p| p == ".."))
}

/// N: the shard Job's completions.
fn shards(docs: &[Value]) -> i64 {
    int_at(find(docs, "Job", SHARD_JOB), "/spec/completions")
}

/// The shard Job's `--out`, with `${JOB_COMPLETION_INDEX}` still in it.
fn shard_out(docs: &[Value]) -> String {
    let argv = argv(find(docs, "Job", SHARD_JOB));
    flag(&argv, "--out")
        .expect("the shard command has --out")
        .to_string()
}

#[test]
fn every_document_has_api_version_kind_and_name() {
    let docs = documents();
    assert!(!docs.is_empty(), "the manifest has no document");
    for (i, d) in docs.iter().enumerate() {
        for pointer in ["/apiVersion", "/kind", "/metadata/name"] {
            let value = d.pointer(pointer).and_then(Value::as_str).unwrap_or("");
            assert!(
                !value.trim().is_empty(),
                "document #{}: `{pointer}` is missing or empty",
                i + 1
            );
        }
    }
    assert_eq!(
        str_at(find(&docs, "ConfigMap", SCENARIO_MAP), "/apiVersion"),
        "v1"
    );
    let pvc = find(&docs, "PersistentVolumeClaim", REPORTS_PVC);
    assert_eq!(str_at(pvc, "/apiVersion"), "v1");
    // Shard pods on different nodes all write their reports to it.
    let modes = pvc
        .pointer("/spec/accessModes")
        .and_then(Value::as_array)
        .expect("the PVC has accessModes");
    assert!(
        modes.iter().any(|m| m == "ReadWriteMany"),
        "the reports PVC must be ReadWriteMany: {modes:?}"
    );
    find(&docs, "Job", SHARD_JOB);
    find(&docs, "Job", MERGE_JOB);
}

#[test]
fn shard_job_is_indexed_unretried_and_sized() {
    let docs = documents();
    let job = find(&docs, "Job", SHARD_JOB);
    assert_eq!(str_at(job, "/apiVersion"), "batch/v1");
    assert_eq!(str_at(job, "/spec/completionMode"), "Indexed");
    let n = int_at(job, "/spec/completions");
    assert!(n >= 1, "completions = {n}");
    assert_eq!(
        int_at(job, "/spec/parallelism"),
        n,
        "parallelism must equal completions: every shard runs at once"
    );
    // A failed shard is not retried: its exit code is the verdict.
    assert_eq!(int_at(job, "/spec/backoffLimit"), 0);
    assert_eq!(str_at(job, "/spec/template/spec/restartPolicy"), "Never");
    assert!(int_at(job, "/spec/ttlSecondsAfterFinished") > 0);
    let c = container(job);
    assert!(!str_at(c, "/image").is_empty());
    for kind in ["requests", "limits"] {
        assert_eq!(quantity(c, &format!("/resources/{kind}/cpu")), "2");
        assert_eq!(quantity(c, &format!("/resources/{kind}/memory")), "1Gi");
    }
}

#[test]
fn shard_command_runs_its_share_into_the_reports_volume() {
    let docs = documents();
    let job = find(&docs, "Job", SHARD_JOB);
    let n = shards(&docs);
    let argv = argv(job);
    assert!(
        argv.windows(2)
            .any(|w| w[0] == "mcp-loadgen" && w[1] == "run"),
        "the shard command runs `mcp-loadgen run`: {argv:?}"
    );
    assert_eq!(
        flag(&argv, "--shard"),
        Some(format!("{INDEX}/{n}").as_str()),
        "`--shard {INDEX}/N` with N = completions ({n})"
    );
    assert!(argv.iter().any(|w| w == "--quiet"), "{argv:?}");
    // a shard's verdict is in its report; only the merge's exit code decides
    assert!(argv.iter().any(|w| w == "--no-fail"), "{argv:?}");

    // The scenario argument is a key of the ConfigMap, where the ConfigMap is mounted.
    let run = argv.iter().position(|w| w == "run").unwrap();
    let scenario = argv.get(run + 1).expect("`run` takes the scenario file");
    let scenario_dir = mount_path(job, |v| {
        v.pointer("/configMap/name") == Some(&Value::from(SCENARIO_MAP))
    });
    let key = scenario
        .strip_prefix(&format!("{scenario_dir}/"))
        .unwrap_or_else(|| panic!("{scenario} is not in the ConfigMap's mount {scenario_dir}"));
    let data = &find(&docs, "ConfigMap", SCENARIO_MAP)["data"];
    assert!(data[key].is_string(), "the ConfigMap has no key \"{key}\"");

    // Each shard writes its own directory on the reports PVC.
    let out = shard_out(&docs);
    let reports = reports_mount(job);
    assert!(
        under(&out, &reports),
        "--out {out} is not under the reports mount {reports}"
    );
    assert!(
        out.contains(INDEX),
        "--out {out} must differ per shard (contain {INDEX})"
    );
}

#[test]
fn scenario_is_valid_and_targets_an_external_proxy() {
    let docs = documents();
    let n = shards(&docs);
    let text = find(&docs, "ConfigMap", SCENARIO_MAP)
        .pointer("/data/scenario.toml")
        .and_then(Value::as_str)
        .expect("the ConfigMap holds scenario.toml");
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("scenario.toml");
    std::fs::write(&path, text).unwrap();
    let scenario = Scenario::load(&path).unwrap_or_else(|e| panic!("{e}"));

    assert!(
        !scenario.bundled(),
        "a sharded run targets an external proxy"
    );
    let url = scenario.target.url.as_deref().unwrap();
    assert!(url.starts_with("http://") || url.starts_with("https://"));
    let host = url.split("://").nth(1).unwrap().split(['/', ':']).next();
    assert!(
        !matches!(host, Some("127.0.0.1" | "localhost" | "0.0.0.0" | "[" | "")),
        "{url}: a pod's loopback is not the proxy"
    );
    assert!(
        scenario.target.headers.contains_key("Authorization"),
        "the proxy needs the instance's API key: {:?}",
        scenario.target.headers
    );
    match (scenario.load.users, scenario.load.rate) {
        (Some(users), None) => assert!(
            users as i64 >= n,
            "{users} users cannot be split over {n} shards"
        ),
        (_, Some(rate)) => assert!(rate > 0.0),
        (None, None) => unreachable!("validation requires users or rate"),
    }
    let methods: Vec<&str> = scenario.ops().iter().map(|(op, _)| op.method()).collect();
    assert!(methods.contains(&"tools/call"), "{methods:?}");
    assert!(methods.contains(&"tools/list"), "{methods:?}");
}

#[test]
fn merge_job_reads_exactly_every_shard_report() {
    let docs = documents();
    let shard_job = find(&docs, "Job", SHARD_JOB);
    let job = find(&docs, "Job", MERGE_JOB);
    assert_eq!(str_at(job, "/apiVersion"), "batch/v1");
    assert_eq!(int_at(job, "/spec/backoffLimit"), 0);
    assert_eq!(str_at(job, "/spec/template/spec/restartPolicy"), "Never");
    assert_eq!(
        str_at(container(job), "/image"),
        str_at(container(shard_job), "/image"),
        "both Jobs run the same harness build"
    );
    // Same PVC at the same path, so the shards' paths are the merge's paths.
    let reports = reports_mount(job);
    assert_eq!(reports, reports_mount(shard_job));

    let argv = argv(job);
    let merge = argv
        .windows(2)
        .position(|w| w[0] == "mcp-loadgen" && w[1] == "merge")
        .unwrap_or_else(|| panic!("the merge command runs `mcp-loadgen merge`: {argv:?}"));
    let mut inputs = Vec::new();
    let mut rest = argv[merge + 2..].iter();
    while let Some(w) = rest.next() {
        if w == "--out" {
            rest.next();
        } else if !w.starts_with("--") {
            inputs.push(w.as_str());
        }
    }
    let template = shard_out(&docs);
    let expected: Vec<String> = (0..shards(&docs))
        .map(|i| format!("{}/report.json", template.replace(INDEX, &i.to_string())))
        .collect();
    assert_eq!(
        inputs, expected,
        "the merge reads shard 0..N-1's report.json, each once"
    );

    let out = flag(&argv, "--out").expect("the merge has --out");
    assert!(
        under(out, &reports),
        "merge --out {out} is not under {reports}"
    );
    assert!(
        !expected
            .iter()
            .any(|r| r.trim_end_matches("/report.json") == out.trim_end_matches('/')),
        "merge --out {out} would overwrite a shard's report"
    );
}
