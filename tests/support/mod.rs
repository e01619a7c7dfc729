//! Helpers shared by the integration test binaries (`it`, and `timing`, whose tests
//! measure time and so run in a binary of their own, after `it`, with nothing else
//! loading the machine): a short scenario against the mock, a whole run in a
//! temporary folder, and the report's schema check. Not every binary uses every helper.
#![allow(dead_code)]

use std::path::Path;

use fhirsurge::run::{self, Options};
use fhirsurge::scenario::Scenario;

/// A short closed-model scenario against the mock.
pub fn scenario(extra: &str) -> Scenario {
    let text = format!(
        r#"
name = "it"
seed = 7
[target]
url = "mock"
timeout = "5s"
[load]
model = "closed"
users = 4
duration = "2s"
[readback]
settle = "100ms"
{extra}
"#
    );
    Scenario::from_str(&text, Path::new("it.toml")).unwrap()
}

/// A finished run and the temporary folder holding its run directory, removed on drop.
pub struct Ran {
    pub outcome: run::Outcome,
    _out: tempfile::TempDir,
}

impl std::ops::Deref for Ran {
    type Target = run::Outcome;

    fn deref(&self) -> &run::Outcome {
        &self.outcome
    }
}

pub async fn run(s: &Scenario) -> Ran {
    let out = tempfile::tempdir().unwrap();
    let outcome = run::execute(s, &Options::new(out.path().to_owned()))
        .await
        .unwrap();
    Ran { outcome, _out: out }
}

/// Validates a report against the committed JSON Schema.
pub fn assert_valid_report(path: &Path) {
    let schema_path = Path::new(env!("CARGO_MANIFEST_DIR")).join("reports/schema.json");
    let schema: serde_json::Value =
        serde_json::from_slice(&std::fs::read(schema_path).unwrap()).unwrap();
    let report: serde_json::Value = serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap();
    let validator = jsonschema::validator_for(&schema).unwrap();
    let errors: Vec<String> = validator
        .iter_errors(&report)
        .map(|e| format!("{} at {}", e, e.instance_path))
        .collect();
    assert!(
        errors.is_empty(),
        "{} does not match reports/schema.json:\n{}",
        path.display(),
        errors.join("\n")
    );
}

/// One timing test at a time: held for a whole test, so a test's latencies are not
/// another test's load.
pub async fn alone() -> tokio::sync::MutexGuard<'static, ()> {
    static LOCK: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
    LOCK.lock().await
}

/// Two subscriptions (a criteria one, a topic one) with short activation and delivery
/// timeouts, for runs that judge notifications.
pub const SUBSCRIPTIONS: &str = r#"
[subscriptions]
timeout = "1500ms"
activation = "3s"
[[subscriptions.subscribe]]
name = "finished"
criteria = "Encounter?status=finished"
payload = "full_resource"
[[subscriptions.subscribe]]
name = "conditions"
form = "topic"
topic = "http://example.org/fhir/SubscriptionTopic/condition-written"
criteria = "Condition"
payload = "id_only"
"#;
