//! The request direction of a connection (client → upstream): finds each request's head
//! and body on the keep-alive stream, lets the HTTP faults decide on it, rewrites `Host`,
//! opens the upstream connection for the first request it forwards, and writes through
//! the upstream toxics. It tells the response direction, in order, what to expect.

use std::sync::Arc;
use std::time::Instant;

use bytes::{Buf, BytesMut};
use tokio::io::AsyncReadExt;
use tokio::net::tcp::OwnedReadHalf;
use tokio::sync::mpsc::UnboundedSender;

use super::chain::{Chain, Flow};
use super::conn::{Conn, Ending, Plan};
use super::faults::HttpAction;
use super::framing::{self, Body, RequestHead};
use super::upstream::UpWrite;
use super::{Tag, answer};
use crate::fault::REQUEST_HEADER;
use crate::vocab::control;

const BUFFER: usize = 64 * 1024;

/// A request body up to this size is awaited whole before its head is decided on, so
/// that the ledger can name the resource it carries; a larger one is not.
const BODY_SEEN: u64 = 1024 * 1024;

/// Where the stream is.
enum Mode {
    /// Expecting a request head.
    Head,
    /// Inside a body: forwarded, or discarded (the proxy answered the request itself).
    Body { body: Body, forward: bool },
    /// After CONNECT or an upgrade: opaque bytes.
    Tunnel,
}

/// What handling a head led to.
enum Next {
    Go,
    End(Ending),
    /// Read no more: the response direction ends the connection.
    Hold,
}

struct Requests<'c, 'a> {
    conn: &'c Conn<'a>,
    chain: Chain,
    plans: UnboundedSender<Plan>,
    upstream: Option<UpWrite>,
    buf: BytesMut,
    /// Bytes to write upstream once the buffer is used up.
    out: Vec<u8>,
    mode: Mode,
    /// The tag of every request when no fault is configured (nothing to record).
    blank: Arc<Tag>,
}

/// Runs the request direction until the client closes or a fault ends the connection.
pub(super) async fn pump(
    conn: &Conn<'_>,
    client: &mut OwnedReadHalf,
    chain: Chain,
    plans: UnboundedSender<Plan>,
) -> Ending {
    let mut r = Requests {
        conn,
        chain,
        plans,
        upstream: None,
        buf: BytesMut::with_capacity(BUFFER),
        out: Vec::with_capacity(BUFFER),
        mode: Mode::Head,
        blank: Arc::default(),
    };
    match r.run(client).await {
        Ok(ending) => ending,
        Err(e) => {
            tracing::debug!("fault proxy: request direction: {e}");
            Ending::Close
        }
    }
}

impl Requests<'_, '_> {
    async fn run(&mut self, client: &mut OwnedReadHalf) -> std::io::Result<Ending> {
        let mut arrived = Instant::now();
        loop {
            let need_more = match self.step().await? {
                Some(Next::End(ending)) => return Ok(ending),
                Some(Next::Hold) => {
                    self.flush(arrived).await?;
                    return std::future::pending().await;
                }
                Some(Next::Go) => false,
                None => true,
            };
            if !need_more && !self.buf.is_empty() {
                continue;
            }
            if let Some(ending) = self.flush(arrived).await? {
                return Ok(ending);
            }
            if self.buf.capacity() - self.buf.len() < BUFFER / 4 {
                self.buf.reserve(BUFFER);
            }
            if client.read_buf(&mut self.buf).await? == 0 {
                return self.client_closed().await;
            }
            arrived = Instant::now();
        }
    }

    /// Handles what is buffered: `None` when more bytes are needed.
    async fn step(&mut self) -> std::io::Result<Option<Next>> {
        if self.buf.is_empty() {
            return Ok(None);
        }
        match &mut self.mode {
            Mode::Head => match framing::parse_request(&self.buf, REQUEST_HEADER) {
                Ok(Some(head)) if self.awaits_body(&head) => Ok(None),
                Ok(Some(head)) => self.head(head).await.map(Some),
                Ok(None) => Ok(None),
                Err(e) => Err(std::io::Error::other(e)),
            },
            Mode::Body { body, forward } => {
                let (used, done) = body.advance(&self.buf).map_err(std::io::Error::other)?;
                if *forward {
                    self.out.extend_from_slice(&self.buf[..used]);
                }
                self.buf.advance(used);
                if done {
                    self.mode = Mode::Head;
                }
                Ok(Some(Next::Go))
            }
            Mode::Tunnel => {
                self.out.extend_from_slice(&self.buf);
                self.buf.clear();
                Ok(Some(Next::Go))
            }
        }
    }

