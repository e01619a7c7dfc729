//! HTTP/1.1 message boundaries on a byte stream: request and response heads (httparse),
//! bodies by Content-Length or chunked coding, and the one rewrite the proxy makes (the
//! `Host` header). Bytes are never re-encoded: the proxy forwards them as they came.
//! Pure: no I/O. Must not depend on the rest of the proxy.

use std::ops::Range;

/// The largest head the proxy accepts.
pub(super) const MAX_HEAD: usize = 64 * 1024;
const MAX_HEADERS: usize = 128;

#[derive(Debug, thiserror::Error)]
pub(super) enum FramingError {
    #[error("malformed HTTP head: {0}")]
    Head(#[from] httparse::Error),
    #[error("HTTP head larger than {MAX_HEAD} bytes")]
    TooLarge,
    #[error("conflicting or malformed Content-Length")]
    Length,
    #[error("malformed chunked body")]
    Chunked,
}

/// How the body of a message ends.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) enum Body {
    /// This many bytes are left (0: no body).
    Length(u64),
    Chunked(Chunked),
    /// The body runs until the connection closes.
    UntilClose,
}

impl Body {
    /// Consumes the body bytes at the start of `data`: (bytes consumed, body complete).
    pub(super) fn advance(&mut self, data: &[u8]) -> Result<(usize, bool), FramingError> {
        match self {
            Body::Length(left) => {
                let take = (*left).min(data.len() as u64);
                *left -= take;
                Ok((take as usize, *left == 0))
            }
            Body::Chunked(c) => c.advance(data),
            Body::UntilClose => Ok((data.len(), false)),
        }
    }
}

/// What the request asked, as far as the response's framing cares.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Asked {
    Head,
    Connect,
    Other,
}

/// A parsed request head; ranges point into the buffer it was parsed from.
#[derive(Debug)]
pub(super) struct RequestHead {
    /// Length of the head, blank line included.
    pub len: usize,
    pub asked: Asked,
    /// CONNECT or an `Upgrade` request: after this head the bytes are opaque.
    pub tunnel: bool,
    pub body: Body,
    pub method: Range<usize>,
    pub target: Range<usize>,
    /// The value of the `Host` header, if any.
    pub host: Option<Range<usize>>,
    /// The value of the harness's request header, if any.
    pub request: Option<Range<usize>>,
    /// `Expect: 100-continue`: the client may hold the body until it hears from the server.
    pub expect_continue: bool,
}

/// A parsed response head.
#[derive(Debug)]
pub(super) struct ResponseHead {
    pub len: usize,
    pub status: u16,
    /// 1xx other than 101: the final response is still to come.
    pub interim: bool,
    /// 101, or a 2xx to CONNECT: after this head the bytes are opaque.
    pub tunnel: bool,
    pub body: Body,
}

fn range(buf: &[u8], part: &[u8]) -> Range<usize> {
    let start = part.as_ptr() as usize - buf.as_ptr() as usize;
    start..start + part.len()
}

/// Parses a request head at the start of `buf`; `None` while it is incomplete.
pub(super) fn parse_request(
    buf: &[u8],
    request_header: &str,
) -> Result<Option<RequestHead>, FramingError> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut headers);
    let len = match req.parse(buf)? {
        httparse::Status::Complete(len) => len,
        httparse::Status::Partial if buf.len() > MAX_HEAD => return Err(FramingError::TooLarge),
        httparse::Status::Partial => return Ok(None),
    };
    let method = req.method.unwrap_or_default();
    let asked = match method {
        "HEAD" => Asked::Head,
        "CONNECT" => Asked::Connect,
        _ => Asked::Other,
    };
    let mut host = None;
    let mut request = None;
    let mut upgrade = false;
    let mut expect_continue = false;
    for h in req.headers.iter() {
        if host.is_none() && h.name.eq_ignore_ascii_case("host") {
            host = Some(range(buf, h.value));
        } else if request.is_none() && h.name.eq_ignore_ascii_case(request_header) {
            request = Some(range(buf, h.value));
        } else if h.name.eq_ignore_ascii_case("upgrade") {
            upgrade = true;
        } else if h.name.eq_ignore_ascii_case("expect") {
            expect_continue = h.value.eq_ignore_ascii_case(b"100-continue");
        }
    }
    let body = body_of(req.headers, Body::Length(0))?;
    Ok(Some(RequestHead {
        len,
        asked,
        tunnel: upgrade || asked == Asked::Connect,
        body,
        method: range(buf, method.as_bytes()),
        target: range(buf, req.path.unwrap_or_default().as_bytes()),
        host,
        request,
        expect_continue,
    }))
}

