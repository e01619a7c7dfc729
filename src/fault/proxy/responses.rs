//! The response direction of a connection (upstream → client), through the downstream
//! toxics. Without HTTP faults it copies bytes. With them it follows the request
//! direction's plans in order: it frames each response, streams it on, or lets the fault
//! act once the upstream's whole response is in (reset, replace with 502/504, hold).

use std::sync::Arc;
use std::time::Instant;

use bytes::{Buf, BytesMut};
use humantime::format_duration;
use tokio::io::AsyncReadExt;
use tokio::net::tcp::OwnedWriteHalf;
use tokio::sync::mpsc::UnboundedReceiver;

use super::chain::{Chain, Flow};
use super::conn::{Conn, Ending, Plan};
use super::faults::HttpAction;
use super::framing::{self, Asked, ResponseHead};
use super::upstream::UpRead;
use super::{Tag, answer};

const BUFFER: usize = 64 * 1024;

struct Responses<'c, 'a, 'w> {
    conn: &'c Conn<'a>,
    client: &'w mut OwnedWriteHalf,
    chain: Chain,
    reader: Option<UpRead>,
    buf: BytesMut,
    arrived: Instant,
}

/// Runs the response direction until the upstream closes or a fault ends the connection.
pub(super) async fn pump(
    conn: &Conn<'_>,
    client: &mut OwnedWriteHalf,
    chain: Chain,
    mut plans: UnboundedReceiver<Plan>,
) -> Ending {
    let mut r = Responses {
        conn,
        client,
        chain,
        reader: None,
        buf: BytesMut::with_capacity(BUFFER),
        arrived: Instant::now(),
    };
    match r.run(&mut plans).await {
        Ok(ending) => ending,
        Err(e) => {
            tracing::debug!("fault proxy: response direction: {e}");
            Ending::Close
        }
    }
}

