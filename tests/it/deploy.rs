//! The deployment files (deploy/kubernetes/*.yaml, Dockerfile, cron.example), checked for what
//! matters in production and against the real command line.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use linkrunner_sync::receive;

use crate::common::process::{drain, Drained};

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

/// The pod template of a CronJob, a Job or a StatefulSet; None for any other kind.
fn pod_template(doc: &Value) -> Option<&Value> {
    match doc["kind"].as_str()? {
        "StatefulSet" => Some(&doc["spec"]["template"]),
        _ => Some(&job_spec(doc)?["template"]),
    }
}

fn containers(doc: &Value) -> Vec<&Value> {
    let pod = &pod_template(doc).expect("a CronJob, a Job or a StatefulSet")["spec"];
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
fn the_manifests_are_the_sync_jobs_the_receiver_and_a_secret() {
    let docs = manifests();
    let kinds = [
        "CronJob",
        "Job",
        "Secret",
        "StatefulSet",
        "Service",
        "PodDisruptionBudget",
        "Ingress",
    ];
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

/// The names of the Secrets a workload's containers read.
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
    for (file, doc) in docs.iter().filter(|(_, d)| pod_template(d).is_some()) {
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

// The webhook receiver (receiver.yaml, ingress.example.yaml): a StatefulSet, its Services, its
// disruption budget and its Ingress, checked against the real command line.

/// The least grace after SIGTERM: the receiver answers what it holds within 4 seconds, then
/// commits it; the rest is margin for a slow commit.
const MIN_GRACE_SECONDS: u64 = 30;
/// How long `/readyz` waits for Postgres (src/receive/mod.rs): the readiness probe must wait
/// longer, or a slow answer reads as a failure.
const READY_WAIT_SECONDS: u64 = 2;
/// Where the pods' metrics are scraped.
const METRICS_PATH: &str = "/metrics";
/// `--spool-max-mib`'s default, for when neither the manifest nor the command line has it.
const DEFAULT_SPOOL_MAX_MIB: u64 = 1024;

/// The real command line, with its subcommands.
fn command_line() -> clap::Command {
    linkrunner_sync::cli::command()
}

/// The arguments of a container, as written.
fn args_of(container: &Value) -> Vec<String> {
    container["args"]
        .as_sequence()
        .into_iter()
        .flatten()
        .map(|a| a.as_str().unwrap_or_default().to_string())
        .collect()
}

/// The `--long` argument of subcommand `sub`, or a global one.
fn arg_of<'a>(cmd: &'a clap::Command, sub: &str, long: &str) -> Option<&'a clap::Arg> {
    let sub = cmd.find_subcommand(sub)?;
    sub.get_arguments()
        .chain(cmd.get_arguments())
        .find(|a| a.get_long() == Some(long))
}

/// The argument of subcommand `sub` (or a global one) read from the environment variable `var`.
fn arg_reading<'a>(cmd: &'a clap::Command, sub: &str, var: &str) -> Option<&'a clap::Arg> {
    let sub = cmd.find_subcommand(sub)?;
    sub.get_arguments()
        .chain(cmd.get_arguments())
        .find(|a| a.get_env().is_some_and(|e| e == var))
}

/// What a container runs with for `--long`, as the command line resolves it: the flag, else its
/// environment variable, else its default. A variable from a Secret reads `secret NAME/KEY`.
fn setting(cmd: &clap::Command, container: &Value, long: &str) -> Option<String> {
    let args = args_of(container);
    let flag = format!("--{long}");
    for (i, arg) in args.iter().enumerate() {
        if *arg == flag {
            return args.get(i + 1).cloned();
        }
        if let Some(value) = arg.strip_prefix(&format!("{flag}=")) {
            return Some(value.to_string());
        }
    }
    let arg = arg_of(cmd, args.first()?, long)?;
    if let Some(var) = arg.get_env() {
        let var = var.to_str()?;
        let mut env = container["env"].as_sequence().into_iter().flatten();
        if let Some(entry) = env.find(|e| e["name"] == var) {
            let secret = &entry["valueFrom"]["secretKeyRef"];
            return match (entry["value"].as_str(), secret["name"].as_str()) {
                (Some(value), _) => Some(value.to_string()),
                (None, Some(name)) => Some(format!("secret {name}/{}", secret["key"].as_str()?)),
                (None, None) => None,
            };
        }
    }
    let defaults: Vec<String> = arg
        .get_default_values()
        .iter()
        .map(|d| d.to_string_lossy().into_owned())
        .collect();
    (!defaults.is_empty()).then(|| defaults.join(","))
}

