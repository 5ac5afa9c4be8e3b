//! Bounded HTTP/1.1 for WHEP signalling, sans-IO: [`parse_request`] reads one request
//! from the bytes received so far, [`Response::encode`] writes one answer.
//!
//! Framing is check-then-parse: [`parse_request`] returns `Ok(None)` while the request
//! is incomplete (the driver reads more and calls it again with everything received),
//! and `Ok(Some((request, consumed)))` once the head and the whole body are there. A
//! request over a bound fails as soon as that is known, before the rest arrives, so a
//! peer can never make the driver hold more than [`MAX_HEAD`] + [`MAX_BODY`] bytes.
//! [`error_response`] turns the failure into the answer to send (400, 411, 413, 431).
//!
//! One request per connection, every answer says `Connection: close`: WHEP needs no
//! more, and no keep-alive means no pipelining, no request smuggling between requests
//! and no idle connections to budget for.

use std::fmt::Write as _;

use crate::TransportError;

/// The most bytes a request head (request line and headers, blank line included) may
/// take. A WHEP request needs well under 1 KiB; browsers send about 600 bytes.
pub const MAX_HEAD: usize = 8 * 1024;
/// The most header fields a request may carry.
pub const MAX_HEADERS: usize = 32;
/// The largest body (`Content-Length`) accepted. A browser's SDP offer for one
/// recvonly video track is 2-6 KiB; 64 KiB leaves room for many codecs.
pub const MAX_BODY: usize = 64 * 1024;

/// The request methods signalling knows; anything else is [`Method::Other`] (405).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Method {
    /// `GET`.
    Get,
    /// `HEAD`: a `GET` answered without its body.
    Head,
    /// `POST`.
    Post,
    /// `DELETE`.
    Delete,
    /// `OPTIONS` (CORS preflight).
    Options,
    /// Any other method.
    Other,
}

impl Method {
    /// Methods are case-sensitive (RFC 9110 9.1): `get` is not `GET`.
    fn from_token(token: &str) -> Self {
        match token {
            "GET" => Method::Get,
            "HEAD" => Method::Head,
            "POST" => Method::Post,
            "DELETE" => Method::Delete,
            "OPTIONS" => Method::Options,
            _ => Method::Other,
        }
    }
}

/// One parsed request: only what signalling looks at.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Request {
    /// The method.
    pub method: Method,
    /// The path, without the query string.
    pub path: String,
    /// The `Authorization` header's value, if any.
    pub authorization: Option<String>,
    /// The `Content-Type` header's value, if any.
    pub content_type: Option<String>,
    /// The body (`Content-Length` bytes; empty without one).
    pub body: Vec<u8>,
}

fn malformed(what: impl Into<String>) -> TransportError {
    TransportError::HttpMalformed { what: what.into() }
}

/// A header value as text: HTTP allows other bytes (obs-text), but none of the headers
/// signalling reads has a use for them.
fn header_text<'a>(name: &str, value: &'a [u8]) -> Result<&'a str, TransportError> {
    std::str::from_utf8(value)
        .map(str::trim)
        .map_err(|_| malformed(format!("the {name} header is not UTF-8")))
}

/// Keeps the one value of a header that must appear at most once: two differing
/// `Content-Length`s are the classic request-smuggling ambiguity, and two
/// `Authorization`s would leave which one was checked to chance.
fn set_once(slot: &mut Option<String>, name: &str, value: &[u8]) -> Result<(), TransportError> {
    let value = header_text(name, value)?;
    if slot.is_some() {
        return Err(malformed(format!("more than one {name} header")));
    }
    *slot = Some(value.to_string());
    Ok(())
}

