//! The real binary, the way a user runs it: exit codes and messages for bad input and an
//! unreachable target. (Everything else is tested through the library.)

use std::process::Command;

fn fhirsurge() -> Command {
    Command::new(env!("CARGO_BIN_EXE_fhirsurge"))
}

#[test]
fn a_bad_scenario_exits_2_naming_file_line_column_and_key_and_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.toml");
    std::fs::write(
        &path,
        "name = \"bad\"\n[target]\nurl = \"mock\"\n[load]\nmodel = \"closed\"\nusers = 2\nduraton = \"1s\"\n",
    )
    .unwrap();
    let out_dir = dir.path().join("out");
    let out = fhirsurge()
        .arg("run")
        .arg(&path)
        .arg("--out")
        .arg(&out_dir)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&format!("{}:7:1", path.display())),
        "{stderr}"
    );
    assert!(stderr.contains("duraton"), "{stderr}");
    assert!(!out_dir.exists(), "nothing is written");
}

#[test]
fn an_unreachable_target_exits_3_quickly_with_the_url() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/fhir/", listener.local_addr().unwrap());
    drop(listener);
    let dir = tempfile::tempdir().unwrap();
    let out = fhirsurge()
        .args([
            "run",
            concat!(env!("CARGO_MANIFEST_DIR"), "/scenarios/smoke.toml"),
            "--target",
            &url,
            "--out",
        ])
        .arg(dir.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains(&url), "{stderr}");
}