    /// Whether to wait for the rest of a small body before deciding on its head (only
    /// when a fault could be recorded for it). A client waiting for `100 Continue` is not
    /// waited for.
    fn awaits_body(&self, head: &RequestHead) -> bool {
        match head.body {
            framing::Body::Length(n) => {
                !self.conn.shared.faults.is_empty()
                    && !head.expect_continue
                    && n <= BODY_SEEN
                    && ((self.buf.len() - head.len) as u64) < n
            }
            _ => false,
        }
    }

    /// `GET /__fhirsurge/ledger` to a proxy that serves its ledger: answered here.
    fn is_ledger(&self, head: &RequestHead) -> bool {
        let shared = self.conn.shared;
        let path = &self.buf[head.target.clone()];
        let path = path.split(|&b| b == b'?').next().unwrap_or_default();
        shared.serve_ledger
            && &self.buf[head.method.clone()] == b"GET"
            && path == super::LEDGER_PATH.as_bytes()
    }

    /// Answers the ledger request with every entry so far — or refuses it when the
    /// control policy does not admit its token.
    fn ledger(&mut self, head: RequestHead) -> Next {
        let close = head.expect_continue;
        let presented = header_value(&self.buf[..head.len], control::TOKEN_HEADER);
        let bytes = match self.conn.shared.control.admits(presented.as_deref()) {
            control::Verdict::Allowed => {
                let entries = self.conn.shared.ledger.entries();
                let body = serde_json::to_vec(&entries).unwrap_or_default();
                answer::json_response(&body, close)
            }
            control::Verdict::Refused(status, why) => answer::refusal(status, why, close),
        };
        let _ = self.plans.send(Plan::Answer { bytes, close });
        if close {
            return Next::Hold;
        }
        self.buf.advance(head.len);
        self.mode = Mode::Body {
            body: head.body,
            forward: false,
        };
        Next::Go
    }

    /// A request head: decide, then answer, reset or forward it.
    async fn head(&mut self, head: RequestHead) -> std::io::Result<Next> {
        let shared = self.conn.shared;
        if self.is_ledger(&head) {
            return Ok(self.ledger(head));
        }
        let tag = if shared.faults.is_empty() {
            self.blank.clone()
        } else {
            let tag = Arc::new(self.tag(&head));
            self.conn.begin(tag.clone());
            tag
        };
        let fault = if shared.framing {
            shared.decide(&tag)
        } else {
            None
        };
        if let Some((i, action)) = fault
            && !action.forwards()
        {
            return Ok(self.refuse(head, i, action, &tag));
        }
        if self.upstream.is_none() && !self.connect().await {
            return Ok(Next::End(Ending::Reset));
        }
        if shared.framing {
            let plan = Plan::Response {
                asked: head.asked,
                fault,
                tag,
            };
            let _ = self.plans.send(plan);
        }
        framing::write_head(
            &self.buf,
            &head,
            &shared.upstream.host_header,
            &mut self.out,
        );
        self.buf.advance(head.len);
        self.mode = if head.tunnel {
            Mode::Tunnel
        } else {
            Mode::Body {
                body: head.body,
                forward: true,
            }
        };
        Ok(Next::Go)
    }

    /// An HTTP fault that keeps the request from the upstream.
    fn refuse(&mut self, head: RequestHead, i: usize, action: HttpAction, tag: &Tag) -> Next {
        if let HttpAction::Status {
            status,
            retry_after,
        } = action
        {
            let detail = format!("answered {status} without forwarding the request");
            self.conn.record(i, tag, detail);
            let label = &self.conn.shared.faults[i].label;
            // A client waiting for `100 Continue` may never send the body: end the
            // connection after the answer rather than guess where the next request starts.
            let close = head.expect_continue;
            let bytes = answer::status_response(status, retry_after, close, label);
            let _ = self.plans.send(Plan::Answer { bytes, close });
            if close {
                return Next::Hold;
            }
            self.buf.advance(head.len);
            self.mode = Mode::Body {
                body: head.body,
                forward: false,
            };
            return Next::Go;
        }
        let detail = "reset when the request head arrived, before forwarding any byte".into();
        self.conn.record(i, tag, detail);
        Next::End(Ending::Reset)
    }

