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