/// The number of a container port given by name or number.
fn port_number(container: &Value, port: &Value) -> Option<u64> {
    if let Some(number) = port.as_u64() {
        return Some(number);
    }
    let name = port.as_str()?;
    let ports = container["ports"].as_sequence()?;
    ports
        .iter()
        .find(|p| p["name"] == name)
        .and_then(|p| p["containerPort"].as_u64())
}

/// Every label of `selector` (a non-empty map) is one of `labels`.
fn selects(selector: &Value, labels: &Value) -> bool {
    let Some(selector) = selector.as_mapping().filter(|m| !m.is_empty()) else {
        return false;
    };
    selector
        .iter()
        .all(|(key, value)| labels.as_mapping().and_then(|l| l.get(key)) == Some(value))
}

/// The pod labels of a workload.
fn pod_labels(doc: &Value) -> &Value {
    &pod_template(doc).expect("a workload")["metadata"]["labels"]
}

/// What is wrong with the receiver's StatefulSet; empty when nothing is.
fn receiver_problems(doc: &Value) -> Vec<String> {
    if doc["kind"] != "StatefulSet" {
        // A Deployment's pods share nothing that outlives them: see receiver.yaml.
        return vec!["not a StatefulSet".into()];
    }
    let cmd = command_line();
    let spec = &doc["spec"];
    let pod = &spec["template"]["spec"];
    let grace_period_seconds = pod["terminationGracePeriodSeconds"].as_u64().unwrap_or(30);
    let mut p = failed![
        doc["apiVersion"] == "apps/v1",
        spec["replicas"].as_u64().is_some_and(|n| n >= 2),
        selects(&spec["selector"]["matchLabels"], pod_labels(doc)),
        spec["serviceName"].is_string(),
        grace_period_seconds >= MIN_GRACE_SECONDS,
        pod["restartPolicy"].is_null() || pod["restartPolicy"] == "Always",
    ];
    let containers = containers(doc);
    p.extend(failed![containers.len() == 1]);
    for c in containers {
        p.extend(security_problems(
            &c["securityContext"],
            &pod["securityContext"],
        ));
        p.extend(env_problems(c));
        p.extend(hidden_env_problems(&cmd, c));
        p.extend(receiver_container_problems(&cmd, doc, c));
    }
    p
}

/// A variable whose value the command line hides (a key, a URL with a password) comes from a
/// Secret, never from a literal.
fn hidden_env_problems(cmd: &clap::Command, container: &Value) -> Vec<String> {
    let sub = args_of(container).first().cloned().unwrap_or_default();
    let env = container["env"].as_sequence().into_iter().flatten();
    env.filter_map(|e| {
        let name = e["name"].as_str()?;
        let arg = arg_reading(cmd, &sub, name)?;
        let secret = !e["valueFrom"]["secretKeyRef"].is_null() && e["value"].is_null();
        (arg.is_hide_env_values_set() && !secret).then(|| format!("{name} is not from a Secret"))
    })
    .collect()
}

