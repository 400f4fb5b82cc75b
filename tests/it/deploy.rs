//! The deployment files (deploy/kubernetes/*.yaml, Dockerfile, cron.example), checked for what
//! matters in production and against the real command line.

use std::path::Path;
use std::process::{Command, Stdio};

use serde::Deserialize;
use serde_norway::Value;

const BIN: &str = env!("CARGO_BIN_EXE_linkrunner-sync");
/// The variables that must come from a Secret, never from a literal in a manifest.
const SECRET_VARS: [&str; 2] = ["LINKRUNNER_API_KEY", "DATABASE_URL"];
const MAX_MEMORY_LIMIT: u64 = 256 << 20;
/// The highest peak RSS `cargo bench` measured (the tables of docs/benchmark.md): the request
/// must hold it, and the limit leave half as much again.
const WORST_MEASURED_PEAK: u64 = 54_000_000;
/// What the example Secret holds instead of real values.
const PLACEHOLDER: &str = "REPLACE_ME";

fn read(relative: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(relative);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Every YAML document in deploy/kubernetes, with the name of its file.
fn manifests() -> Vec<(String, Value)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/kubernetes");
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| name.ends_with(".yaml") || name.ends_with(".yml"))
        .collect();
    names.sort();
    let mut docs = Vec::new();
    for name in names {
        let text = read(&format!("deploy/kubernetes/{name}"));
        for doc in serde_norway::Deserializer::from_str(&text) {
            let value = Value::deserialize(doc).unwrap_or_else(|e| panic!("{name}: {e}"));
            if !value.is_null() {
                docs.push((name.clone(), value));
            }
        }
    }
    docs
}

/// The Job spec of a CronJob or a Job; None for any other kind.
fn job_spec(doc: &Value) -> Option<&Value> {
    match doc["kind"].as_str()? {
        "CronJob" => Some(&doc["spec"]["jobTemplate"]["spec"]),
        "Job" => Some(&doc["spec"]),
        _ => None,
    }
}

fn containers(doc: &Value) -> Vec<&Value> {
    let pod = &job_spec(doc).expect("a CronJob or a Job")["template"]["spec"];
    pod["containers"]
        .as_sequence()
        .into_iter()
        .flatten()
        .collect()
}

/// The conditions, as written, that do not hold.
macro_rules! failed {
    ($($ok:expr),* $(,)?) => {{
        let mut failed: Vec<String> = Vec::new();
        $(if !$ok { failed.push(stringify!($ok).to_string()); })*
        failed
    }};
}

/// What is wrong with a batch/v1 CronJob or Job; empty when nothing is.
fn workload_problems(doc: &Value) -> Vec<String> {
    let Some(job) = job_spec(doc) else {
        return vec!["not a CronJob or a Job".into()];
    };
    let mut p = failed![doc["apiVersion"] == "batch/v1"];
    if doc["kind"] == "CronJob" {
        p.extend(schedule_problems(&doc["spec"]));
    }
    let pod = &job["template"]["spec"];
    let grace_period_seconds = pod["terminationGracePeriodSeconds"].as_u64().unwrap_or(0);
    p.extend(failed![
        job["backoffLimit"].is_u64(),
        positive(&job["activeDeadlineSeconds"]),
        matches!(pod["restartPolicy"].as_str(), Some("Never" | "OnFailure")),
        grace_period_seconds >= 30,
    ]);
    let containers = containers(doc);
    p.extend(failed![!containers.is_empty()]);
    for c in containers {
        p.extend(container_problems(c));
        p.extend(security_problems(
            &c["securityContext"],
            &pod["securityContext"],
        ));
        p.extend(env_problems(c));
    }
    p
}

fn positive(value: &Value) -> bool {
    value.as_u64().is_some_and(|n| n > 0)
}

/// A CronJob's spec: a valid schedule, no overlap, a bounded start delay and history.
fn schedule_problems(spec: &Value) -> Vec<String> {
    let schedule = spec["schedule"].as_str().unwrap_or_default();
    let mut p: Vec<String> = cron_problem(schedule).into_iter().collect();
    p.extend(failed![
        spec["concurrencyPolicy"] == "Forbid",
        positive(&spec["startingDeadlineSeconds"]),
        spec["successfulJobsHistoryLimit"].is_u64(),
        spec["failedJobsHistoryLimit"].is_u64(),
    ]);
    p
}