/// Reads one request from `buf` (everything received on the connection so far).
///
/// `Ok(None)`: incomplete, read more and call again with the longer buffer.
/// `Ok(Some((request, consumed)))`: a whole request, taking the first `consumed`
/// bytes. `Err`: malformed, or over [`MAX_HEAD`], [`MAX_HEADERS`] or [`MAX_BODY`], or
/// a body without `Content-Length` (chunked); [`error_response`] gives the answer.
/// Never panics, whatever the bytes.
pub fn parse_request(buf: &[u8]) -> Result<Option<(Request, usize)>, TransportError> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut parsed = httparse::Request::new(&mut headers);
    // Only the first MAX_HEAD bytes can hold a head we accept: parsing no further
    // bounds the work per call however much a peer sends.
    let window = &buf[..buf.len().min(MAX_HEAD)];
    let head_len = match parsed.parse(window) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) if buf.len() > MAX_HEAD => {
            return Err(TransportError::HttpHeadTooLarge { max: MAX_HEAD })
        }
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(httparse::Error::TooManyHeaders) => {
            return Err(TransportError::HttpTooManyHeaders { max: MAX_HEADERS })
        }
        Err(e) => return Err(malformed(format!("unparsable request head: {e}"))),
    };
    // Complete implies all three are set; never trust that with a panic.
    let (Some(method), Some(target)) = (parsed.method, parsed.path) else {
        return Err(malformed("no request line"));
    };
    let method = Method::from_token(method);
    // Origin-form only ("/whep?x"): the absolute form is for proxies, `*` for
    // server-wide OPTIONS, neither of which this server is or needs.
    if !target.starts_with('/') {
        return Err(malformed(format!(
            "request target {:?} is not a path",
            truncated(target)
        )));
    }
    let path = target
        .split(['?', '#'])
        .next()
        .unwrap_or_default()
        .to_string();

    let mut authorization = None;
    let mut content_type = None;
    let mut content_length: Option<String> = None;
    for header in parsed.headers.iter() {
        let name = header.name;
        if name.eq_ignore_ascii_case("authorization") {
            set_once(&mut authorization, "Authorization", header.value)?;
        } else if name.eq_ignore_ascii_case("content-type") {
            set_once(&mut content_type, "Content-Type", header.value)?;
        } else if name.eq_ignore_ascii_case("content-length") {
            set_once(&mut content_length, "Content-Length", header.value)?;
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            // Chunked (or any coded) bodies: the SDP offer is small and browsers send it
            // with a Content-Length, so one framing is all the parser has to get right.
            let value = String::from_utf8_lossy(header.value);
            return Err(TransportError::HttpLengthRequired {
                transfer_encoding: truncated(value.trim()),
            });
        }
    }
    let body_len = match content_length {
        None => 0,
        Some(text) => {
            // Digits only: `u64::from_str` would also take a leading `+`, which other
            // parsers on the path might read differently.
            if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
                return Err(malformed(format!(
                    "Content-Length {:?} is not a number",
                    truncated(&text)
                )));
            }
            match text.parse::<u64>() {
                Ok(n) if n <= MAX_BODY as u64 => n as usize,
                // Too many digits for a u64 is too large all the same.
                Ok(_) | Err(_) => {
                    return Err(TransportError::HttpBodyTooLarge {
                        length: truncated(&text),
                        max: MAX_BODY,
                    })
                }
            }
        }
    };
    let total = head_len + body_len;
    let Some(body) = buf.get(head_len..total) else {
        return Ok(None);
    };
    Ok(Some((
        Request {
            method,
            path,
            authorization,
            content_type,
            body: body.to_vec(),
        },
        total,
    )))
}

/// A peer's text for an error message, cut to a length that cannot flood a log.
fn truncated(text: &str) -> String {
    const SHOWN: usize = 64;
    match text.char_indices().nth(SHOWN) {
        Some((cut, _)) => format!("{}...", &text[..cut]),
        None => text.to_string(),
    }
}

/// One answer, written by [`Response::encode`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Response {
    /// The status code.
    pub status: u16,
    /// Headers besides those every answer carries (see [`Response::encode`]).
    pub headers: Vec<(&'static str, String)>,
    /// The body.
    pub body: Vec<u8>,
}

/// The viewer page's Content-Security-Policy. The page is one file with its script and
/// style inline, so those are allowed inline and nothing is loaded from anywhere else;
/// it talks only to this server (`connect-src 'self'`: the WHEP requests; the WebRTC
/// media itself is not governed by CSP). No framing, so no other page can overlay it.
pub const PAGE_CSP: &str = "default-src 'none'; script-src 'unsafe-inline'; \
    style-src 'unsafe-inline'; connect-src 'self'; img-src 'self' data:; media-src 'self'; \
    base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

impl Response {
    /// An answer with no body.
    pub fn empty(status: u16) -> Self {
        Self {
            status,
            headers: Vec::new(),
            body: Vec::new(),
        }
    }

    /// A plain-text answer (a line for a person, or a script, to read).
    pub fn text(status: u16, msg: impl Into<String>) -> Self {
        let mut body = msg.into();
        if !body.ends_with('\n') {
            body.push('\n');
        }
        Self::empty(status)
            .with_header("Content-Type", "text/plain; charset=utf-8")
            .with_body(body.into_bytes())
    }

