//! Child processes of the tests: their output drained while they run, and their peak memory.

use std::io::Read;
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

/// Runs `cmd` to its end; its output and its own peak RSS in KiB, read from the kernel's
/// high-water mark while it runs (`ru_maxrss` would count the test process it was spawned from).
pub fn run_measured(mut cmd: Command) -> (Output, u64) {
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (out, err) = drain(&mut child);
    let status_file = format!("/proc/{}/status", child.id());
    let mut peak_kib = 0;
    // A hang guard: the runs measured here end in seconds.
    let deadline = std::time::Instant::now() + Duration::from_secs(300);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            panic!("the run did not end within 300 s");
        }
        let hwm = std::fs::read_to_string(&status_file)
            .ok()
            .and_then(|s| {
                s.lines()
                    .find_map(|l| l.strip_prefix("VmHWM:"))
                    .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            })
            .unwrap_or(0);
        peak_kib = peak_kib.max(hwm);
        std::thread::sleep(Duration::from_millis(2));
    };
    let output = Output {
        status,
        stdout: out.join().unwrap(),
        stderr: err.join().unwrap(),
    };
    (output, peak_kib)
}

pub type Drained = std::thread::JoinHandle<Vec<u8>>;

pub fn drain(child: &mut Child) -> (Drained, Drained) {
    let mut stdout = child.stdout.take().unwrap();
    let mut stderr = child.stderr.take().unwrap();
    (
        std::thread::spawn(move || {
            let mut b = Vec::new();
            let _ = stdout.read_to_end(&mut b);
            b
        }),
        std::thread::spawn(move || {
            let mut b = Vec::new();
            let _ = stderr.read_to_end(&mut b);
            b
        }),
    )
}