/// Arguments and resources of one container.
fn container_problems(c: &Value) -> Vec<String> {
    let args: Vec<&str> = c["args"]
        .as_sequence()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .collect();
    let (requests, limits) = (&c["resources"]["requests"], &c["resources"]["limits"]);
    let memory_limit = limits["memory"]
        .as_str()
        .and_then(bytes)
        .unwrap_or(u64::MAX);
    let memory_request = requests["memory"]
        .as_str()
        .and_then(bytes)
        .unwrap_or(u64::MAX);
    failed![
        c["command"].is_null(), // the image's ENTRYPOINT is the binary
        args.first() == Some(&"sync"),
        args.windows(2).any(|w| w == ["--log-format", "json"]),
        args.contains(&"--timezone"),
        !requests["cpu"].is_null(),
        !limits["cpu"].is_null(),
        memory_limit <= MAX_MEMORY_LIMIT,
        memory_request <= memory_limit,
        memory_request >= WORST_MEASURED_PEAK,
        memory_limit >= WORST_MEASURED_PEAK * 3 / 2,
    ]
}

/// A non-root user, a read-only root, no privilege escalation, no capabilities, seccomp.
fn security_problems(container: &Value, pod: &Value) -> Vec<String> {
    // A container's setting wins over the pod's.
    let effective = |key| effective(container, pod, key);
    let drop = container["capabilities"]["drop"].as_sequence();
    failed![
        effective("runAsNonRoot").as_bool() == Some(true),
        effective("runAsUser").as_u64() != Some(0),
        container["readOnlyRootFilesystem"].as_bool() == Some(true),
        container["allowPrivilegeEscalation"].as_bool() == Some(false),
        drop.is_some_and(|d| d.iter().any(|c| c == "ALL")),
        effective("seccompProfile")["type"] == "RuntimeDefault",
    ]
}

fn effective<'a>(container_security: &'a Value, pod_security: &'a Value, key: &str) -> &'a Value {
    match &container_security[key] {
        Value::Null => &pod_security[key],
        value => value,
    }
}

/// The secret variables come from a secretKeyRef, each once, never as a literal value.
fn env_problems(container: &Value) -> Vec<String> {
    let env = container["env"].as_sequence().cloned().unwrap_or_default();
    SECRET_VARS
        .iter()
        .filter_map(|var| {
            let entries: Vec<&Value> = env.iter().filter(|e| e["name"] == *var).collect();
            let from_secret = matches!(entries[..], [e] if e["value"].is_null()
                && e["valueFrom"]["secretKeyRef"]["name"].is_string()
                && e["valueFrom"]["secretKeyRef"]["key"].is_string());
            (!from_secret).then(|| format!("{var} does not come from one secretKeyRef"))
        })
        .collect()
}

/// A Kubernetes memory quantity in bytes: 128Mi, 1Gi, 100M, 134217728.
fn bytes(quantity: &str) -> Option<u64> {
    let units: [(&str, u64); 6] = [
        ("Ki", 1 << 10),
        ("Mi", 1 << 20),
        ("Gi", 1 << 30),
        ("k", 1_000),
        ("M", 1_000_000),
        ("G", 1_000_000_000),
    ];
    for (suffix, factor) in units {
        if let Some(number) = quantity.strip_suffix(suffix) {
            return number.parse::<u64>().ok().map(|n| n * factor);
        }
    }
    quantity.parse().ok()
}

/// Why a schedule is not a 5-field cron expression of numbers, `*`, ranges, lists and steps.
fn cron_problem(schedule: &str) -> Option<String> {
    let fields: Vec<&str> = schedule.split_whitespace().collect();
    if fields.len() != 5 {
        return Some(format!("schedule '{schedule}' does not have 5 fields"));
    }
    let ranges = [(0, 59), (0, 23), (1, 31), (1, 12), (0, 7)];
    let ok = fields
        .iter()
        .zip(ranges)
        .all(|(field, (lo, hi))| field.split(',').all(|item| cron_item(item, lo, hi)));
    (!ok).then(|| format!("schedule '{schedule}' is not valid cron"))
}

fn cron_item(item: &str, lo: u32, hi: u32) -> bool {
    let number = |t: &str| t.parse::<u32>().ok().filter(|n| (lo..=hi).contains(n));
    let (range, step) = match item.split_once('/') {
        Some((range, step)) => (
            range,
            step.parse::<u32>().ok().filter(|s| (1..=hi).contains(s)),
        ),
        None => (item, Some(1)),
    };
    let range_ok = match range.split_once('-') {
        _ if range == "*" => true,
        Some((a, b)) => matches!((number(a), number(b)), (Some(a), Some(b)) if a <= b),
        None => number(range).is_some(),
    };
    range_ok && step.is_some()
}