    /// `200` with an HTML page, under [`PAGE_CSP`].
    pub fn html(body: impl Into<String>) -> Self {
        Self::empty(200)
            .with_header("Content-Type", "text/html; charset=utf-8")
            .with_header("Content-Security-Policy", PAGE_CSP)
            // The token is in the URL fragment, which browsers never put in a Referer;
            // this keeps even the page's address to itself.
            .with_header("Referrer-Policy", "no-referrer")
            .with_header("X-Frame-Options", "DENY")
            .with_body(body.into().into_bytes())
    }

    /// An SDP answer (`application/sdp`).
    pub fn sdp(status: u16, body: impl Into<String>) -> Self {
        Self::empty(status)
            .with_header("Content-Type", "application/sdp")
            .with_body(body.into().into_bytes())
    }

    /// The same answer with one more header.
    pub fn with_header(mut self, name: &'static str, value: impl Into<String>) -> Self {
        self.headers.push((name, value.into()));
        self
    }

    fn with_body(mut self, body: Vec<u8>) -> Self {
        self.body = body;
        self
    }

    /// The answer to a `HEAD`: the headers of this one, its `Content-Length` included,
    /// and no body (RFC 9110 9.3.2).
    pub fn without_body(mut self) -> Self {
        let length = self.body.len().to_string();
        self.headers.retain(|(name, _)| *name != "Content-Length");
        self.headers.push(("Content-Length", length));
        self.body.clear();
        self
    }

    /// The first value of header `name` (case-insensitive), if set.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The answer on the wire: the status line with its reason phrase, the headers,
    /// and on every answer `Content-Length` (from the body unless [`Self::without_body`]
    /// set it), `Connection: close`, `Cache-Control: no-store` (nothing here may be kept:
    /// answers hold session descriptions) and `X-Content-Type-Options: nosniff`.
    /// CR and LF are removed from header values, so no value can add a header.
    pub fn encode(&self) -> Vec<u8> {
        let mut head = String::with_capacity(256);
        let _ = write!(
            head,
            "HTTP/1.1 {} {}\r\n",
            self.status,
            reason_phrase(self.status)
        );
        let mut has_length = false;
        for (name, value) in &self.headers {
            has_length |= name.eq_ignore_ascii_case("content-length");
            let value: String = value.chars().filter(|c| *c != '\r' && *c != '\n').collect();
            let _ = write!(head, "{name}: {value}\r\n");
        }
        if !has_length {
            let _ = write!(head, "Content-Length: {}\r\n", self.body.len());
        }
        head.push_str("Connection: close\r\nCache-Control: no-store\r\n");
        head.push_str("X-Content-Type-Options: nosniff\r\n\r\n");
        let mut out = head.into_bytes();
        out.extend_from_slice(&self.body);
        out
    }
}

/// The reason phrase for the codes signalling sends (others get a generic one; clients
/// ignore it anyway).
pub fn reason_phrase(status: u16) -> &'static str {
    match status {
        200 => "OK",
        201 => "Created",
        204 => "No Content",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        411 => "Length Required",
        413 => "Content Too Large",
        415 => "Unsupported Media Type",
        429 => "Too Many Requests",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        503 => "Service Unavailable",
        _ => match status / 100 {
            1 => "Informational",
            2 => "Success",
            3 => "Redirection",
            4 => "Client Error",
            _ => "Server Error",
        },
    }
}

