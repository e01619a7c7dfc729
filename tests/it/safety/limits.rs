//! Resource limits through the binary: a port already taken is a clear message and exit
//! 3, never a panic; a run whose process may open only a few files says so and stops
//! cleanly.

use std::process::Command;

fn fhirsurge() -> Command {
    Command::new(env!("CARGO_BIN_EXE_fhirsurge"))
}

#[test]
fn a_port_already_taken_is_a_clear_message_not_a_panic() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    for what in ["serve-mock", "proxy"] {
        let mut cmd = fhirsurge();
        cmd.args([what, "--listen", &addr]);
        if what == "proxy" {
            cmd.args(["--upstream", "http://127.0.0.1:9/"]);
        }
        let out = cmd.output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(3), "{what}: {stderr}");
        assert!(
            stderr.contains(&format!("cannot listen on {addr}")),
            "{stderr}"
        );
        assert!(stderr.to_lowercase().contains("in use"), "{stderr}");
        assert!(!stderr.contains("panicked"), "{stderr}");
    }
}

/// Runs the smoke scenario for 2 s under a shell prelude (limits set for this child
/// only), bounded by `timeout`; (exit code, stderr, run folder if one was made).
fn limited_smoke(prelude: &str, out: &std::path::Path) -> (Option<i32>, String) {
    let bin = env!("CARGO_BIN_EXE_fhirsurge");
    let script = format!(
        "{prelude}; exec timeout -s KILL 90 {bin} run scenarios/smoke.toml --duration 2s --users 4 --out {}",
        out.display()
    );
    let done = Command::new("sh").args(["-c", &script]).output().unwrap();
    (
        done.status.code(),
        String::from_utf8_lossy(&done.stderr).into_owned(),
    )
}

fn run_dir(out: &std::path::Path) -> Option<std::path::PathBuf> {
    std::fs::read_dir(out)
        .ok()?
        .flatten()
        .map(|e| e.path())
        .find(|p| p.is_dir())
}

#[test]
fn running_out_of_file_descriptors_is_said_plainly_and_the_run_ends() {
    let dir = tempfile::tempdir().unwrap();
    let (code, stderr) = limited_smoke("ulimit -n 20", dir.path());
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert!(
        stderr.contains("the open-file limit is 20"),
        "no warning first: {stderr}"
    );
    // Either the history could not even be opened (exit 3, explained), or the run got
    // through with its failed connections as errors (exit 1 with a report).
    match code {
        Some(3) => assert!(stderr.contains("ran out of file descriptors"), "{stderr}"),
        Some(1) => {
            let run = run_dir(dir.path()).expect("a run folder");
            assert!(run.join("report.json").is_file(), "{stderr}");
        }
        other => panic!("exit {other:?}: {stderr}"),
    }
}
