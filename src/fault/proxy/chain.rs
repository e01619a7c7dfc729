//! The TCP toxics of one direction of one connection, applied to the bytes written that
//! way: asks `toxics::plan` what to do with a chunk, records the injection in the ledger
//! (once per request per toxic), then waits, writes, drops, closes or resets. Waits end
//! early when the faults are healed. With no toxic in force a chunk is written as is.

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use humantime::format_duration;
use tokio::io::{AsyncWrite, AsyncWriteExt};

use super::conn::{Conn, Ending};
use super::faults::Toxic;
use super::toxics::{self, Delivery, Segment, State};
use crate::fault::Stream;

/// One toxic drawn by a connection.
pub(super) struct Link {
    fault: usize,
    state: State,
    /// The request number last recorded in the ledger for this toxic.
    recorded: Option<u64>,
}

impl Link {
    pub(super) fn new(fault: usize, state: State) -> Link {
        Link {
            fault,
            state,
            recorded: None,
        }
    }
}

/// Whether the direction goes on after a chunk.
pub(super) enum Flow {
    Go,
    End(Ending),
}

/// The toxics of one direction, in scenario order.
pub(super) struct Chain {
    stream: Stream,
    links: Vec<Link>,
    /// Per link: in force for the chunk at hand.
    active: Vec<bool>,
}

impl Chain {
    pub(super) fn new(stream: Stream, links: Vec<Link>) -> Chain {
        let active = vec![false; links.len()];
        Chain {
            stream,
            links,
            active,
        }
    }

    /// Marks the links in force now (faults enabled, inside their window): false if none is.
    fn refresh(&mut self, conn: &Conn<'_>) -> bool {
        if self.links.is_empty() {
            return false;
        }
        let shared = conn.shared;
        let on = shared.enabled();
        let elapsed = shared.ledger.elapsed();
        for (a, l) in self.active.iter_mut().zip(&self.links) {
            *a = on && shared.faults[l.fault].spec.window().contains(elapsed);
        }
        self.active.contains(&true)
    }

    /// Sends a chunk that arrived at `arrived` through the toxics to `w`.
    pub(super) async fn send<W>(
        &mut self,
        conn: &Conn<'_>,
        w: &mut W,
        data: &[u8],
        arrived: Instant,
    ) -> std::io::Result<Flow>
    where
        W: AsyncWrite + Unpin + ?Sized,
    {
        if !self.refresh(conn) {
            w.write_all(data).await?;
            return Ok(Flow::Go);
        }
        let states = self.links.iter_mut().zip(&self.active).filter(|(_, a)| **a);
        let delivery = toxics::plan(data.len(), states.map(|(l, _)| &mut l.state));
        let stream = self.stream;
        match delivery {
            Delivery::Drop => {
                self.note(conn, |t| match t {
                    Toxic::Timeout { .. } => Some(format!("timeout: dropped the data {stream}")),
                    _ => None,
                });
                conn.dropped.store(true, Ordering::SeqCst);
                Ok(Flow::Go)
            }
            Delivery::Reset { after } => self.reset(conn, w, data, after).await,
            Delivery::Segments { segments, close } => {
                self.note(conn, |t| shaping(t).map(|what| format!("{what} {stream}")));
                let healed = deliver(conn, w, data, &segments, arrived).await?;
                if !close || healed {
                    return Ok(Flow::Go);
                }
                self.note(conn, |t| match t {
                    Toxic::LimitData { bytes } => {
                        Some(format!("limit_data after {bytes} bytes {stream}"))
                    }
                    _ => None,
                });
                Ok(Flow::End(Ending::Close))
            }
        }
    }

    /// `reset_peer`: waits `after`, then resets — unless healed meanwhile, when the data
    /// goes through after all.
    async fn reset<W>(
        &mut self,
        conn: &Conn<'_>,
        w: &mut W,
        data: &[u8],
        after: Duration,
    ) -> std::io::Result<Flow>
    where
        W: AsyncWrite + Unpin + ?Sized,
    {
        if !conn.shared.sleep_unless_healed(after).await {
            w.write_all(data).await?;
            return Ok(Flow::Go);
        }
        let stream = self.stream;
        self.note(conn, |t| match t {
            Toxic::ResetPeer { .. } => Some(format!(
                "reset_peer: connection reset {} after data arrived {stream}",
                format_duration(after)
            )),
            _ => None,
        });
        Ok(Flow::End(Ending::Reset))
    }

    /// Records, for the active links `detail` has words for, the injection on the current
    /// request — once per request and toxic.
    fn note(&mut self, conn: &Conn<'_>, detail: impl Fn(&Toxic) -> Option<String>) {
        let (seq, tag) = conn.current();
        for (l, a) in self.links.iter_mut().zip(&self.active) {
            if !*a || l.recorded == Some(seq) {
                continue;
            }
            if let Some(text) = detail(&l.state.toxic) {
                l.recorded = Some(seq);
                conn.record(l.fault, &tag, text);
            }
        }
    }

    /// The source of this direction ended: close the other side, after `slow_close`'s delay.
    pub(super) async fn close<W>(&mut self, conn: &Conn<'_>, w: &mut W) -> std::io::Result<()>
    where
        W: AsyncWrite + Unpin + ?Sized,
    {
        self.refresh(conn);
        let (_, tag) = conn.current();
        for (l, a) in self.links.iter().zip(&self.active) {
            if let (Toxic::SlowClose { delay }, true) = (l.state.toxic, *a) {
                let detail = format!(
                    "slow_close: close delayed {} {}",
                    format_duration(delay),
                    self.stream
                );
                conn.record(l.fault, &tag, detail);
                conn.shared.sleep_unless_healed(delay).await;
            }
        }
        w.shutdown().await
    }
}

/// Words for a toxic that reshapes the bytes it lets through; `None` for the others.
fn shaping(toxic: &Toxic) -> Option<String> {
    Some(match *toxic {
        Toxic::Latency { latency, jitter } if jitter.is_zero() => {
            format!("latency {}", format_duration(latency))
        }
        Toxic::Latency { latency, jitter } => {
            format!(
                "latency {} ± {}",
                format_duration(latency),
                format_duration(jitter)
            )
        }
        Toxic::Bandwidth { rate } => format!("bandwidth {rate} KB/s"),
        Toxic::Slicer {
            average,
            variation,
            delay,
        } => {
            format!(
                "slicer {average}±{variation} bytes, {} apart",
                format_duration(delay)
            )
        }
        _ => return None,
    })
}

/// Writes the segments after their delays (the first one counted from `arrived`); once the
/// faults are healed the rest goes at once. Returns whether it was healed meanwhile.
async fn deliver<W>(
    conn: &Conn<'_>,
    w: &mut W,
    data: &[u8],
    segments: &[Segment],
    arrived: Instant,
) -> std::io::Result<bool>
where
    W: AsyncWrite + Unpin + ?Sized,
{
    let mut healed = false;
    for (k, s) in segments.iter().enumerate() {
        if !healed && !s.delay.is_zero() {
            let wait = if k == 0 {
                (arrived + s.delay).saturating_duration_since(Instant::now())
            } else {
                s.delay
            };
            healed = !conn.shared.sleep_unless_healed(wait).await;
        }
        w.write_all(&data[s.range.clone()]).await?;
    }
    Ok(healed)
}