/// The receiver's command, port, probes, scrape annotations, resources and spool.
fn receiver_container_problems(cmd: &clap::Command, doc: &Value, c: &Value) -> Vec<String> {
    let args = args_of(c);
    let (requests, limits) = (&c["resources"]["requests"], &c["resources"]["limits"]);
    let memory = |v: &Value| v.as_str().and_then(bytes);
    let mut p = failed![
        c["command"].is_null(), // the image's ENTRYPOINT is the binary
        args.first().map(String::as_str) == Some("receive"),
        args.windows(2).any(|w| w == ["--log-format", "json"]),
        !requests["cpu"].is_null(),
        !limits["cpu"].is_null(),
        memory(&requests["memory"]).is_some(),
        memory(&requests["memory"]) <= memory(&limits["memory"]),
    ];
    let listen = setting(cmd, c, "listen").and_then(|l| l.parse::<std::net::SocketAddr>().ok());
    let Some(listen) = listen else {
        p.push("no --listen address".into());
        return p;
    };
    // The kubelet and the Service reach the pod on its own address, not on loopback.
    p.extend(failed![listen.ip().is_unspecified()]);
    let port = u64::from(listen.port());
    let http = c["ports"]
        .as_sequence()
        .into_iter()
        .flatten()
        .find(|p| p["name"] == "http");
    if http.is_none_or(|h| h["containerPort"].as_u64() != Some(port)) {
        p.push(format!(
            "no container port http {port}, as --listen {listen}"
        ));
    }
    for (probe, path) in [
        ("startupProbe", "/healthz"),
        ("livenessProbe", "/healthz"),
        ("readinessProbe", "/readyz"),
    ] {
        let get = &c[probe]["httpGet"];
        if get["path"] != path {
            p.push(format!("the {probe} does not ask {path}"));
        }
        if port_number(c, &get["port"]) != Some(port) {
            p.push(format!("the {probe} does not ask --listen's port {port}"));
        }
        if !(get["scheme"].is_null() || get["scheme"] == "HTTP") {
            p.push(format!("the {probe} is not plain HTTP"));
        }
    }
    let ready_timeout = c["readinessProbe"]["timeoutSeconds"].as_u64().unwrap_or(1);
    p.extend(failed![ready_timeout > READY_WAIT_SECONDS]);
    let annotations = &doc["spec"]["template"]["metadata"]["annotations"];
    if annotations["prometheus.io/scrape"] == "true" {
        let scraped = annotations["prometheus.io/port"].as_str() == Some(&port.to_string());
        let path = annotations["prometheus.io/path"]
            .as_str()
            .unwrap_or(METRICS_PATH);
        p.extend(failed![scraped, path == METRICS_PATH]);
    }
    p.extend(spool_problems(cmd, doc, c));
    p
}

/// `--spool-dir` is a volume of the replica's own claim, writable and larger than the spool.
fn spool_problems(cmd: &clap::Command, doc: &Value, c: &Value) -> Vec<String> {
    let Some(dir) = setting(cmd, c, "spool-dir") else {
        return vec!["no --spool-dir".into()];
    };
    let dir = Path::new(&dir);
    let mounts = c["volumeMounts"].as_sequence().cloned().unwrap_or_default();
    let Some(mount) = mounts
        .iter()
        .filter(|m| {
            m["mountPath"]
                .as_str()
                .is_some_and(|at| dir.starts_with(at))
        })
        .max_by_key(|m| m["mountPath"].as_str().map_or(0, str::len))
    else {
        return vec![format!("--spool-dir {} is on no volume", dir.display())];
    };
    let name = &mount["name"];
    let claims = doc["spec"]["volumeClaimTemplates"]
        .as_sequence()
        .cloned()
        .unwrap_or_default();
    let Some(claim) = claims.iter().find(|t| t["metadata"]["name"] == *name) else {
        return vec![format!(
            "the spool's volume {name:?} is no claim of the replica's own"
        )];
    };
    let pod_volumes = doc["spec"]["template"]["spec"]["volumes"].as_sequence();
    let shadowed = pod_volumes.is_some_and(|v| v.iter().any(|v| v["name"] == *name));
    let max_mib = setting(cmd, c, "spool-max-mib")
        .and_then(|m| m.parse::<u64>().ok())
        .unwrap_or(DEFAULT_SPOOL_MAX_MIB);
    let storage = claim["spec"]["resources"]["requests"]["storage"]
        .as_str()
        .and_then(bytes)
        .unwrap_or(0);
    let modes = claim["spec"]["accessModes"].as_sequence();
    let own = modes.is_some_and(|m| {
        !m.is_empty()
            && m.iter()
                .all(|m| m == "ReadWriteOnce" || m == "ReadWriteOncePod")
    });
    // The file system's own blocks come out of the volume too.
    let room = storage >= (max_mib << 20) * 5 / 4;
    failed![
        !shadowed,
        mount["readOnly"].as_bool() != Some(true),
        own,
        room
    ]
}

