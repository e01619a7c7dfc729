//! What the benches that drive the `fhirsurge` binary as processes share: their knobs
//! from the environment, a process's memory from `/proc`, and a separate `serve-mock` on
//! a free loopback port, killed on drop. Not every bench uses every helper.
#![allow(dead_code)]

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub const BIN: &str = env!("CARGO_BIN_EXE_fhirsurge");

/// A numeric knob from the environment, or its default.
pub fn env(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// A `kB` line of `/proc/<pid>/status` (`VmRSS:`, `VmHWM:`), in MiB.
pub fn status_mib(pid: u32, key: &str) -> Option<f64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix(key))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map(|kb| kb / 1024.0)
}

/// The separate mock, killed on drop.
pub struct Mock {
    child: Child,
    pub port: u16,
}

impl Mock {
    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for Mock {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts `fhirsurge serve-mock` on a free loopback port (bound, released, then bound by
/// the child) and waits until it accepts connections.
pub fn start_mock() -> Mock {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let child = Command::new(BIN)
        .args(["serve-mock", "--listen", &format!("127.0.0.1:{port}")])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mock = Mock { child, port };
    let deadline = Instant::now() + Duration::from_secs(30);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "the mock did not start");
        std::thread::sleep(Duration::from_millis(50));
    }
    mock
}