/// The `--flags` of `sync --help`.
fn sync_flags() -> Vec<String> {
    let out = Command::new(BIN).args(["sync", "--help"]).output().unwrap();
    assert!(out.status.success(), "{out:?}");
    let help = String::from_utf8(out.stdout).unwrap();
    help.split(|c: char| c.is_whitespace() || c == ',' || c == '=' || c == '[')
        .filter(|word| word.starts_with("--"))
        .map(String::from)
        .collect()
}

/// The crontab lines of cron.example, each with its `linkrunner-sync` arguments.
fn cron_lines() -> Vec<(String, Vec<String>)> {
    let text = read("cron.example");
    let lines: Vec<(String, Vec<String>)> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|line| {
            let args = line
                .split_whitespace()
                .skip_while(|w| !(*w == "linkrunner-sync" || w.ends_with("/linkrunner-sync")))
                .skip(1)
                .take_while(|word| !word.starts_with('>') && !word.starts_with('|'))
                .map(String::from)
                .collect();
            (line.to_string(), args)
        })
        .collect();
    assert!(!lines.is_empty(), "no crontab line");
    lines
}

/// The value of `--flag` in `args`; None when it is not given.
fn flag<'a>(args: &'a [String], flag: &str) -> Option<&'a str> {
    let at = args.iter().position(|a| a == flag)?;
    args.get(at + 1).map(String::as_str)
}

/// The schema a run writes to: `--schema`, else the default.
fn schema_of(args: &[String]) -> String {
    flag(args, "--schema").unwrap_or("linkrunner").to_string()
}

/// The arguments of every container in the manifests, and of the crontab lines, by file.
fn every_invocation() -> Vec<(String, Vec<String>)> {
    let mut runs: Vec<(String, Vec<String>)> = cron_lines()
        .into_iter()
        .map(|(_, args)| ("cron.example".to_string(), args))
        .collect();
    for (file, doc) in manifests().iter().filter(|(_, d)| job_spec(d).is_some()) {
        for container in containers(doc) {
            let args = container["args"].as_sequence().into_iter().flatten();
            let args = args.map(|a| a.as_str().unwrap_or_default().to_string());
            runs.push((file.clone(), args.collect()));
        }
    }
    runs
}

#[test]
fn the_manifests_are_a_cronjob_a_backfill_job_and_a_secret() {
    let docs = manifests();
    let kinds = ["CronJob", "Job", "Secret"];
    for kind in kinds {
        assert!(docs.iter().any(|(_, d)| d["kind"] == kind), "no {kind}");
    }
    for (file, doc) in &docs {
        let known = kinds.iter().any(|kind| doc["kind"] == *kind);
        assert!(
            known,
            "{file}: this test does not check its kind; add the checks"
        );
    }
}

#[test]
fn every_cronjob_and_job_is_bounded_locked_down_and_reads_the_secret() {
    for (file, doc) in manifests() {
        if job_spec(&doc).is_some() {
            let problems = workload_problems(&doc);
            assert!(
                problems.is_empty(),
                "{file}: fails\n{}",
                problems.join("\n")
            );
        }
    }
}