/// The StatefulSets of the manifests: the receivers.
fn receivers(docs: &[(String, Value)]) -> Vec<&Value> {
    let sets = docs.iter().map(|(_, d)| d);
    sets.filter(|d| d["kind"] == "StatefulSet").collect()
}

#[test]
fn the_receiver_is_a_statefulset_of_locked_down_replicas_each_with_its_own_spool() {
    let docs = manifests();
    let receivers = receivers(&docs);
    assert_eq!(receivers.len(), 1, "one receiver");
    for receiver in receivers {
        let problems = receiver_problems(receiver);
        assert!(
            problems.is_empty(),
            "the receiver fails\n{}",
            problems.join("\n")
        );
    }
}

/// The first container of a StatefulSet.
fn receiver_container(receiver: &mut Value) -> &mut Value {
    &mut receiver["spec"]["template"]["spec"]["containers"][0]
}

/// Sets the value that follows `flag` in a container's arguments.
fn set_arg(container: &mut Value, flag: &str, value: &str) {
    let args = container["args"].as_sequence_mut().expect("args");
    let at = args.iter().position(|a| a == flag).expect(flag);
    args[at + 1] = value.into();
}

#[test]
fn broken_receivers_are_caught() {
    let docs = manifests();
    let good = receivers(&docs)[0].clone();
    assert!(receiver_problems(&good).is_empty());
    let breakages: [Breakage; 17] = [
        ("a Deployment", |d| d["kind"] = "Deployment".into()),
        ("one replica", |d| d["spec"]["replicas"] = 1.into()),
        ("no grace", |d| {
            d["spec"]["template"]["spec"]["terminationGracePeriodSeconds"] = 5.into()
        }),
        ("liveness on readiness", |d| {
            receiver_container(d)["livenessProbe"]["httpGet"]["path"] = "/readyz".into()
        }),
        ("readiness nowhere", |d| {
            receiver_container(d)["readinessProbe"]["httpGet"]["path"] = "/ready".into()
        }),
        ("readiness too quick", |d| {
            receiver_container(d)["readinessProbe"]["timeoutSeconds"] = 1.into()
        }),
        ("another port", |d| {
            set_arg(receiver_container(d), "--listen", "0.0.0.0:9090")
        }),
        ("loopback", |d| {
            set_arg(receiver_container(d), "--listen", "127.0.0.1:8080")
        }),
        ("scraped elsewhere", |d| {
            d["spec"]["template"]["metadata"]["annotations"]["prometheus.io/port"] = "9090".into()
        }),
        ("root", |d| {
            d["spec"]["template"]["spec"]["securityContext"]["runAsNonRoot"] = false.into()
        }),
        ("writable", |d| {
            receiver_container(d)["securityContext"]["readOnlyRootFilesystem"] = false.into()
        }),
        ("literal key", |d| {
            let env = receiver_container(d)["env"].as_sequence_mut().unwrap();
            let key = env.iter_mut().find(|e| e["name"] == "LINKRUNNER_API_KEY");
            let key = key.unwrap();
            key["valueFrom"] = Value::Null;
            key["value"] = "lr_0123456789abcdef".into();
        }),
        ("spool in emptyDir", |d| {
            let volume = serde_norway::from_str("{name: spool, emptyDir: {}}").unwrap();
            d["spec"]["template"]["spec"]["volumes"] = Value::Sequence(vec![volume]);
        }),
        ("no claims", |d| {
            d["spec"]["volumeClaimTemplates"] = Value::Null
        }),
        ("spool off its volume", |d| {
            set_arg(receiver_container(d), "--spool-dir", "/tmp/spool")
        }),
        ("spool larger than its volume", |d| {
            set_arg(receiver_container(d), "--spool-max-mib", "4096")
        }),
        ("args", |d| receiver_container(d)["args"][0] = "sync".into()),
    ];
    for (name, breakage) in breakages {
        let mut broken = good.clone();
        breakage(&mut broken);
        assert!(
            !receiver_problems(&broken).is_empty(),
            "{name} went unnoticed"
        );
    }
}