/// The answer to a request [`parse_request`] refused: 431 for a head over the bounds,
/// 413 for a body over [`MAX_BODY`], 411 for a body without `Content-Length`, 400 for
/// anything else. The body says which bound, so a developer sees why.
pub fn error_response(err: &TransportError) -> Response {
    let status = match err {
        TransportError::HttpHeadTooLarge { .. } | TransportError::HttpTooManyHeaders { .. } => 431,
        TransportError::HttpBodyTooLarge { .. } => 413,
        TransportError::HttpLengthRequired { .. } => 411,
        _ => 400,
    };
    Response::text(status, err.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    const OFFER: &str = "POST /whep?x=1 HTTP/1.1\r\nHost: cam:8080\r\n\
        Authorization: Bearer 00112233445566778899aabbccddeeff\r\n\
        Content-Type: application/sdp\r\nContent-Length: 10\r\n\r\nv=0\r\no=-\r\n";

    fn parsed(text: &str) -> (Request, usize) {
        parse_request(text.as_bytes())
            .unwrap_or_else(|e| panic!("{text:?}: {e}"))
            .unwrap_or_else(|| panic!("{text:?}: incomplete"))
    }

    #[test]
    fn parses_what_signalling_reads() {
        let (req, n) = parsed(OFFER);
        assert_eq!(n, OFFER.len());
        assert_eq!(
            req,
            Request {
                method: Method::Post,
                path: "/whep".into(),
                authorization: Some("Bearer 00112233445566778899aabbccddeeff".into()),
                content_type: Some("application/sdp".into()),
                body: b"v=0\r\no=-\r\n".to_vec(),
            }
        );
        let cases: &[(&str, Method, &str)] = &[
            ("GET / HTTP/1.1\r\n\r\n", Method::Get, "/"),
            ("HEAD /#frag HTTP/1.0\r\n\r\n", Method::Head, "/"),
            (
                "DELETE /whep/ab HTTP/1.1\r\n\r\n",
                Method::Delete,
                "/whep/ab",
            ),
            ("OPTIONS /whep HTTP/1.1\r\n\r\n", Method::Options, "/whep"),
            ("PATCH /whep/ab HTTP/1.1\r\n\r\n", Method::Other, "/whep/ab"),
            ("get / HTTP/1.1\r\n\r\n", Method::Other, "/"),
            ("GET /?t=1 HTTP/1.1\nHost: x\n\n", Method::Get, "/"),
        ];
        for (text, method, path) in cases {
            let (req, n) = parsed(text);
            assert_eq!(
                (req.method, req.path.as_str(), n),
                (*method, *path, text.len()),
                "{text:?}"
            );
            assert_eq!(req.authorization, None);
        }
        // Bytes after the request (a pipelined second one) are left unconsumed.
        let two = format!("{OFFER}GET / HTTP/1.1\r\n\r\n");
        assert_eq!(parsed(&two).1, OFFER.len());
    }

    #[test]
    fn every_split_of_a_request_is_incomplete_until_its_last_byte() {
        for text in [OFFER, "GET / HTTP/1.1\r\nHost: a\r\n\r\n"] {
            let bytes = text.as_bytes();
            for cut in 0..bytes.len() {
                assert!(
                    matches!(parse_request(&bytes[..cut]), Ok(None)),
                    "{text:?} cut at {cut}: {:?}",
                    parse_request(&bytes[..cut])
                );
            }
            assert_eq!(parsed(text).1, bytes.len());
        }
    }

    #[test]
    fn refuses_what_is_over_a_bound_or_ambiguous() {
        let long_header = format!("GET / HTTP/1.1\r\nX: {}\r\n\r\n", "a".repeat(MAX_HEAD));
        let many: String = (0..=MAX_HEADERS).map(|i| format!("H{i}: v\r\n")).collect();
        let many = format!("GET / HTTP/1.1\r\n{many}\r\n");
        let just_enough: String = (0..MAX_HEADERS).map(|i| format!("H{i}: v\r\n")).collect();
        assert!(
            parse_request(format!("GET / HTTP/1.1\r\n{just_enough}\r\n").as_bytes())
                .unwrap()
                .is_some()
        );
        let cases: Vec<(String, u16, &str)> = vec![
            (long_header.clone(), 431, "head"),
            (many, 431, "32 header fields"),
            (
                format!(
                    "POST /whep HTTP/1.1\r\nContent-Length: {}\r\n\r\n",
                    MAX_BODY + 1
                ),
                413,
                "65537",
            ),
            (
                "POST /whep HTTP/1.1\r\nContent-Length: 99999999999999999999999\r\n\r\n".into(),
                413,
                "99999",
            ),
            (
                "POST /whep HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n".into(),
                411,
                "\"chunked\"",
            ),
            (
                "POST /whep HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n".into(),
                400,
                "more than one Content-Length",
            ),
            (
                "POST /whep HTTP/1.1\r\nContent-Length: +5\r\n\r\n".into(),
                400,
                "\"+5\" is not a number",
            ),
            (
                "POST /whep HTTP/1.1\r\nAuthorization: a\r\nauthorization: b\r\n\r\n".into(),
                400,
                "more than one Authorization",
            ),
            (
                "GET http://x/ HTTP/1.1\r\n\r\n".into(),
                400,
                "is not a path",
            ),
            ("GET / HTTP/2.0\r\n\r\n".into(), 400, "unparsable"),
            ("GET\0/ HTTP/1.1\r\n\r\n".into(), 400, "unparsable"),
            (
                "GET / HTTP/1.1\r\nBad Name: v\r\n\r\n".into(),
                400,
                "unparsable",
            ),
        ];
        for (text, status, says) in cases {
            let err = parse_request(text.as_bytes()).expect_err(&text);
            let response = error_response(&err);
            let body = String::from_utf8(response.body.clone()).unwrap();
            assert_eq!(response.status, status, "{text:?}: {err}");
            assert!(body.contains(says), "{text:?}: {body:?} lacks {says:?}");
            assert!(body.len() < 300, "{body}");
        }
        // A head that is too long fails before its end arrives, once MAX_HEAD is passed.
        let start = &long_header.as_bytes()[..MAX_HEAD];
        assert!(matches!(parse_request(start), Ok(None)));
        let start = &long_header.as_bytes()[..MAX_HEAD + 1];
        assert!(matches!(
            parse_request(start),
            Err(TransportError::HttpHeadTooLarge { .. })
        ));
        // A body that is too long fails on the head alone.
        let head = format!(
            "POST /whep HTTP/1.1\r\nContent-Length: {}\r\n\r\n",
            MAX_BODY + 1
        );
        assert!(matches!(
            parse_request(head.as_bytes()),
            Err(TransportError::HttpBodyTooLarge { .. })
        ));
        // The largest allowed body is accepted.
        let full = format!(
            "POST /whep HTTP/1.1\r\nContent-Length: {MAX_BODY}\r\n\r\n{}",
            "v".repeat(MAX_BODY)
        );
        assert_eq!(parsed(&full).0.body.len(), MAX_BODY);
    }

    #[test]
    fn never_panics_on_prefixes_and_mutations() {
        // A light sweep; the fuzz target `web_http` does the thorough one.
        let base = OFFER.as_bytes();
        for i in 0..base.len() {
            for byte in [0u8, b'\r', b'\n', b' ', b':', 0xff, b'9'] {
                let mut mutated = base.to_vec();
                mutated[i] = byte;
                if let Ok(Some((_, n))) = parse_request(&mutated) {
                    assert!(n <= mutated.len());
                }
            }
        }
    }

    #[test]
    fn encodes_status_headers_and_body() {
        let text = String::from_utf8(Response::text(404, "no such page").encode()).unwrap();
        assert!(text.starts_with("HTTP/1.1 404 Not Found\r\n"), "{text}");
        for want in [
            "Content-Type: text/plain; charset=utf-8\r\n",
            "Content-Length: 13\r\n",
            "Connection: close\r\n",
            "Cache-Control: no-store\r\n",
            "X-Content-Type-Options: nosniff\r\n",
        ] {
            assert!(text.contains(want), "{text} lacks {want:?}");
        }
        assert!(text.ends_with("\r\n\r\nno such page\n"), "{text}");

        let page = Response::html("<p>hi</p>");
        let text = String::from_utf8(page.encode()).unwrap();
        assert!(text.starts_with("HTTP/1.1 200 OK\r\n"));
        let csp = page.header("content-security-policy").unwrap();
        for want in [
            "script-src 'unsafe-inline'",
            "style-src 'unsafe-inline'",
            "connect-src 'self'",
            "frame-ancestors 'none'",
        ] {
            assert!(csp.contains(want), "{csp}");
        }
        let head = String::from_utf8(page.clone().without_body().encode()).unwrap();
        assert!(
            head.contains("Content-Length: 9\r\n") && head.ends_with("\r\n\r\n"),
            "{head}"
        );
        assert_eq!(head.matches("Content-Length").count(), 1, "{head}");

        let answer = Response::sdp(201, "v=0\r\n").with_header("Location", "/whep/1");
        let text = String::from_utf8(answer.encode()).unwrap();
        assert!(text.starts_with("HTTP/1.1 201 Created\r\n"));
        assert!(text.contains("Content-Type: application/sdp\r\n"));
        assert!(text.contains("Location: /whep/1\r\n"));

        let sneaky = Response::empty(204).with_header("Location", "/a\r\nSet-Cookie: x=1");
        let text = String::from_utf8(sneaky.encode()).unwrap();
        assert!(!text.contains("\r\nSet-Cookie"), "{text}");
        assert!(text.contains("Content-Length: 0\r\n"));
        assert_eq!(reason_phrase(429), "Too Many Requests");
        assert_eq!(reason_phrase(418), "Client Error");
    }
}