/// A name and a change that spoils a good CronJob.
type Breakage = (&'static str, fn(&mut Value));

/// The first container of a CronJob.
fn container(cronjob: &mut Value) -> &mut Value {
    &mut cronjob["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"][0]
}

#[test]
fn broken_manifests_are_caught() {
    let (_, good) = manifests()
        .into_iter()
        .find(|(_, doc)| doc["kind"] == "CronJob")
        .expect("a CronJob");
    assert!(workload_problems(&good).is_empty());
    let breakages: [Breakage; 8] = [
        ("schedule", |d| d["spec"]["schedule"] = "*/10 * * *".into()),
        ("overlap", |d| {
            d["spec"]["concurrencyPolicy"] = "Allow".into()
        }),
        ("no start deadline", |d| {
            d["spec"]["startingDeadlineSeconds"] = Value::Null
        }),
        ("literal key", |d| {
            container(d)["env"][0]["value"] = "lr_0123456789abcdef".into()
        }),
        ("memory", |d| {
            container(d)["resources"]["limits"]["memory"] = "1Gi".into()
        }),
        ("root", |d| {
            container(d)["securityContext"]["runAsNonRoot"] = false.into()
        }),
        ("writable", |d| {
            container(d)["securityContext"]["readOnlyRootFilesystem"] = false.into()
        }),
        ("args", |d| container(d)["args"][0] = "status".into()),
    ];
    for (name, breakage) in breakages {
        let mut broken = good.clone();
        breakage(&mut broken);
        assert!(
            !workload_problems(&broken).is_empty(),
            "{name} went unnoticed"
        );
    }
}

/// The names of the Secrets a CronJob's or Job's containers read.
fn secrets_read(doc: &Value) -> Vec<String> {
    let mut names: Vec<String> = containers(doc)
        .into_iter()
        .flat_map(|c| c["env"].as_sequence().cloned().unwrap_or_default())
        .filter_map(|e| {
            e["valueFrom"]["secretKeyRef"]["name"]
                .as_str()
                .map(String::from)
        })
        .collect();
    names.sort();
    names.dedup();
    names
}

#[test]
fn secret_refs_name_keys_of_an_example_secret() {
    let docs = manifests();
    for (file, doc) in docs.iter().filter(|(_, d)| job_spec(d).is_some()) {
        for container in containers(doc) {
            for entry in container["env"].as_sequence().into_iter().flatten() {
                let reference = &entry["valueFrom"]["secretKeyRef"];
                if reference.is_null() {
                    continue;
                }
                let secret = docs
                    .iter()
                    .map(|(_, d)| d)
                    .find(|d| d["kind"] == "Secret" && d["metadata"]["name"] == reference["name"])
                    .unwrap_or_else(|| panic!("{file}: no example Secret {:?}", reference["name"]));
                let key = reference["key"].as_str().unwrap();
                assert!(
                    secret["stringData"][key].is_string(),
                    "{file}: no key {key}"
                );
            }
        }
    }
}

#[test]
fn the_example_secret_holds_only_placeholders() {
    for (file, doc) in manifests().iter().filter(|(_, d)| d["kind"] == "Secret") {
        assert_eq!(doc["apiVersion"], "v1", "{file}");
        assert!(
            doc["data"].is_null(),
            "{file}: base64 data can hide a real value; use stringData"
        );
        let values = doc["stringData"].as_mapping().expect("stringData");
        for (key, value) in values {
            let value = value.as_str().unwrap_or_default();
            assert!(
                value.contains(PLACEHOLDER),
                "{file}: {key:?} is not a {PLACEHOLDER} placeholder"
            );
            assert!(
                !looks_like_a_secret(value),
                "{file}: {key:?} looks like a real secret"
            );
        }
    }
    assert!(looks_like_a_secret("postgres://etl:Xk29fLq81ZpRt7Wv@db/w"));
    assert!(!looks_like_a_secret(
        "postgres://etl:REPLACE_ME@postgres.example.internal:5432/w"
    ));
}

/// A run of 12 or more letters and digits mixing both, as keys and generated passwords are.
fn looks_like_a_secret(text: &str) -> bool {
    text.split(|c: char| !c.is_ascii_alphanumeric())
        .any(|word| {
            word.len() >= 12
                && word.chars().any(|c| c.is_ascii_digit())
                && word.chars().any(|c| c.is_ascii_alphabetic())
        })
}

#[test]
fn every_flag_in_the_manifests_and_cron_example_exists() {
    let flags = sync_flags();
    for (file, args) in every_invocation() {
        for arg in args.iter().filter(|arg| arg.starts_with("--")) {
            let flag = arg.split('=').next().unwrap();
            assert!(
                flags.iter().any(|f| f == flag),
                "{file}: no flag {flag} in sync --help"
            );
        }
    }
}

/// The arguments pass the job's own checks, which run before it connects: with an unreachable
/// database it fails to connect (exit 1) rather than rejecting them (exit 2).
#[test]
fn the_manifests_arguments_are_accepted_by_the_job() {
    // Each run waits out the connection timeout, so they run side by side.
    let children: Vec<_> = every_invocation()
        .into_iter()
        .map(|(file, args)| {
            let child = Command::new(BIN)
                .args(&args)
                .env("LINKRUNNER_API_KEY", "placeholder")
                .env("DATABASE_URL", "postgres://nobody@127.0.0.1:1/warehouse")
                .env("LINKRUNNER_BASE_URL", "http://127.0.0.1:9/api/v1")
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap();
            (file, args, child)
        })
        .collect();
    for (file, args, child) in children {
        let out = child.wait_with_output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{file}: {args:?}: {stderr}");
        assert!(
            stderr.contains("cannot connect to Postgres"),
            "{file}: {stderr}"
        );
    }
}

#[test]
fn cron_expressions_are_checked() {
    for good in ["*/10 * * * *", "0 3 * * 1-5", "5,35 */2 1 1-12/3 0"] {
        assert_eq!(cron_problem(good), None, "{good}");
    }
    for bad in [
        "*/10 * * *",
        "60 * * * *",
        "* * 0 * *",
        "*/0 * * * *",
        "5-1 * * * *",
        "@hourly",
    ] {
        assert!(cron_problem(bad).is_some(), "{bad}");
    }
    assert_eq!(bytes("128Mi"), Some(128 << 20));
    assert_eq!(bytes("100M"), Some(100_000_000));
    assert_eq!(bytes("lots"), None);
}

#[test]
fn the_docker_image_runs_the_job_as_a_non_root_user() {
    let dockerfile = read("Dockerfile");
    let build = "cargo build --release --locked --bin linkrunner-sync";
    assert!(
        dockerfile.contains(build),
        "the Dockerfile does not run {build}"
    );
    // The runtime stage: everything from the last FROM on.
    let start = dockerfile.rfind("\nFROM ").expect("a multi-stage build");
    let runtime = &dockerfile[start..];
    let user = runtime
        .lines()
        .rev()
        .find_map(|line| line.trim().strip_prefix("USER "))
        .expect("the runtime stage sets USER");
    let name = user.trim().split(':').next().unwrap();
    assert!(!["root", "0"].contains(&name), "runs as {user}");
    let entrypoint = runtime.lines().find(|l| l.starts_with("ENTRYPOINT"));
    assert!(
        entrypoint.is_some_and(|l| l.contains("linkrunner-sync")),
        "{runtime}"
    );
}

/// Two projects, each a CronJob of its own: its own Secret (its own key) and its own schema.
#[test]
fn the_cronjobs_are_two_projects_each_with_its_own_secret_and_schema() {
    let docs = manifests();
    let cronjobs: Vec<&Value> = docs
        .iter()
        .map(|(_, d)| d)
        .filter(|d| d["kind"] == "CronJob")
        .collect();
    assert_eq!(cronjobs.len(), 2, "one CronJob per project");
    let mut names = Vec::new();
    let mut secrets = Vec::new();
    let mut schemas = Vec::new();
    for cronjob in cronjobs {
        let secret = secrets_read(cronjob);
        assert_eq!(secret.len(), 1, "a project reads one Secret: {secret:?}");
        for container in containers(cronjob) {
            let args: Vec<String> = container["args"]
                .as_sequence()
                .into_iter()
                .flatten()
                .filter_map(|a| a.as_str().map(String::from))
                .collect();
            schemas.push(schema_of(&args));
        }
        names.push(cronjob["metadata"]["name"].as_str().unwrap().to_string());
        secrets.extend(secret);
    }
    for list in [&mut names, &mut secrets, &mut schemas] {
        let all = list.len();
        list.sort();
        list.dedup();
        assert_eq!(list.len(), all, "shared between projects: {list:?}");
    }
}

#[test]
fn cron_example_runs_each_project_under_flock_with_json_logs() {
    let text = read("cron.example");
    let lines = cron_lines();
    assert_eq!(lines.len(), 2, "one line per project");
    for (line, args) in &lines {
        let schedule: Vec<&str> = line.split_whitespace().take(5).collect();
        assert_eq!(cron_problem(&schedule.join(" ")), None);
        assert!(line.contains("flock -n "), "{line}");
        assert_eq!(args.first().map(String::as_str), Some("sync"), "{line}");
        let json = args.windows(2).any(|w| w == ["--log-format", "json"]);
        assert!(json, "cron.example does not log JSON: {line}");
    }
    // Each project its own key (environment file), lock file, log and schema.
    let word_after = |line: &str, before: &str| {
        let words: Vec<&str> = line.split_whitespace().collect();
        let at = words.iter().position(|w| *w == before).unwrap();
        words[at + 1].to_string()
    };
    type CronLine = (String, Vec<String>);
    let differ = |what: &str, of: &dyn Fn(&CronLine) -> String| {
        let values: Vec<String> = lines.iter().map(of).collect();
        assert_ne!(values[0], values[1], "both lines share the {what}");
    };
    differ("environment file", &|(l, _)| word_after(l, "."));
    differ("lock file", &|(l, _)| word_after(l, "5"));
    differ("log", &|(l, _)| word_after(l, ">>"));
    differ("schema", &|(_, a)| schema_of(a));
    for var in SECRET_VARS {
        assert!(
            text.contains(var),
            "cron.example does not say where {var} comes from"
        );
    }
    for code in [0, 1, 2, 3, 4, 5, 7] {
        let explained = text.lines().any(|l| {
            let words = l
                .strip_prefix('#')
                .map(|rest| rest.split_whitespace().next());
            words.flatten() == Some(code.to_string().as_str())
        });
        assert!(
            explained,
            "cron.example has no comment line for exit code {code}"
        );
    }
}