/// The pod labels of every workload but the receivers: the sync jobs.
fn other_pod_labels(docs: &[(String, Value)]) -> Vec<&Value> {
    docs.iter()
        .map(|(_, d)| d)
        .filter(|d| d["kind"] != "StatefulSet" && pod_template(d).is_some())
        .map(pod_labels)
        .collect()
}

#[test]
fn the_services_and_the_budget_select_the_receivers_pods_and_no_others() {
    let docs = manifests();
    let receiver = receivers(&docs)[0];
    let labels = pod_labels(receiver);
    let others = other_pod_labels(&docs);
    let container = containers(receiver)[0];
    let listen_port = port_number(container, &"http".into());
    let of_kind = |kind: &str| -> Vec<&Value> {
        let all = docs.iter().map(|(_, d)| d);
        all.filter(|d| d["kind"] == kind).collect()
    };
    let services = of_kind("Service");
    for service in &services {
        let name = &service["metadata"]["name"];
        let spec = &service["spec"];
        assert_eq!(service["apiVersion"], "v1", "{name:?}");
        // Nothing reaches the receiver from outside the cluster but through the Ingress.
        assert!(
            spec["type"].is_null() || spec["type"] == "ClusterIP",
            "{name:?} is reachable from outside the cluster"
        );
        assert!(
            selects(&spec["selector"], labels),
            "{name:?} does not select the receiver"
        );
        let stray = others.iter().any(|l| selects(&spec["selector"], l));
        assert!(!stray, "{name:?} selects the sync jobs' pods too");
        for port in spec["ports"].as_sequence().into_iter().flatten() {
            assert_eq!(
                port_number(container, &port["targetPort"]),
                listen_port,
                "{name:?}: {port:?} does not lead to --listen's port"
            );
        }
    }
    let front = services
        .iter()
        .find(|s| s["spec"]["clusterIP"] != "None")
        .expect("a ClusterIP Service");
    let http = front["spec"]["ports"]
        .as_sequence()
        .into_iter()
        .flatten()
        .find(|p| p["name"] == "http");
    assert!(
        http.is_some_and(|p| p["port"] == 80),
        "the Service has no port 80 named http"
    );
    let governing = services
        .iter()
        .find(|s| s["metadata"]["name"] == receiver["spec"]["serviceName"]);
    assert!(
        governing.is_some_and(|s| s["spec"]["clusterIP"] == "None"),
        "the StatefulSet's serviceName is no headless Service of the manifests"
    );
    let budgets = of_kind("PodDisruptionBudget");
    assert_eq!(budgets.len(), 1, "one PodDisruptionBudget");
    for budget in budgets {
        let spec = &budget["spec"];
        let replicas = receiver["spec"]["replicas"].as_u64().unwrap();
        assert_eq!(budget["apiVersion"], "policy/v1");
        assert_eq!(spec["minAvailable"], 1);
        assert!(spec["maxUnavailable"].is_null());
        assert!(replicas > 1, "a budget of 1 out of 1 blocks every drain");
        let selector = &spec["selector"]["matchLabels"];
        assert!(selects(selector, labels), "the budget misses the receiver");
        let stray = others.iter().any(|l| selects(selector, l));
        assert!(!stray, "the budget holds the sync jobs' pods too");
    }
}

