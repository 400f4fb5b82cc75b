//! What the benchmarks that drive the job against the simulator share: the simulator and the
//! job as child processes, and signups made through the SDK flow.

// Each benchmark uses a part of it.
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::Instant;

const SYNC: &str = env!("CARGO_BIN_EXE_linkrunner-sync");

pub struct Sim {
    child: Child,
    pub base: String,
}

impl Sim {
    pub fn start(campaigns: usize, users: usize, extra: &[&str]) -> Sim {
        // A process of its own, so that neither the job's figures nor the bench's share its CPU.
        let mut child = Command::new(std::env::current_exe().expect("the bench's path"))
            .args(["--simulator", "--listen", "127.0.0.1:0", "--seed", "7"])
            .args([
                "--campaigns",
                &campaigns.to_string(),
                "--users",
                &users.to_string(),
            ])
            .args(extra)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("linkrunner-sim starts");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let base = line.trim().rsplit(' ').next().unwrap().to_string();
        Sim { child, base }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub async fn stats(&self) -> serde_json::Value {
        self.control("stats").await
    }

    /// Per campaign: its true rows, its counter and how the counter lies.
    pub async fn counters(&self) -> Vec<serde_json::Value> {
        let all = self.control("counters").await;
        all.as_array().unwrap().clone()
    }

    pub async fn control(&self, path: &str) -> serde_json::Value {
        let url = self.base.replace("/api/v1", &format!("/__sim/{path}"));
        reqwest::get(url).await.unwrap().json().await.unwrap()
    }
}

impl Drop for Sim {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One run of the job: wall time, CPU seconds, peak RSS and what it printed.
pub struct Run {
    pub seconds: f64,
    pub cpu: f64,
    pub max_rss_mb: f64,
    pub requests: u64,
    /// Attribution look-ups made, when asked for.
    pub lookups: u64,
}

pub fn admin_url() -> String {
    std::env::var("BENCH_ADMIN_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

pub fn db_url(db: &str) -> String {
    admin_url()
        .rsplit_once('/')
        .map(|(base, _)| format!("{base}/{db}"))
        .unwrap()
}

/// One run of `linkrunner-sync sync` with `args`, in database `db`.
pub fn sync(db: &str, sim: &Sim, args: &[&str]) -> Run {
    let mut all = vec!["sync"];
    all.extend_from_slice(args);
    job(db, Some(sim), &all).0
}

/// One run of `linkrunner-sync` with `args` (a subcommand first), in database `db`: the run
/// and what it printed.
// The child is reaped by wait4, which also reports its CPU time and peak RSS.
#[allow(clippy::zombie_processes)]
pub fn job(db: &str, sim: Option<&Sim>, args: &[&str]) -> (Run, String) {
    let started = Instant::now();
    let mut command = Command::new(SYNC);
    command
        .args(args)
        .env("DATABASE_URL", db_url(db))
        .env("LINKRUNNER_API_KEY", "sim-key")
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
    if let Some(sim) = sim {
        command.env("LINKRUNNER_BASE_URL", &sim.base);
    }
    let child = command.spawn().expect("linkrunner-sync starts");
    let pid = child.id() as libc::pid_t;
    let mut stdout = String::new();
    std::io::Read::read_to_string(&mut child.stdout.unwrap(), &mut stdout).unwrap();
    let mut status = 0;
    // SAFETY: a zeroed rusage is a valid value for wait4 to fill in.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: pid is our own child; status and usage are valid for writes.
    unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
    assert!(
        libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0,
        "{args:?} failed: {stdout}"
    );
    let secs = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    let requests = stdout
        .split(", ")
        .find_map(|part| part.strip_suffix(" requests"))
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    let lookups = stdout
        .split("attribution look-ups: ")
        .nth(1)
        .and_then(|rest| rest.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    let run = Run {
        seconds: started.elapsed().as_secs_f64(),
        cpu: secs(usage.ru_utime) + secs(usage.ru_stime),
        max_rss_mb: usage.ru_maxrss as f64 / 1024.0,
        requests,
        lookups,
    };
    (run, stdout)
}

/// Makes `n` signups through the SDK flow, one in each of the first `n` campaigns; returns
/// those campaigns.
pub async fn signups(sim: &Sim, n: usize, tag: &str) -> Vec<String> {
    let http = reqwest::Client::new();
    let client = sim.base.replace("/api/v1", "/api/client");
    let list: serde_json::Value = http
        .get(format!("{}/campaigns?limit=1000", sim.base))
        .header("linkrunner-key", "sim-key")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let campaigns = &list["data"]["campaigns"].as_array().unwrap()[..n];
    for (i, c) in campaigns.iter().enumerate() {
        let install = format!("bench-install-{tag}{i}");
        for (path, body) in [
            (
                "init",
                serde_json::json!({"token": "sim-token", "install_instance_id": install, "platform": "ANDROID", "link": c["link"]}),
            ),
            (
                "trigger",
                serde_json::json!({"token": "sim-token", "install_instance_id": install, "platform": "ANDROID", "user_data": {"id": format!("bench-user-{tag}{i}")}}),
            ),
        ] {
            http.post(format!("{client}/{path}"))
                .json(&body)
                .send()
                .await
                .unwrap();
        }
    }
    campaigns
        .iter()
        .map(|c| c["display_id"].as_str().unwrap().to_string())
        .collect()
}