impl Responses<'_, '_, '_> {
    async fn run(&mut self, plans: &mut UnboundedReceiver<Plan>) -> std::io::Result<Ending> {
        loop {
            let plan = match self.reader.as_mut() {
                None => plans.recv().await,
                // Between responses, watch the upstream too: it may close an idle connection.
                Some(reader) => tokio::select! {
                    plan = plans.recv() => plan,
                    n = reader.read_buf(&mut self.buf) => {
                        if n? == 0 {
                            return self.upstream_closed().await;
                        }
                        if self.buf.len() > framing::MAX_HEAD {
                            tracing::debug!("fault proxy: the upstream sends what no request asked for");
                            return Ok(Ending::Close);
                        }
                        continue;
                    }
                },
            };
            let Some(plan) = plan else {
                return Ok(Ending::Close);
            };
            let next = match plan {
                Plan::Attach(reader) => {
                    self.reader = Some(reader);
                    if !self.conn.shared.framing {
                        return self.copy().await;
                    }
                    None
                }
                Plan::Answer { bytes, close } => {
                    self.arrived = Instant::now();
                    match self.send(&bytes).await? {
                        None if close => Some(Ending::Close),
                        sent => sent,
                    }
                }
                Plan::Response { asked, fault, tag } => self.respond(asked, fault, tag).await?,
            };
            if let Some(ending) = next {
                return Ok(ending);
            }
        }
    }

    /// Reads more from the upstream into the buffer: false at EOF.
    async fn fill(&mut self) -> std::io::Result<bool> {
        let Some(reader) = self.reader.as_mut() else {
            return Ok(false);
        };
        if self.buf.capacity() - self.buf.len() < BUFFER / 4 {
            self.buf.reserve(BUFFER);
        }
        let n = reader.read_buf(&mut self.buf).await?;
        self.arrived = Instant::now();
        Ok(n > 0)
    }

    /// Writes to the client through the downstream toxics: `Some` when that ends the connection.
    async fn send(&mut self, bytes: &[u8]) -> std::io::Result<Option<Ending>> {
        let flow = self
            .chain
            .send(self.conn, self.client, bytes, self.arrived)
            .await?;
        Ok(match flow {
            Flow::Go => None,
            Flow::End(ending) => Some(ending),
        })
    }

    /// Sends the first `n` buffered bytes and drops them from the buffer.
    async fn send_buffered(&mut self, n: usize) -> std::io::Result<Option<Ending>> {
        let flow = self
            .chain
            .send(self.conn, self.client, &self.buf[..n], self.arrived)
            .await?;
        self.buf.advance(n);
        Ok(match flow {
            Flow::Go => None,
            Flow::End(ending) => Some(ending),
        })
    }

    /// Opaque bytes until the upstream closes.
    async fn copy(&mut self) -> std::io::Result<Ending> {
        loop {
            if !self.buf.is_empty()
                && let Some(ending) = self.send_buffered(self.buf.len()).await?
            {
                return Ok(ending);
            }
            if !self.fill().await? {
                return self.upstream_closed().await;
            }
        }
    }

    async fn upstream_closed(&mut self) -> std::io::Result<Ending> {
        self.chain.close(self.conn, self.client).await?;
        Ok(Ending::Close)
    }

    /// The next final response head (interim 1xx ones are passed on when `pass_interim`).
    async fn final_head(
        &mut self,
        asked: Asked,
        pass_interim: bool,
    ) -> std::io::Result<Option<ResponseHead>> {
        loop {
            let parsed =
                framing::parse_response(&self.buf, asked).map_err(std::io::Error::other)?;
            match parsed {
                Some(head) if head.interim => {
                    if pass_interim {
                        if self.send_buffered(head.len).await?.is_some() {
                            return Ok(None);
                        }
                    } else {
                        self.buf.advance(head.len);
                    }
                }
                Some(head) => return Ok(Some(head)),
                None if !self.fill().await? => return Ok(None),
                None => {}
            }
        }
    }

    /// One response, for a forwarded request.
    async fn respond(
        &mut self,
        asked: Asked,
        fault: Option<(usize, HttpAction)>,
        tag: Arc<Tag>,
    ) -> std::io::Result<Option<Ending>> {
        let Some(head) = self.final_head(asked, fault.is_none()).await? else {
            return self.upstream_closed().await.map(Some);
        };
        match fault {
            None => self.stream(head).await,
            Some((i, action)) => self.intervene(head, i, action, &tag).await,
        }
    }

    /// Passes the response on as it arrives.
    async fn stream(&mut self, head: ResponseHead) -> std::io::Result<Option<Ending>> {
        let mut body = head.body;
        let mut start = head.len;
        loop {
            let (used, done) = body
                .advance(&self.buf[start..])
                .map_err(std::io::Error::other)?;
            let ready = start + used;
            if ready > 0
                && let Some(ending) = self.send_buffered(ready).await?
            {
                return Ok(Some(ending));
            }
            start = 0;
            if done {
                break;
            }
            if !self.fill().await? {
                return self.upstream_closed().await.map(Some);
            }
        }
        if head.tunnel {
            return self.copy().await.map(Some);
        }
        Ok(None)
    }

    /// Reads the whole response (keeping it when `keep`): (the bytes, whether the upstream closed).
    async fn drain(&mut self, head: &ResponseHead, keep: bool) -> std::io::Result<(Vec<u8>, bool)> {
        let mut kept = Vec::new();
        let mut body = head.body.clone();
        let mut start = head.len;
        loop {
            let (used, done) = body
                .advance(&self.buf[start..])
                .map_err(std::io::Error::other)?;
            if keep {
                kept.extend_from_slice(&self.buf[..start + used]);
            }
            self.buf.advance(start + used);
            start = 0;
            if done {
                return Ok((kept, false));
            }
            if !self.fill().await? {
                return Ok((kept, true));
            }
        }
    }

    /// An HTTP fault acting once the upstream's whole response is in.
    async fn intervene(
        &mut self,
        head: ResponseHead,
        i: usize,
        action: HttpAction,
        tag: &Tag,
    ) -> std::io::Result<Option<Ending>> {
        let got = head.status;
        let (kept, closed) = self
            .drain(&head, matches!(action, HttpAction::Stall { .. }))
            .await?;
        let sent = match action {
            HttpAction::ResetAfter => {
                self.conn
                    .record(i, tag, format!("reset after {got} from upstream"));
                return Ok(Some(Ending::Reset));
            }
            HttpAction::Status {
                status,
                retry_after,
            } => {
                self.conn
                    .record(i, tag, format!("{status} after {got} from upstream"));
                let label = &self.conn.shared.faults[i].label;
                let bytes = answer::status_response(status, retry_after, false, label);
                self.send(&bytes).await?
            }
            HttpAction::Stall { hold } => {
                let detail = format!(
                    "held the {got} response from upstream for {}",
                    format_duration(hold)
                );
                self.conn.record(i, tag, detail);
                self.conn.shared.sleep_unless_healed(hold).await;
                self.send(&kept).await?
            }
            HttpAction::ResetBefore => None,
        };
        if sent.is_some() {
            return Ok(sent);
        }
        if closed {
            return self.upstream_closed().await.map(Some);
        }
        Ok(None)
    }
}