/// What is wrong with an Ingress for the receiver; empty when nothing is.
fn ingress_problems(ingress: &Value, services: &[&Value]) -> Vec<String> {
    let spec = &ingress["spec"];
    let mut p = failed![
        ingress["apiVersion"] == "networking.k8s.io/v1",
        spec["ingressClassName"].is_string(),
        spec["defaultBackend"].is_null(),
    ];
    let tls_hosts: Vec<&Value> = spec["tls"]
        .as_sequence()
        .into_iter()
        .flatten()
        .filter(|t| t["secretName"].is_string())
        .flat_map(|t| t["hosts"].as_sequence().into_iter().flatten())
        .collect();
    let rules = spec["rules"].as_sequence().cloned().unwrap_or_default();
    p.extend(failed![!rules.is_empty()]);
    for rule in &rules {
        // TLS ends here for every host, and only the webhook path is exposed.
        if !rule["host"].is_string() || !tls_hosts.contains(&&rule["host"]) {
            p.push(format!("{:?} is not served over TLS", rule["host"]));
        }
        let paths = rule["http"]["paths"].as_sequence().cloned();
        let paths = paths.unwrap_or_default();
        if paths.is_empty() {
            p.push(format!("{:?} has no paths", rule["host"]));
        }
        for path in &paths {
            if path["path"] != receive::PATH || path["pathType"] != "Exact" {
                p.push(format!(
                    "{:?} {:?} exposes more than {}",
                    path["pathType"],
                    path["path"],
                    receive::PATH
                ));
            }
            let backend = &path["backend"]["service"];
            let service = services.iter().find(|s| {
                s["metadata"]["name"] == backend["name"] && s["spec"]["clusterIP"] != "None"
            });
            let port = &backend["port"];
            let known = service.is_some_and(|s| {
                let ports = s["spec"]["ports"].as_sequence().into_iter().flatten();
                ports
                    .into_iter()
                    .any(|sp| sp["name"] == port["name"] || sp["port"] == port["number"])
            });
            if !known {
                p.push(format!("{backend:?} is no port of the receiver's Service"));
            }
        }
    }
    p
}

#[test]
fn the_ingress_ends_tls_and_exposes_only_the_webhook_path() {
    let docs = manifests();
    let services: Vec<&Value> = docs
        .iter()
        .map(|(_, d)| d)
        .filter(|d| d["kind"] == "Service")
        .collect();
    let ingresses: Vec<&Value> = docs
        .iter()
        .map(|(_, d)| d)
        .filter(|d| d["kind"] == "Ingress")
        .collect();
    assert_eq!(ingresses.len(), 1, "one example Ingress");
    let good = ingresses[0];
    let problems = ingress_problems(good, &services);
    assert!(
        problems.is_empty(),
        "the Ingress fails\n{}",
        problems.join("\n")
    );
    let breakages: [Breakage; 7] = [
        ("no TLS", |d| d["spec"]["tls"] = Value::Null),
        ("another host", |d| {
            d["spec"]["rules"][0]["host"] = "other.example.com".into()
        }),
        ("a prefix", |d| {
            d["spec"]["rules"][0]["http"]["paths"][0]["pathType"] = "Prefix".into()
        }),
        ("the metrics", |d| {
            let mut metrics = d["spec"]["rules"][0]["http"]["paths"][0].clone();
            metrics["path"] = METRICS_PATH.into();
            let paths = d["spec"]["rules"][0]["http"]["paths"].as_sequence_mut();
            paths.unwrap().push(metrics);
        }),
        ("a default backend", |d| {
            d["spec"]["defaultBackend"] =
                d["spec"]["rules"][0]["http"]["paths"][0]["backend"].clone()
        }),
        ("the headless Service", |d| {
            d["spec"]["rules"][0]["http"]["paths"][0]["backend"]["service"]["name"] =
                "linkrunner-sync-receiver-pods".into()
        }),
        ("no such port", |d| {
            d["spec"]["rules"][0]["http"]["paths"][0]["backend"]["service"]["port"]["name"] =
                "metrics".into()
        }),
    ];
    for (name, breakage) in breakages {
        let mut broken = good.clone();
        breakage(&mut broken);
        assert!(
            !ingress_problems(&broken, &services).is_empty(),
            "{name} went unnoticed"
        );
    }
}