    fn tag(&self, head: &RequestHead) -> Tag {
        let text =
            |r: &std::ops::Range<usize>| String::from_utf8_lossy(&self.buf[r.clone()]).into_owned();
        let target = text(&head.target);
        let body = match head.body {
            framing::Body::Length(n) => self.buf.get(head.len..head.len + n as usize),
            _ => None,
        };
        Tag {
            request: head.request.as_ref().map(text),
            resource_type: framing::resource_type(&target, &self.conn.shared.upstream.base_path),
            method: Some(text(&head.method)),
            path: Some(target),
            identifier: body.and_then(identifier_of),
        }
    }

    /// Opens the upstream connection; false when it cannot be reached.
    async fn connect(&mut self) -> bool {
        match self.conn.shared.upstream.connect().await {
            Ok((read, write)) => {
                let _ = self.plans.send(Plan::Attach(read));
                self.upstream = Some(write);
                true
            }
            Err(e) => {
                tracing::warn!(
                    "fault proxy: upstream unreachable, resetting the client connection: {e}"
                );
                false
            }
        }
    }

    /// Writes what is pending upstream through the toxics.
    async fn flush(&mut self, arrived: Instant) -> std::io::Result<Option<Ending>> {
        let Some(upstream) = self.upstream.as_mut() else {
            return Ok(None);
        };
        if self.out.is_empty() {
            return Ok(None);
        }
        let flow = self
            .chain
            .send(self.conn, upstream, &self.out, arrived)
            .await?;
        self.out.clear();
        Ok(match flow {
            Flow::Go => None,
            Flow::End(ending) => Some(ending),
        })
    }

    async fn client_closed(&mut self) -> std::io::Result<Ending> {
        if let Some(upstream) = self.upstream.as_mut() {
            self.chain.close(self.conn, upstream).await?;
        }
        Ok(Ending::Close)
    }
}

/// Identifier systems the fhirsurge harness writes start with this.
const HARNESS_SYSTEM: &str = "urn:fhirsurge:";

/// The business identifier (`system|value`) of the resource in a request body: the
/// harness's when it carries one, else its first. `None` for anything else.
fn identifier_of(body: &[u8]) -> Option<String> {
    let resource: serde_json::Value = serde_json::from_slice(body).ok()?;
    let list = match resource.get("identifier")? {
        serde_json::Value::Array(list) => list.clone(),
        one => vec![one.clone()],
    };
    let pairs: Vec<String> = list
        .iter()
        .filter_map(|i| {
            let system = i.get("system")?.as_str()?;
            let value = i.get("value")?.as_str()?;
            Some(format!("{system}|{value}"))
        })
        .collect();
    pairs
        .iter()
        .find(|p| p.starts_with(HARNESS_SYSTEM))
        .or(pairs.first())
        .cloned()
}

/// The value of header `name` in a request head, if it is there once.
fn header_value(head: &[u8], name: &str) -> Option<Vec<u8>> {
    let mut headers = [httparse::EMPTY_HEADER; 64];
    let mut req = httparse::Request::new(&mut headers);
    req.parse(head).ok()?;
    let mut found = req
        .headers
        .iter()
        .filter(|h| h.name.eq_ignore_ascii_case(name));
    let first = found.next()?;
    found.next().is_none().then(|| first.value.to_vec())
}

#[cfg(test)]
mod tests {
    use super::identifier_of;

    #[test]
    fn names_the_harness_identifier_first() {
        let body = br#"{"resourceType":"Patient","identifier":[
            {"system":"urn:oid:1.2","value":"mrn-1"},
            {"system":"urn:fhirsurge:run-1","value":"p-7"}]}"#;
        assert_eq!(
            identifier_of(body).as_deref(),
            Some("urn:fhirsurge:run-1|p-7")
        );
        let other = br#"{"identifier":[{"system":"urn:oid:1.2","value":"mrn-1"}]}"#;
        assert_eq!(identifier_of(other).as_deref(), Some("urn:oid:1.2|mrn-1"));
        assert_eq!(identifier_of(b"{\"resourceType\":\"Patient\"}"), None);
        assert_eq!(identifier_of(b"not json"), None);
    }
}
