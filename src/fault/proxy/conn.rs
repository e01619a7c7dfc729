//! One client connection, start to end: which TCP toxics it drew (toxiproxy's `toxicity`
//! is per connection), a `down` refusal at accept, the two directions run side by side with
//! the watchdog for connection-wide faults, and the way it ends — FIN, or RST.

use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex, PoisonError};

use tokio::net::TcpStream;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::chain::{Chain, Link};
use super::faults::{HttpAction, Kind};
use super::framing::Asked;
use super::toxics::{Draws, State};
use super::upstream::UpRead;
use super::{Shared, Tag, requests, responses, watchdog};
use crate::fault::Stream;

/// How a connection ends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Ending {
    /// FIN: a normal close.
    Close,
    /// RST: "connection reset by peer".
    Reset,
}

/// What the request direction tells the response direction, in request order.
pub(super) enum Plan {
    /// The upstream connection was opened: its read side.
    Attach(UpRead),
    /// Write these bytes to the client (an injected answer; nothing was forwarded), then
    /// close the connection when `close`.
    Answer { bytes: Vec<u8>, close: bool },
    /// A request was forwarded: read its response, and let `fault` act on it.
    Response {
        asked: Asked,
        fault: Option<(usize, HttpAction)>,
        tag: Arc<Tag>,
    },
}

/// What both directions and the watchdog of one connection share.
pub(super) struct Conn<'a> {
    pub shared: &'a Shared,
    /// (number of requests seen, the latest one).
    current: Mutex<(u64, Arc<Tag>)>,
    /// A `timeout` toxic dropped bytes: the HTTP stream is broken for good.
    pub dropped: AtomicBool,
}

impl Conn<'_> {
    /// A new request head went through.
    pub(super) fn begin(&self, tag: Arc<Tag>) {
        let mut current = self.current.lock().unwrap_or_else(PoisonError::into_inner);
        current.0 += 1;
        current.1 = tag;
    }

    /// The latest request and its number (0: none yet).
    pub(super) fn current(&self) -> (u64, Arc<Tag>) {
        let current = self.current.lock().unwrap_or_else(PoisonError::into_inner);
        (current.0, current.1.clone())
    }

    pub(super) fn record(&self, fault: usize, tag: &Tag, detail: String) {
        self.shared.record(fault, tag, detail);
    }
}

/// The toxics one connection drew, per direction, and its connection-wide faults.
struct Drawn {
    upstream: Vec<Link>,
    downstream: Vec<Link>,
    /// `down` and `timeout` faults: the watchdog acts on them.
    guards: Vec<usize>,
}

impl Drawn {
    fn draw(shared: &Shared) -> Drawn {
        let mut drawn = Drawn {
            upstream: Vec::new(),
            downstream: Vec::new(),
            guards: Vec::new(),
        };
        for (i, f) in shared.faults.iter().enumerate() {
            let toxic = match f.kind {
                Kind::Toxic(t) => Some(t),
                Kind::Down => None,
                Kind::Http(_) => continue,
            };
            let n = shared.next(i);
            // The window is checked when the toxic acts; here only the per-connection chance.
            if !f
                .spec
                .fires(shared.seed, f.position, n, f.spec.window().from)
            {
                continue;
            }
            let Some(toxic) = toxic else {
                drawn.guards.push(i);
                continue;
            };
            if matches!(toxic, super::faults::Toxic::Timeout { .. }) {
                drawn.guards.push(i);
            }
            let link = Link::new(i, State::new(toxic, Draws::new(shared.seed, f.position, n)));
            match f.spec.stream {
                Stream::Upstream => drawn.upstream.push(link),
                Stream::Downstream => drawn.downstream.push(link),
            }
        }
        drawn
    }

    /// A `down` fault in force right now, if any.
    fn down_now(&self, shared: &Shared) -> Option<usize> {
        let elapsed = shared.ledger.elapsed();
        self.guards.iter().copied().find(|&i| {
            let f = &shared.faults[i];
            f.kind == Kind::Down && shared.enabled() && f.spec.window().contains(elapsed)
        })
    }
}

/// Runs one client connection to its end.
pub(super) async fn run(client: TcpStream, shared: Arc<Shared>, shutdown: CancellationToken) {
    let shared = &*shared;
    let _ = client.set_nodelay(true);
    let drawn = Drawn::draw(shared);
    let conn = Conn {
        shared,
        current: Mutex::new((0, Arc::default())),
        dropped: AtomicBool::new(false),
    };
    if let Some(i) = drawn.down_now(shared) {
        conn.record(
            i,
            &Tag::default(),
            "down: connection reset on accept".into(),
        );
        reset(client);
        return;
    }
    let (mut read, mut write) = client.into_split();
    let upstream = Chain::new(Stream::Upstream, drawn.upstream);
    let downstream = Chain::new(Stream::Downstream, drawn.downstream);
    let ending = tokio::select! {
        e = duplex(&conn, &mut read, &mut write, upstream, downstream) => e,
        e = watchdog::watch(&conn, &drawn.guards) => e,
        _ = shutdown.cancelled() => Ending::Close,
    };
    if ending == Ending::Reset
        && let Ok(client) = read.reunite(write)
    {
        reset(client);
    }
    // Otherwise dropping the halves closes the connection normally.
}

/// Closes with RST rather than FIN.
fn reset(client: TcpStream) {
    if let Err(e) = client.set_zero_linger() {
        tracing::debug!("fault proxy: could not arm a reset: {e}");
    }
    drop(client);
}

/// Both directions; the connection ends when either does.
async fn duplex(
    conn: &Conn<'_>,
    read: &mut OwnedReadHalf,
    write: &mut OwnedWriteHalf,
    upstream: Chain,
    downstream: Chain,
) -> Ending {
    let (plans, planned) = mpsc::unbounded_channel();
    tokio::select! {
        e = requests::pump(conn, read, upstream, plans) => e,
        e = responses::pump(conn, write, downstream, planned) => e,
    }
}