/// Every variable a workload sets is read by the command it runs (under that name), and one
/// whose value the command line hides comes from a Secret.
#[test]
fn every_variable_the_manifests_set_is_read_by_their_command() {
    let cmd = command_line();
    for (file, doc) in manifests()
        .iter()
        .filter(|(_, d)| pod_template(d).is_some())
    {
        for container in containers(doc) {
            let sub = args_of(container).first().cloned().unwrap_or_default();
            assert!(
                cmd.find_subcommand(&sub).is_some(),
                "{file}: no command {sub}"
            );
            for entry in container["env"].as_sequence().into_iter().flatten() {
                let name = entry["name"].as_str().unwrap_or_default();
                assert!(
                    arg_reading(&cmd, &sub, name).is_some(),
                    "{file}: `{sub}` reads no {name}"
                );
            }
            let problems = hidden_env_problems(&cmd, container);
            assert!(problems.is_empty(), "{file}: {problems:?}");
        }
    }
}

/// Every `--flag` a workload passes is one of its command's, in `Cli::command()`.
#[test]
fn every_flag_in_the_manifests_is_in_its_command_line() {
    let cmd = command_line();
    for (file, doc) in manifests()
        .iter()
        .filter(|(_, d)| pod_template(d).is_some())
    {
        for container in containers(doc) {
            let args = args_of(container);
            let sub = args.first().cloned().unwrap_or_default();
            for arg in args.iter().filter(|a| a.starts_with("--")) {
                let long = arg.trim_start_matches("--").split('=').next().unwrap();
                assert!(
                    arg_of(&cmd, &sub, long).is_some(),
                    "{file}: `{sub}` has no --{long}"
                );
            }
        }
    }
}

/// The receiver writes the schema of a CronJob: the same project's Secret, and the same
/// personal-data settings, which the schema records and the receiver must agree with.
#[test]
fn the_receiver_shares_its_schemas_secret_and_personal_data_settings() {
    let docs = manifests();
    let cmd = command_line();
    let cronjobs: Vec<&Value> = docs
        .iter()
        .map(|(_, d)| d)
        .filter(|d| d["kind"] == "CronJob")
        .collect();
    for receiver in receivers(&docs) {
        let container = containers(receiver)[0];
        let schema = setting(&cmd, container, "schema");
        let cronjob = cronjobs
            .iter()
            .find(|c| setting(&cmd, containers(c)[0], "schema") == schema)
            .unwrap_or_else(|| panic!("no CronJob syncs the receiver's schema {schema:?}"));
        assert_eq!(secrets_read(receiver), secrets_read(cronjob), "{schema:?}");
        for long in ["personal-data", "personal-data-keys", "pii-key"] {
            assert_eq!(
                setting(&cmd, container, long),
                setting(&cmd, containers(cronjob)[0], long),
                "--{long} for the schema {schema:?}"
            );
        }
    }
}

/// A receiver started from the manifest's arguments and variables (its address on loopback, its
/// spool in a scratch directory, the Secrets' values the test's own), against the test's
/// database; it stops on SIGTERM.
struct ManifestReceiver {
    child: std::process::Child,
    output: Option<(Drained, Drained)>,
    base: String,
    container: Value,
    grace: Duration,
    _spool: tempfile::TempDir,
}

