//! The run's live judge: a thread that parses every history line the collector takes,
//! all of them whatever the history file keeps (`[history] keep`), and feeds the
//! consistency checker and the access collector while the run goes. The run's findings
//! therefore never depend on what the file kept, and nothing is read back from disk to
//! judge the run (`fhirsurge check` still judges a file). Uses `check` and `history`.

use tokio::sync::mpsc;

use crate::check;
use crate::history::Record;

/// Batches of lines waiting for the judge; the collector waits when they are all full.
const QUEUE: usize = 16;

/// What the judge found when the records ended.
pub struct Judged {
    /// The consistency checker's outcome.
    pub outcome: check::Outcome,
    /// Every access, for the audit reconciliation and the leak check.
    pub access: check::access::Access,
}

/// Why the judge could not judge the run.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("history line {line} (of the run's stream) is not a record: {source}")]
    Unreadable {
        line: u64,
        #[source]
        source: serde_json::Error,
    },
    #[error("the run's checker stopped: {0}")]
    Stopped(String),
}

/// The collector's end: hands lines to the judge.
#[derive(Clone, Debug)]
pub struct Feed {
    tx: mpsc::Sender<Vec<Vec<u8>>>,
}

impl Feed {
    /// Hands a batch of lines over, waiting while the judge is behind.
    pub async fn send(&self, lines: Vec<Vec<u8>>) {
        // A judge gone early has failed; `Judge::finish` says why.
        let _ = self.tx.send(lines).await;
    }
}

/// The running judge.
pub struct Judge {
    feed: Feed,
    thread: std::thread::JoinHandle<Result<Judged, Error>>,
}

impl Judge {
    /// Starts the judge's thread, judging with `options`; every call is kept for the
    /// audit reconciliation only when `audit` (otherwise only the leak check's state).
    pub fn start(options: check::Options, audit: bool) -> Result<Judge, Error> {
        let (tx, rx) = mpsc::channel(QUEUE);
        let access = if audit {
            check::access::Collecting::default()
        } else {
            check::access::Collecting::without_calls()
        };
        let thread = std::thread::Builder::new()
            .name("fhirsurge-judge".into())
            .spawn(move || judge(rx, &options, access))
            .map_err(|e| Error::Stopped(e.to_string()))?;
        Ok(Judge {
            feed: Feed { tx },
            thread,
        })
    }

    /// Where the collector sends lines.
    pub fn feed(&self) -> Feed {
        self.feed.clone()
    }

    /// Waits for the judge to take the last line (every [`Feed`] must be dropped).
    pub async fn finish(self) -> Result<Judged, Error> {
        let Judge { feed, thread } = self;
        drop(feed);
        tokio::task::spawn_blocking(move || thread.join())
            .await
            .map_err(|e| Error::Stopped(e.to_string()))?
            .map_err(|_| Error::Stopped("the checker's thread panicked".into()))?
    }
}

/// The thread: every line, in the order the collector took them (the file's order).
fn judge(
    mut rx: mpsc::Receiver<Vec<Vec<u8>>>,
    options: &check::Options,
    mut access: check::access::Collecting,
) -> Result<Judged, Error> {
    let mut checker = check::Live::new(options);
    let mut line = 0u64;
    let mut failed = None;
    while let Some(batch) = rx.blocking_recv() {
        for bytes in batch {
            line += 1;
            if failed.is_some() {
                continue;
            }
            match serde_json::from_slice::<Record>(&bytes) {
                Ok(record) => {
                    access.see(&record);
                    checker.see(record);
                }
                Err(source) => failed = Some(Error::Unreadable { line, source }),
            }
        }
    }
    if let Some(e) = failed {
        return Err(e);
    }
    Ok(Judged {
        outcome: checker.finish(),
        access: access.finish(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::history::{Completion, Event, Interaction, Op};

    fn line(r: &Record) -> Vec<u8> {
        serde_json::to_vec(r).unwrap_or_default()
    }

    #[tokio::test]
    async fn judges_the_lines_as_the_file_checker_would() {
        let records = vec![
            Record {
                index: 0,
                time_us: 1,
                process: 0,
                event: Event::Invoke(Op {
                    f: Interaction::Read,
                    resource_type: "Patient".into(),
                    id: Some("p1".into()),
                    ..Op::default()
                }),
            },
            Record {
                index: 1,
                time_us: 5,
                process: 0,
                event: Event::Ok(Completion {
                    invoke: 0,
                    status: Some(404),
                    ..Completion::default()
                }),
            },
        ];
        let judge = Judge::start(check::Options::default(), true).unwrap();
        judge.feed().send(records.iter().map(line).collect()).await;
        let judged = judge.finish().await.unwrap();
        let offline = check::check(records, &check::Options::default());
        assert_eq!(judged.outcome, offline);
        assert_eq!(judged.outcome.stats.records, 2);
        assert_eq!(judged.access.calls.len(), 1);
    }

    #[tokio::test]
    async fn an_unreadable_line_is_an_error_not_an_end() {
        let judge = Judge::start(check::Options::default(), true).unwrap();
        judge.feed().send(vec![b"{not json".to_vec()]).await;
        let err = judge.finish().await.err();
        assert!(
            matches!(err, Some(Error::Unreadable { line: 1, .. })),
            "{err:?}"
        );
    }
}