/// Parses a response head at the start of `buf`; `None` while it is incomplete.
pub(super) fn parse_response(
    buf: &[u8],
    asked: Asked,
) -> Result<Option<ResponseHead>, FramingError> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut res = httparse::Response::new(&mut headers);
    let len = match res.parse(buf)? {
        httparse::Status::Complete(len) => len,
        httparse::Status::Partial if buf.len() > MAX_HEAD => return Err(FramingError::TooLarge),
        httparse::Status::Partial => return Ok(None),
    };
    let status = res.code.unwrap_or_default();
    let tunnel = status == 101 || (asked == Asked::Connect && (200..300).contains(&status));
    let interim = (100..200).contains(&status) && status != 101;
    let body = if interim || tunnel || asked == Asked::Head || status == 204 || status == 304 {
        Body::Length(0)
    } else {
        body_of(res.headers, Body::UntilClose)?
    };
    Ok(Some(ResponseHead {
        len,
        status,
        interim,
        tunnel,
        body,
    }))
}

/// Transfer-Encoding wins over Content-Length (RFC 9112 §6.3); `otherwise` when neither.
fn body_of(headers: &[httparse::Header<'_>], otherwise: Body) -> Result<Body, FramingError> {
    let mut length: Option<u64> = None;
    let mut coding: Option<&[u8]> = None;
    for h in headers {
        if h.name.eq_ignore_ascii_case("transfer-encoding") {
            coding = Some(h.value);
        } else if h.name.eq_ignore_ascii_case("content-length") {
            let text = std::str::from_utf8(h.value).map_err(|_| FramingError::Length)?;
            for part in text.split(',') {
                let n: u64 = part.trim().parse().map_err(|_| FramingError::Length)?;
                if length.is_some_and(|l| l != n) {
                    return Err(FramingError::Length);
                }
                length = Some(n);
            }
        }
    }
    Ok(match (coding, length) {
        (Some(te), _) if last_coding_is_chunked(te) => Body::Chunked(Chunked::default()),
        (Some(_), _) => Body::UntilClose,
        (None, Some(n)) => Body::Length(n),
        (None, None) => otherwise,
    })
}

fn last_coding_is_chunked(value: &[u8]) -> bool {
    let last = value.rsplit(|&b| b == b',').next().unwrap_or_default();
    last.trim_ascii().eq_ignore_ascii_case(b"chunked")
}

/// Writes `head` (the request head at the start of `buf`) to `out` with its `Host` value
/// replaced by `host` (or a `Host` header added after the request line).
pub(super) fn write_head(buf: &[u8], head: &RequestHead, host: &str, out: &mut Vec<u8>) {
    let bytes = &buf[..head.len];
    match &head.host {
        Some(value) => {
            out.extend_from_slice(&bytes[..value.start]);
            out.extend_from_slice(host.as_bytes());
            out.extend_from_slice(&bytes[value.end..]);
        }
        None => {
            let line_end = bytes[head.target.end..]
                .iter()
                .position(|&b| b == b'\n')
                .map_or(head.len, |i| head.target.end + i + 1);
            out.extend_from_slice(&bytes[..line_end]);
            out.extend_from_slice(b"Host: ");
            out.extend_from_slice(host.as_bytes());
            out.extend_from_slice(b"\r\n");
            out.extend_from_slice(&bytes[line_end..]);
        }
    }
}

/// The FHIR resource type a request-target names: its first path segment after the
/// upstream's base path, when that segment looks like a type (`Patient`, not `metadata`).
pub(super) fn resource_type(target: &str, base_path: &str) -> Option<String> {
    let path = match target.find("://") {
        Some(i) => target[i + 3..]
            .find('/')
            .map_or("/", |j| &target[i + 3 + j..]),
        None => target,
    };
    let path = path.split(['?', '#']).next().unwrap_or_default();
    let base = base_path.trim_end_matches('/');
    let rest = match path.strip_prefix(base) {
        Some(rest) if rest.starts_with('/') => rest,
        _ => path,
    };
    let segment = rest.trim_start_matches('/').split('/').next()?;
    let mut chars = segment.chars();
    let looks_like_type = chars.next().is_some_and(|c| c.is_ascii_uppercase())
        && chars.all(|c| c.is_ascii_alphanumeric());
    looks_like_type.then(|| segment.to_owned())
}

/// The chunked-coding decoder's position; it finds where the body ends without changing it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(super) struct Chunked {
    state: ChunkState,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
enum ChunkState {
    /// In a chunk-size line: the size so far, whether any digit was read, inside extensions.
    #[default]
    Start,
    Size {
        size: u64,
        ext: bool,
    },
    SizeLf {
        size: u64,
    },
    Data(u64),
    DataCr,
    DataLf,
    /// At the start of a trailer line (or the final blank line).
    TrailerStart,
    TrailerLine,
    EndLf,
    Done,
}

impl Chunked {
    /// Consumes body bytes: (bytes consumed, body complete).
    pub(super) fn advance(&mut self, data: &[u8]) -> Result<(usize, bool), FramingError> {
        let mut at = 0;
        while at < data.len() && self.state != ChunkState::Done {
            if let ChunkState::Data(left) = self.state {
                let take = left.min((data.len() - at) as u64);
                at += take as usize;
                self.state = if take == left {
                    ChunkState::DataCr
                } else {
                    ChunkState::Data(left - take)
                };
                continue;
            }
            self.state = self.step(data[at])?;
            at += 1;
        }
        Ok((at, self.state == ChunkState::Done))
    }

    fn step(&self, b: u8) -> Result<ChunkState, FramingError> {
        use ChunkState::*;
        let bad = Err(FramingError::Chunked);
        Ok(match (&self.state, b) {
            (Start, _) => match hex(b) {
                Some(d) => Size {
                    size: d,
                    ext: false,
                },
                None => return bad,
            },
            (&Size { size, ext: false }, _) if hex(b).is_some() => {
                let d = hex(b).unwrap_or_default();
                let size = size
                    .checked_mul(16)
                    .and_then(|s| s.checked_add(d))
                    .ok_or(FramingError::Chunked)?;
                Size { size, ext: false }
            }
            (&Size { size, .. }, b'\r') => SizeLf { size },
            (&Size { size, .. }, b'\n') | (&SizeLf { size }, b'\n') => after_size(size),
            (&Size { size, .. }, b';' | b' ' | b'\t') => Size { size, ext: true },
            (&Size { size, ext: true }, _) => Size { size, ext: true },
            (DataCr, b'\r') => DataLf,
            (DataCr, b'\n') | (DataLf, b'\n') => Start,
            (TrailerStart, b'\r') => EndLf,
            (TrailerStart, b'\n') | (EndLf, b'\n') => Done,
            (TrailerStart, _) | (TrailerLine, _) if b != b'\n' => TrailerLine,
            (TrailerLine, b'\n') => TrailerStart,
            _ => return bad,
        })
    }
}

fn after_size(size: u64) -> ChunkState {
    if size == 0 {
        ChunkState::TrailerStart
    } else {
        ChunkState::Data(size)
    }
}

fn hex(b: u8) -> Option<u64> {
    (b as char).to_digit(16).map(u64::from)
}

#[cfg(test)]
mod tests {
    use super::*;

    const H: &str = "x-fhirsurge-request";

    #[test]
    fn chunked_finds_the_end_across_any_split() {
        let body = b"4;ext=1\r\nWiki\r\n5\r\npedia\r\nE\r\n in\r\n\r\nchunks.\r\n0\r\nTrailer: x\r\n\r\nNEXT";
        let end = body.len() - 4;
        for split in 0..=body.len() {
            let mut c = Chunked::default();
            let (a, done_a) = c.advance(&body[..split]).unwrap();
            let consumed = if done_a {
                a
            } else {
                let (b, done_b) = c.advance(&body[split..]).unwrap();
                assert!(done_b, "split {split}");
                a + b
            };
            assert_eq!(consumed, end, "split {split}");
        }
    }

    #[test]
    fn chunked_refuses_garbage() {
        assert!(Chunked::default().advance(b"zz\r\n").is_err());
        assert!(Chunked::default().advance(b"3\r\nabcX").is_err());
    }

    #[test]
    fn parses_a_request_and_rewrites_only_the_host() {
        let raw = b"POST /fhir/Patient HTTP/1.1\r\nHost: proxy:1\r\nX-FhirSurge-Request: 17\r\nContent-Length: 3\r\n\r\nabcGET";
        let head = parse_request(raw, H).unwrap().unwrap();
        assert_eq!(&raw[head.request.clone().unwrap()], b"17");
        assert_eq!(&raw[head.target.clone()], b"/fhir/Patient");
        assert_eq!(head.body, Body::Length(3));
        let mut out = Vec::new();
        write_head(raw, &head, "ehr.example:8443", &mut out);
        assert_eq!(
            out,
            b"POST /fhir/Patient HTTP/1.1\r\nHost: ehr.example:8443\r\nX-FhirSurge-Request: 17\r\nContent-Length: 3\r\n\r\n"
        );
    }

    #[test]
    fn adds_a_host_when_there_is_none() {
        let raw = b"GET / HTTP/1.0\r\nAccept: */*\r\n\r\n";
        let head = parse_request(raw, H).unwrap().unwrap();
        let mut out = Vec::new();
        write_head(raw, &head, "h", &mut out);
        assert_eq!(out, b"GET / HTTP/1.0\r\nHost: h\r\nAccept: */*\r\n\r\n");
    }

    #[test]
    fn partial_heads_wait_for_more() {
        assert!(parse_request(b"GET / HTTP/1.1\r\nHo", H).unwrap().is_none());
        assert!(
            parse_response(b"HTTP/1.1 200 OK\r\n", Asked::Other)
                .unwrap()
                .is_none()
        );
    }

    #[test]
    fn response_bodies_follow_the_rules() {
        let body = |raw: &[u8], asked| parse_response(raw, asked).unwrap().unwrap().body;
        let cl = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n";
        assert_eq!(body(cl, Asked::Other), Body::Length(5));
        assert_eq!(body(cl, Asked::Head), Body::Length(0));
        let te =
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\nContent-Length: 5\r\n\r\n";
        assert!(matches!(body(te, Asked::Other), Body::Chunked(_)));
        assert_eq!(
            body(b"HTTP/1.1 200 OK\r\n\r\n", Asked::Other),
            Body::UntilClose
        );
        assert_eq!(
            body(b"HTTP/1.1 204 No Content\r\n\r\n", Asked::Other),
            Body::Length(0)
        );
        let cont = parse_response(b"HTTP/1.1 100 Continue\r\n\r\n", Asked::Other)
            .unwrap()
            .unwrap();
        assert!(cont.interim);
        let conflict = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n";
        assert!(parse_response(conflict, Asked::Other).is_err());
    }

    #[test]
    fn finds_the_resource_type_after_the_base_path() {
        let rt = |t, b| resource_type(t, b);
        assert_eq!(
            rt("/fhir/R4/Patient/1", "/fhir/R4/").as_deref(),
            Some("Patient")
        );
        assert_eq!(
            rt("/fhir/R4/Observation?code=x", "/fhir/R4"),
            Some("Observation".into())
        );
        assert_eq!(rt("/Encounter", "/"), Some("Encounter".into()));
        assert_eq!(
            rt("/Encounter/_history", "/fhir/"),
            Some("Encounter".into())
        );
        assert_eq!(rt("/fhir/R4/metadata", "/fhir/R4/"), None);
        assert_eq!(rt("/fhir/R4/", "/fhir/R4/"), None);
        assert_eq!(
            rt("http://h:1/fhir/Patient", "/fhir"),
            Some("Patient".into())
        );
    }
}