impl ManifestReceiver {
    fn start(database_url: &str) -> ManifestReceiver {
        let docs = manifests();
        let receiver = receivers(&docs)[0].clone();
        let container = containers(&receiver)[0].clone();
        let port = crate::common::daemons::free_port();
        let spool = tempfile::tempdir().unwrap();
        let mut args = args_of(&container);
        let replace = |args: &mut Vec<String>, flag: &str, value: String| match args
            .iter()
            .position(|a| a == flag)
        {
            Some(at) => args[at + 1] = value,
            None => args.extend([flag.to_string(), value]),
        };
        replace(&mut args, "--listen", format!("127.0.0.1:{port}"));
        let spool_dir = spool.path().display().to_string();
        replace(&mut args, "--spool-dir", spool_dir);
        let mut cmd = Command::new(BIN);
        // The pod's environment only: nothing of the test's.
        cmd.env_clear().args(&args);
        for entry in container["env"].as_sequence().into_iter().flatten() {
            let name = entry["name"].as_str().unwrap();
            let value = match (name, entry["value"].as_str()) {
                (_, Some(value)) => value.to_string(),
                ("DATABASE_URL", None) => database_url.to_string(),
                (_, None) => "a-placeholder-secret-of-the-test".to_string(),
            };
            cmd.env(name, value);
        }
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let output = Some(drain(&mut child));
        let grace = receiver["spec"]["template"]["spec"]["terminationGracePeriodSeconds"]
            .as_u64()
            .unwrap_or(30);
        ManifestReceiver {
            child,
            output,
            base: format!("http://127.0.0.1:{port}"),
            container,
            grace: Duration::from_secs(grace),
            _spool: spool,
        }
    }

    /// Waits until it answers `/healthz`; fails with its output if it ends first.
    async fn wait_until_up(&mut self) {
        let client = reqwest::Client::new();
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                let (out, err) = self.output.take().unwrap();
                let (out, err) = (out.join().unwrap(), err.join().unwrap());
                panic!(
                    "the receiver ended ({status}) before it answered:\n{}{}",
                    String::from_utf8_lossy(&out),
                    String::from_utf8_lossy(&err)
                );
            }
            let up = client.get(format!("{}/healthz", self.base)).send().await;
            if up.is_ok_and(|r| r.status().is_success()) {
                return;
            }
            assert!(std::time::Instant::now() < deadline, "not up within 60 s");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    async fn get(&self, path: &str) -> (u16, String) {
        let response = reqwest::get(format!("{}{path}", self.base)).await.unwrap();
        let status = response.status().as_u16();
        (status, response.text().await.unwrap())
    }

    /// SIGTERM, then its exit status within the pod's grace period.
    async fn terminate(mut self) -> std::process::ExitStatus {
        let pid = i32::try_from(self.child.id()).unwrap();
        // SAFETY: a signal to the child this test started.
        unsafe { libc::kill(pid, libc::SIGTERM) };
        let deadline = std::time::Instant::now() + self.grace;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            if std::time::Instant::now() > deadline {
                let _ = self.child.kill();
                panic!("still running {:?} after SIGTERM", self.grace);
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

#[sqlx::test]
async fn the_receiver_runs_as_its_manifest_says_and_answers_its_probes(
    _: sqlx::postgres::PgPoolOptions,
    db: sqlx::postgres::PgConnectOptions,
) {
    let mut receiver = ManifestReceiver::start(&crate::common::database_url(&db));
    receiver.wait_until_up().await;
    for probe in ["startupProbe", "livenessProbe", "readinessProbe"] {
        let path = receiver.container[probe]["httpGet"]["path"]
            .as_str()
            .unwrap()
            .to_string();
        let (status, body) = receiver.get(&path).await;
        assert_eq!(status, 200, "{probe} {path}: {body}");
    }
    let status = receiver.terminate().await;
    assert!(status.success(), "{status}");
}

#[sqlx::test]
async fn the_receivers_scrape_path_serves_prometheus_text(
    _: sqlx::postgres::PgPoolOptions,
    db: sqlx::postgres::PgConnectOptions,
) {
    let docs = manifests();
    let annotations = &receivers(&docs)[0]["spec"]["template"]["metadata"]["annotations"];
    let path = annotations["prometheus.io/path"]
        .as_str()
        .unwrap_or(METRICS_PATH);
    let mut receiver = ManifestReceiver::start(&crate::common::database_url(&db));
    receiver.wait_until_up().await;
    let (status, body) = receiver.get(path).await;
    assert_eq!(status, 200, "{path}: {body}");
    assert!(
        body.contains("# TYPE "),
        "{path} is no Prometheus text: {body}"
    );
    let status = receiver.terminate().await;
    assert!(status.success(), "{status}");
}
