//! WHEP signalling, sans-IO: the routes of the web port, the access token check and the
//! request budgets. [`Signalling::handle`] takes one parsed request (and `now`, and the
//! peer's address) and says what to do: answer at once, or hand an SDP offer or a
//! viewer's leaving to the WebRTC side, which then answers with [`Signalling::answer`],
//! [`Signalling::refused`] or [`Signalling::left`]. No clock is read and no socket is
//! touched here, so the budgets are tested on simulated time.
//!
//! Routes (the contract in the project's design notes for the web viewer):
//! - `GET /`, `HEAD /`: the viewer page. `GET /favicon.ico`: 204 (none, and no 404 noise).
//! - `POST /whep`: token, then `Content-Type: application/sdp` and a body starting with
//!   `v=0`, else 400: [`Action::Offer`].
//! - `DELETE /whep/ID`: token: [`Action::Leave`].
//! - `OPTIONS /whep`, `OPTIONS /whep/ID`: 204 with CORS, so WHEP players served from
//!   elsewhere can pull; every answer on `/whep` carries `Access-Control-Allow-Origin`.
//! - Any other method on these paths: 405 with `Allow`; any other path: 404.
//!
//! Budgets, each answered by 429 with `Retry-After`:
//! - per source (an IPv4 address, or an IPv6 /64: one host usually holds a whole /64, so
//!   per-address budgets would be no budget): a token bucket, 20 requests at once, then
//!   5 a second;
//! - all sources together: 100 at once, then 100 a second;
//! - wrong tokens: after 10 in a minute from one source, its token-checked requests are
//!   refused for a minute, unanswered by any token check (no oracle while locked).
//!
//! Why the token needs no more than that: it is 128 random bits, so even at the whole
//! server's budget of 100 guesses a second from every address together, finding it
//! takes on the order of 2^127 / 100 s, some 5 * 10^28 years. The wrong-token lockout is
//! not what protects it; it keeps one broken or hostile client from spending the
//! shared budget that real viewers need, and it makes a guesser visible in the stats.
//!
//! State is bounded: at most [`SignallingConfig::max_sources`] sources are tracked; a new
//! one evicts the least recently seen (preferring sources that are not locked out, so a
//! flood of new addresses does not free a guesser early).

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::{Duration, Instant};

use super::http::{Method, Request, Response};
use super::token::WebToken;

/// A token bucket's size and refill.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Budget {
    /// Requests allowed at once (the bucket's size).
    pub burst: u32,
    /// Requests allowed per second after that (its refill).
    pub per_second: u32,
}

/// Signalling's budgets and bounds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SignallingConfig {
    /// Requests from one source (IPv4 address or IPv6 /64). A page load with its WHEP
    /// exchange is 3-4 requests, so 20 at once lets a few tabs start together.
    pub per_source: Budget,
    /// Requests from all sources together.
    pub total: Budget,
    /// Wrong tokens from one source within [`Self::wrong_token_window`] that lock it out.
    pub max_wrong_tokens: u32,
    /// The window the wrong tokens are counted in.
    pub wrong_token_window: Duration,
    /// How long a locked-out source's token-checked requests get 429.
    pub lockout: Duration,
    /// The most sources tracked at once (each a few dozen bytes).
    pub max_sources: usize,
}

impl Default for SignallingConfig {
    fn default() -> Self {
        Self {
            per_source: Budget {
                burst: 20,
                per_second: 5,
            },
            total: Budget {
                burst: 100,
                per_second: 100,
            },
            max_wrong_tokens: 10,
            wrong_token_window: Duration::from_secs(60),
            lockout: Duration::from_secs(60),
            max_sources: 256,
        }
    }
}

/// What the driver does with a request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    /// Send this answer.
    Respond(Response),
    /// An authorized SDP offer: start a viewer, then answer with [`Signalling::answer`]
    /// or [`Signalling::refused`].
    Offer {
        /// The offer (UTF-8, starts with `v=0`; not otherwise checked here).
        sdp: String,
    },
    /// An authorized `DELETE /whep/ID`: end that viewer, then answer with
    /// [`Signalling::left`].
    Leave {
        /// The ID from the path (1 to 64 of `A-Z a-z 0-9 - . _ ~`).
        viewer: String,
    },
}

/// Why an offer gets no viewer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// Every viewer slot is taken: 503, try again in 2 s.
    Full,
    /// The offer cannot be answered (no H.264, no video, unparsable): 400 with the
    /// reason.
    BadOffer(String),
}

/// Counters for the stats line.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SignallingStats {
    /// Requests handled (parsed ones: the driver counts those that did not parse).
    pub requests: u64,
    /// Requests refused for a missing or wrong token.
    pub unauthorized: u64,
    /// Requests refused by a budget or a lockout.
    pub rate_limited: u64,
    /// Offers passed on.
    pub offers: u64,
}

/// How sources are told apart.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum SourceKey {
    V4([u8; 4]),
    /// The /64 prefix.
    V6([u8; 8]),
}

impl SourceKey {
    fn of(ip: IpAddr) -> Self {
        // An IPv4 peer on a dual-stack socket shows as ::ffff:a.b.c.d: the same source.
        match ip.to_canonical() {
            IpAddr::V4(v4) => SourceKey::V4(v4.octets()),
            IpAddr::V6(v6) => {
                let mut prefix = [0u8; 8];
                prefix.copy_from_slice(&v6.octets()[..8]);
                SourceKey::V6(prefix)
            }
        }
    }
}

/// A token bucket on caller-given time.
#[derive(Clone, Debug)]
struct Bucket {
    tokens: f64,
    last: Instant,
}

impl Bucket {
    fn full(budget: Budget, now: Instant) -> Self {
        Self {
            tokens: f64::from(budget.burst),
            last: now,
        }
    }

    /// Takes one request's token, or says how long until there is one.
    fn take(&mut self, now: Instant, budget: Budget) -> Result<(), Duration> {
        // Time that runs backwards refills nothing (and never panics).
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.last = self.last.max(now);
        self.tokens =
            (self.tokens + elapsed * f64::from(budget.per_second)).min(f64::from(budget.burst));
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            return Ok(());
        }
        let wait = (1.0 - self.tokens) / f64::from(budget.per_second);
        // No refill at all (per_second = 0) is a wait of "a minute, ask again".
        Err(Duration::try_from_secs_f64(wait).unwrap_or(Duration::from_secs(60)))
    }
}

/// What is kept per source.
#[derive(Clone, Debug)]
struct Source {
    bucket: Bucket,
    last_seen: Instant,
    /// Wrong tokens since `window_start`.
    wrong: u32,
    window_start: Instant,
    locked_until: Option<Instant>,
}

impl Source {
    fn locked(&self, now: Instant) -> Option<Duration> {
        self.locked_until
            .filter(|until| *until > now)
            .map(|until| until - now)
    }
}

/// The WHEP routes, the token check and the budgets (see the module docs). Call
/// [`Signalling::handle`] once per parsed request; answer an [`Action::Offer`] or
/// [`Action::Leave`] with the matching method.
#[derive(Debug)]
pub struct Signalling {
    token: WebToken,
    config: SignallingConfig,
    sources: HashMap<SourceKey, Source>,
    total: Option<Bucket>,
    stats: SignallingStats,
}

/// `Retry-After` in whole seconds, at least 1 (0 would invite an immediate retry).
fn retry_after(wait: Duration) -> u64 {
    wait.as_secs() + u64::from(wait.subsec_nanos() > 0)
}

fn too_many(wait: Duration, what: &str) -> Response {
    let secs = retry_after(wait).max(1);
    Response::text(429, format!("{what}: try again in {secs} s"))
        .with_header("Retry-After", secs.to_string())
}

fn not_allowed(allow: &'static str) -> Response {
    Response::text(405, format!("method not allowed here (allowed: {allow})"))
        .with_header("Allow", allow)
}

/// A viewer ID as the path may carry it: URL-unreserved characters only, so it never
/// needs escaping in a `Location` header or a log line.
fn valid_viewer_id(id: &str) -> bool {
    (1..=64).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~'))
}

/// The CORS answer headers every WHEP answer carries: any origin may call (the token
/// is the access control, and no cookies are involved), and may read `Location`.
fn with_cors(response: Response) -> Response {
    let mut response = response;
    if response.header("Access-Control-Allow-Origin").is_none() {
        response = response.with_header("Access-Control-Allow-Origin", "*");
    }
    if response.header("Access-Control-Expose-Headers").is_none() {
        response = response.with_header("Access-Control-Expose-Headers", "Location");
    }
    response
}

fn preflight() -> Response {
    with_cors(
        Response::empty(204)
            .with_header("Access-Control-Allow-Methods", "POST, DELETE, OPTIONS")
            .with_header(
                "Access-Control-Allow-Headers",
                "Authorization, Content-Type",
            )
            .with_header("Access-Control-Max-Age", "600"),
    )
}

const HOW_TO_AUTHORIZE: &str = "open the address picam printed at start \
    (http://HOST:PORT/#t=TOKEN), or send `Authorization: Bearer TOKEN`";

impl Signalling {
    /// Signalling that admits `token`, with `config`'s budgets.
    pub fn new(token: WebToken, config: SignallingConfig) -> Self {
        Self {
            token,
            config,
            sources: HashMap::new(),
            total: None,
            stats: SignallingStats::default(),
        }
    }

    /// What to do with one request from `peer`, received at `now`.
    pub fn handle(&mut self, now: Instant, peer: IpAddr, req: &Request) -> Action {
        self.stats.requests += 1;
        let key = SourceKey::of(peer);
        let whep = req.path == "/whep" || req.path.starts_with("/whep/");
        let action = match self.spend(now, key) {
            Err(response) => Action::Respond(response),
            Ok(()) => self.route(now, key, req),
        };
        match action {
            Action::Respond(response) if whep => Action::Respond(with_cors(response)),
            other => other,
        }
    }

    /// One request's worth of the source's and the total budget.
    fn spend(&mut self, now: Instant, key: SourceKey) -> Result<(), Response> {
        let per_source = self.config.per_source;
        let source = self.source(now, key);
        source.last_seen = source.last_seen.max(now);
        let taken = source.bucket.take(now, per_source);
        if let Err(wait) = taken {
            self.stats.rate_limited += 1;
            return Err(too_many(wait, "too many requests from this address"));
        }
        // Spent after the source's own budget, so one source over its budget does not
        // also drain everyone's.
        let total = self.config.total;
        let bucket = self.total.get_or_insert_with(|| Bucket::full(total, now));
        if let Err(wait) = bucket.take(now, total) {
            self.stats.rate_limited += 1;
            return Err(too_many(wait, "too many requests to this camera"));
        }
        Ok(())
    }

    /// The source's entry, made (evicting one if the table is full) if new.
    fn source(&mut self, now: Instant, key: SourceKey) -> &mut Source {
        if !self.sources.contains_key(&key) {
            while self.sources.len() >= self.config.max_sources.max(1) {
                // The least recently seen, preferring those not locked out.
                let victim = self
                    .sources
                    .iter()
                    .min_by_key(|(_, s)| (s.locked(now).is_some(), s.last_seen))
                    .map(|(k, _)| *k);
                match victim {
                    Some(victim) => {
                        self.sources.remove(&victim);
                    }
                    None => break,
                }
            }
        }
        let per_source = self.config.per_source;
        self.sources.entry(key).or_insert_with(|| Source {
            bucket: Bucket::full(per_source, now),
            last_seen: now,
            wrong: 0,
            window_start: now,
            locked_until: None,
        })
    }

    fn route(&mut self, now: Instant, key: SourceKey, req: &Request) -> Action {
        let respond = Action::Respond;
        match (req.path.as_str(), req.method) {
            ("/", Method::Get) => respond(Response::html(super::PAGE)),
            ("/", Method::Head) => respond(Response::html(super::PAGE).without_body()),
            ("/", _) => respond(not_allowed("GET, HEAD")),
            ("/favicon.ico", Method::Get | Method::Head) => respond(Response::empty(204)),
            ("/favicon.ico", _) => respond(not_allowed("GET, HEAD")),
            ("/whep", Method::Options) => respond(preflight()),
            ("/whep", Method::Post) => match self.authorize(now, key, req) {
                Err(response) => respond(response),
                Ok(()) => self.offer(req),
            },
            ("/whep", _) => respond(not_allowed("POST, OPTIONS")),
            (path, method) => match path.strip_prefix("/whep/") {
                Some(id) if valid_viewer_id(id) => match method {
                    Method::Options => respond(preflight()),
                    Method::Delete => match self.authorize(now, key, req) {
                        Err(response) => respond(response),
                        Ok(()) => Action::Leave { viewer: id.into() },
                    },
                    _ => respond(not_allowed("DELETE, OPTIONS")),
                },
                Some(_) => respond(Response::text(404, "no such viewer")),
                None => respond(Response::text(404, "no such page")),
            },
        }
    }

    /// The token check, within the source's wrong-token budget.
    fn authorize(&mut self, now: Instant, key: SourceKey, req: &Request) -> Result<(), Response> {
        let config = &self.config;
        // The entry exists (made by `spend`); were it gone, the check still runs, just
        // without counting.
        let source = self.sources.get_mut(&key);
        if let Some(wait) = source.as_deref().and_then(|s| s.locked(now)) {
            self.stats.rate_limited += 1;
            return Err(too_many(
                wait,
                "too many wrong access tokens from this address",
            ));
        }
        let header = req
            .authorization
            .as_deref()
            .map(str::trim)
            .filter(|h| !h.is_empty());
        let Some(header) = header else {
            self.stats.unauthorized += 1;
            return Err(
                Response::text(401, format!("missing access token: {HOW_TO_AUTHORIZE}"))
                    .with_header("WWW-Authenticate", "Bearer"),
            );
        };
        if self.token.matches_bearer(header) {
            return Ok(());
        }
        self.stats.unauthorized += 1;
        if let Some(source) = source {
            // A fixed window per source: at most 2 * max in a burst that straddles two
            // windows, which is fine for what the count is for (see the module docs).
            if now.saturating_duration_since(source.window_start) >= config.wrong_token_window {
                source.window_start = now;
                source.wrong = 0;
            }
            source.wrong += 1;
            if source.wrong >= config.max_wrong_tokens {
                source.locked_until = Some(now + config.lockout);
                source.wrong = 0;
                source.window_start = now;
            }
        }
        Err(
            Response::text(401, format!("wrong access token: {HOW_TO_AUTHORIZE}"))
                .with_header("WWW-Authenticate", "Bearer error=\"invalid_token\""),
        )
    }

    fn offer(&mut self, req: &Request) -> Action {
        let content_type = req.content_type.as_deref().unwrap_or("");
        let media_type = content_type.split(';').next().unwrap_or("").trim();
        if !media_type.eq_ignore_ascii_case("application/sdp") {
            let shown = if content_type.is_empty() {
                "none".to_string()
            } else {
                format!("{:?}", content_type.chars().take(64).collect::<String>())
            };
            return Action::Respond(Response::text(
                400,
                format!("the offer's Content-Type must be application/sdp (got {shown})"),
            ));
        }
        let Ok(sdp) = std::str::from_utf8(&req.body) else {
            return Action::Respond(Response::text(400, "the SDP offer is not UTF-8"));
        };
        if !sdp.starts_with("v=0") {
            return Action::Respond(Response::text(
                400,
                "the body is not an SDP offer (an SDP starts with v=0)",
            ));
        }
        self.stats.offers += 1;
        Action::Offer { sdp: sdp.into() }
    }

    /// `201 Created` with the SDP answer for the viewer `viewer` (its ID in `Location`).
    pub fn answer(&self, viewer: &str, sdp: &str) -> Response {
        with_cors(Response::sdp(201, sdp).with_header("Location", format!("/whep/{viewer}")))
    }

    /// The answer to an offer that gets no viewer.
    pub fn refused(&self, why: Refusal) -> Response {
        let response = match why {
            Refusal::Full => Response::text(
                503,
                "every viewer slot is taken: try again when a viewer leaves",
            )
            .with_header("Retry-After", "2"),
            Refusal::BadOffer(reason) => {
                Response::text(400, format!("cannot answer this offer: {reason}"))
            }
        };
        with_cors(response)
    }

    /// The answer to `DELETE /whep/ID`: 200 if that viewer was there, else 404.
    pub fn left(&self, known: bool) -> Response {
        with_cors(if known {
            Response::empty(200)
        } else {
            Response::text(404, "no such viewer")
        })
    }

    /// The counters so far.
    pub fn stats(&self) -> SignallingStats {
        self.stats
    }

    /// Panics if the state is inconsistent (tests and fuzzers call this after each step).
    pub fn check_invariants(&self) {
        let config = &self.config;
        assert!(
            self.sources.len() <= config.max_sources.max(1),
            "{} sources tracked, bound {}",
            self.sources.len(),
            config.max_sources
        );
        let in_budget = |bucket: &Bucket, budget: Budget| {
            bucket.tokens >= 0.0 && bucket.tokens <= f64::from(budget.burst)
        };
        for (key, source) in &self.sources {
            assert!(
                in_budget(&source.bucket, config.per_source),
                "{key:?}: {source:?}"
            );
            assert!(
                source.wrong < config.max_wrong_tokens.max(1),
                "{key:?}: {source:?}"
            );
        }
        if let Some(total) = &self.total {
            assert!(in_budget(total, config.total), "{total:?}");
        }
        let s = self.stats;
        assert!(
            s.unauthorized + s.rate_limited + s.offers <= s.requests,
            "{s:?}"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::web::http::parse_request;
    use std::net::{Ipv4Addr, Ipv6Addr};

    const TOKEN: &str = "00112233445566778899aabbccddeeff";
    const WRONG: &str = "00112233445566778899aabbccddeef0";
    const OFFER: &str = "v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\n";

    fn machine() -> Signalling {
        Signalling::new(TOKEN.parse().unwrap(), SignallingConfig::default())
    }

    fn ip(n: u32) -> IpAddr {
        IpAddr::V4(Ipv4Addr::from(0x0a00_0000 + n))
    }

    fn request(method: Method, path: &str) -> Request {
        Request {
            method,
            path: path.into(),
            authorization: None,
            content_type: None,
            body: Vec::new(),
        }
    }

    fn offer(auth: Option<&str>, content_type: Option<&str>, body: &str) -> Request {
        Request {
            authorization: auth.map(Into::into),
            content_type: content_type.map(Into::into),
            body: body.as_bytes().to_vec(),
            ..request(Method::Post, "/whep")
        }
    }

    fn delete(auth: Option<&str>, id: &str) -> Request {
        Request {
            authorization: auth.map(Into::into),
            ..request(Method::Delete, &format!("/whep/{id}"))
        }
    }

    fn status(action: &Action) -> u16 {
        match action {
            Action::Respond(r) => r.status,
            Action::Offer { .. } => 1,
            Action::Leave { .. } => 2,
        }
    }

    fn response(action: Action) -> Response {
        match action {
            Action::Respond(r) => r,
            other => panic!("expected an answer, got {other:?}"),
        }
    }

    fn body(r: &Response) -> String {
        String::from_utf8(r.body.clone()).unwrap()
    }

    #[test]
    fn every_route() {
        let bearer = format!("Bearer {TOKEN}");
        let lower = format!("bearer {TOKEN}");
        let wrong = format!("Bearer {WRONG}");
        // (request, status or 1 = Offer / 2 = Leave, text the body holds)
        let cases: Vec<(Request, u16, &str)> = vec![
            (request(Method::Get, "/"), 200, ""),
            (request(Method::Head, "/"), 200, ""),
            (request(Method::Post, "/"), 405, "GET, HEAD"),
            (request(Method::Options, "/"), 405, ""),
            (request(Method::Get, "/favicon.ico"), 204, ""),
            (request(Method::Delete, "/favicon.ico"), 405, ""),
            (request(Method::Get, "/index.html"), 404, "no such page"),
            (request(Method::Get, "/whepx"), 404, ""),
            (request(Method::Options, "/whep"), 204, ""),
            (request(Method::Options, "/whep/abc"), 204, ""),
            (request(Method::Get, "/whep"), 405, "POST, OPTIONS"),
            (request(Method::Other, "/whep/abc"), 405, "DELETE, OPTIONS"),
            (request(Method::Delete, "/whep/"), 404, "no such viewer"),
            (request(Method::Delete, "/whep/a/b"), 404, "no such viewer"),
            (offer(Some(&bearer), Some("application/sdp"), OFFER), 1, ""),
            (
                offer(Some(&lower), Some("Application/SDP; charset=utf-8"), OFFER),
                1,
                "",
            ),
            (
                offer(None, Some("application/sdp"), OFFER),
                401,
                "missing access token",
            ),
            (
                offer(Some(""), Some("application/sdp"), OFFER),
                401,
                "missing access token",
            ),
            (
                offer(Some(&wrong), Some("application/sdp"), OFFER),
                401,
                "wrong access token",
            ),
            (
                offer(Some(TOKEN), Some("application/sdp"), OFFER),
                401,
                "wrong access token",
            ),
            (
                offer(Some(&format!("Basic {TOKEN}")), None, OFFER),
                401,
                "wrong",
            ),
            // The token is checked first: an unauthorized client learns nothing more.
            (offer(None, Some("text/plain"), "x"), 401, "missing"),
            (
                offer(Some(&bearer), None, OFFER),
                400,
                "application/sdp (got none)",
            ),
            (
                offer(Some(&bearer), Some("text/plain"), OFFER),
                400,
                "(got \"text/plain\")",
            ),
            (
                offer(Some(&bearer), Some("application/sdp"), "hello"),
                400,
                "v=0",
            ),
            (
                offer(Some(&bearer), Some("application/sdp"), ""),
                400,
                "v=0",
            ),
            (delete(Some(&bearer), "v-1_a.b~c"), 2, ""),
            (delete(None, "abc"), 401, "missing"),
            (delete(Some(&wrong), "abc"), 401, "wrong"),
            (delete(Some(&bearer), &"a".repeat(65)), 404, ""),
        ];
        let now = Instant::now();
        for (i, (req, want, says)) in cases.into_iter().enumerate() {
            // A fresh source each, so budgets stay out of this table.
            let mut sig = machine();
            let action = sig.handle(now, ip(i as u32), &req);
            assert_eq!(status(&action), want, "{req:?}: {action:?}");
            if let Action::Respond(r) = &action {
                assert!(
                    body(r).contains(says),
                    "{req:?}: {:?} lacks {says:?}",
                    body(r)
                );
                if r.status == 405 {
                    assert!(r.header("Allow").is_some(), "{r:?}");
                }
                if r.status == 401 {
                    assert!(r.header("WWW-Authenticate").is_some(), "{r:?}");
                }
                let whep = req.path.starts_with("/whep/") || req.path == "/whep";
                assert_eq!(
                    r.header("Access-Control-Allow-Origin"),
                    whep.then_some("*"),
                    "{req:?}: {r:?}"
                );
            }
            sig.check_invariants();
        }
    }

    #[test]
    fn page_preflight_and_answers_carry_the_contract_headers() {
        let mut sig = machine();
        let now = Instant::now();
        let page = response(sig.handle(now, ip(1), &request(Method::Get, "/")));
        assert_eq!(page.body, crate::web::PAGE.as_bytes());
        assert!(page.header("Content-Security-Policy").is_some());
        assert_eq!(
            page.header("Content-Type"),
            Some("text/html; charset=utf-8")
        );
        let head = response(sig.handle(now, ip(1), &request(Method::Head, "/")));
        assert!(head.body.is_empty());
        assert_eq!(
            head.header("Content-Length"),
            Some(crate::web::PAGE.len().to_string().as_str())
        );

        let pre = response(sig.handle(now, ip(1), &request(Method::Options, "/whep")));
        assert_eq!(pre.header("Access-Control-Allow-Origin"), Some("*"));
        assert_eq!(
            pre.header("Access-Control-Allow-Methods"),
            Some("POST, DELETE, OPTIONS")
        );
        assert_eq!(
            pre.header("Access-Control-Allow-Headers"),
            Some("Authorization, Content-Type")
        );

        let answer = sig.answer("v7", "v=0\r\n");
        assert_eq!(answer.status, 201);
        assert_eq!(answer.header("Location"), Some("/whep/v7"));
        assert_eq!(answer.header("Content-Type"), Some("application/sdp"));
        assert_eq!(answer.header("Access-Control-Allow-Origin"), Some("*"));
        assert_eq!(
            answer.header("Access-Control-Expose-Headers"),
            Some("Location")
        );
        assert_eq!(answer.body, b"v=0\r\n");

        let full = sig.refused(Refusal::Full);
        assert_eq!((full.status, full.header("Retry-After")), (503, Some("2")));
        let bad = sig.refused(Refusal::BadOffer("no H.264 in the offer".into()));
        assert_eq!(bad.status, 400);
        assert!(body(&bad).contains("no H.264 in the offer"));
        assert_eq!(sig.left(true).status, 200);
        assert_eq!(sig.left(false).status, 404);
        assert_eq!(
            sig.left(true).header("Access-Control-Allow-Origin"),
            Some("*")
        );
    }

    #[test]
    fn a_request_read_in_pieces_at_every_boundary_becomes_the_offer() {
        let wire = format!(
            "POST /whep HTTP/1.1\r\nHost: cam\r\nAuthorization: Bearer {TOKEN}\r\n\
             Content-Type: application/sdp\r\nContent-Length: {}\r\n\r\n{OFFER}",
            OFFER.len()
        );
        let wire = wire.as_bytes();
        let now = Instant::now();
        for cut in 1..wire.len() {
            let mut buf = Vec::new();
            let mut got = None;
            for piece in [&wire[..cut], &wire[cut..]] {
                assert!(got.is_none(), "complete before the last piece at {cut}");
                buf.extend_from_slice(piece);
                got = parse_request(&buf).unwrap();
            }
            let (req, n) = got.unwrap_or_else(|| panic!("incomplete at cut {cut}"));
            assert_eq!(n, wire.len());
            let mut sig = machine();
            assert_eq!(
                sig.handle(now, ip(1), &req),
                Action::Offer { sdp: OFFER.into() }
            );
        }
        // Byte by byte, as a slow client sends it.
        let mut buf = Vec::new();
        for (i, byte) in wire.iter().enumerate() {
            buf.push(*byte);
            let done = parse_request(&buf).unwrap().is_some();
            assert_eq!(done, i + 1 == wire.len(), "at byte {i}");
        }
    }

    #[test]
    fn a_source_gets_its_burst_then_its_rate() {
        let mut sig = machine();
        let t0 = Instant::now();
        let get = request(Method::Get, "/favicon.ico");
        for i in 0..20 {
            assert_eq!(status(&sig.handle(t0, ip(1), &get)), 204, "request {i}");
        }
        let refused = response(sig.handle(t0, ip(1), &get));
        assert_eq!(refused.status, 429);
        assert_eq!(refused.header("Retry-After"), Some("1"));
        assert!(body(&refused).contains("from this address"));
        // Another source is unaffected.
        assert_eq!(status(&sig.handle(t0, ip(2), &get)), 204);
        // 5 a second: one more every 200 ms.
        let t = t0 + Duration::from_millis(199);
        assert_eq!(status(&sig.handle(t, ip(1), &get)), 429);
        let t = t0 + Duration::from_millis(201);
        assert_eq!(status(&sig.handle(t, ip(1), &get)), 204);
        assert_eq!(status(&sig.handle(t, ip(1), &get)), 429);
        // Over a simulated minute at 10 a second, about 5 a second get through.
        let mut ok = 0;
        for step in 1..=600 {
            let t = t + Duration::from_millis(100 * step);
            ok += u32::from(status(&sig.handle(t, ip(1), &get)) == 204);
        }
        assert!((295..=305).contains(&ok), "{ok} of 600 in 60 s");
        // Idle for 10 s, the whole burst is back, and no more.
        let t = t + Duration::from_secs(70);
        let burst = (0..30)
            .filter(|_| status(&sig.handle(t, ip(1), &get)) == 204)
            .count();
        assert_eq!(burst, 20);
        assert_eq!(sig.stats().rate_limited, 3 + (600 - ok as u64) + 10);
        sig.check_invariants();
    }

    #[test]
    fn ipv6_sources_are_their_64_and_mapped_ipv4_is_ipv4() {
        let mut sig = machine();
        let now = Instant::now();
        let get = request(Method::Get, "/favicon.ico");
        for i in 0..20u16 {
            let addr = Ipv6Addr::new(0x2001, 0xdb8, 0, 1, i, i, i, i);
            assert_eq!(status(&sig.handle(now, IpAddr::V6(addr), &get)), 204);
        }
        let same_64 = Ipv6Addr::new(0x2001, 0xdb8, 0, 1, 9, 9, 9, 9);
        assert_eq!(status(&sig.handle(now, IpAddr::V6(same_64), &get)), 429);
        let other_64 = Ipv6Addr::new(0x2001, 0xdb8, 0, 2, 0, 0, 0, 1);
        assert_eq!(status(&sig.handle(now, IpAddr::V6(other_64), &get)), 204);

        for _ in 0..20 {
            assert_eq!(status(&sig.handle(now, ip(5), &get)), 204);
        }
        let IpAddr::V4(v4) = ip(5) else {
            unreachable!()
        };
        let mapped = IpAddr::V6(v4.to_ipv6_mapped());
        assert_eq!(status(&sig.handle(now, mapped, &get)), 429);
    }

    #[test]
    fn all_sources_together_get_the_total_budget() {
        let mut sig = machine();
        let t0 = Instant::now();
        let get = request(Method::Get, "/");
        for i in 0..100 {
            assert_eq!(
                status(&sig.handle(t0, ip(i % 10), &get)),
                200,
                "request {i}"
            );
        }
        let refused = response(sig.handle(t0, ip(11), &get));
        assert_eq!(refused.status, 429);
        assert!(
            body(&refused).contains("to this camera"),
            "{}",
            body(&refused)
        );
        // 100 a second: one every 10 ms.
        let t = t0 + Duration::from_millis(11);
        assert_eq!(status(&sig.handle(t, ip(12), &get)), 200);
        assert_eq!(status(&sig.handle(t, ip(13), &get)), 429);
        // A source over its own budget does not spend the total.
        let mut sig = machine();
        for _ in 0..1000 {
            sig.handle(t0, ip(1), &get);
        }
        for i in 0..80 {
            assert_eq!(
                status(&sig.handle(t0, ip(100 + i), &get)),
                200,
                "source {i}"
            );
        }
        sig.check_invariants();
    }

    #[test]
    fn wrong_tokens_lock_a_source_out_for_a_minute() {
        let mut sig = machine();
        let t0 = Instant::now();
        let right = format!("Bearer {TOKEN}");
        let wrong = format!("Bearer {WRONG}");
        let guess = offer(Some(&wrong), Some("application/sdp"), OFFER);
        let good = offer(Some(&right), Some("application/sdp"), OFFER);
        // Nine wrong, a quiet minute, nine more: never ten in one window.
        let mut t = t0;
        for _ in 0..9 {
            t += Duration::from_secs(1);
            assert_eq!(status(&sig.handle(t, ip(1), &guess)), 401);
        }
        t += Duration::from_secs(61);
        for _ in 0..9 {
            t += Duration::from_secs(1);
            assert_eq!(status(&sig.handle(t, ip(1), &guess)), 401);
        }
        assert_eq!(status(&sig.handle(t, ip(1), &good)), 1);

        // Ten in a minute: then 429 for a minute, even with the right token, and
        // for DELETE too; other sources and the page are unaffected.
        let mut sig = machine();
        let mut t = t0;
        for i in 0..10 {
            t += Duration::from_millis(500);
            assert_eq!(status(&sig.handle(t, ip(1), &guess)), 401, "guess {i}");
        }
        let locked = response(sig.handle(t, ip(1), &good));
        assert_eq!(locked.status, 429);
        assert_eq!(locked.header("Retry-After"), Some("60"));
        assert!(
            body(&locked).contains("wrong access tokens"),
            "{}",
            body(&locked)
        );
        assert_eq!(
            status(&sig.handle(t, ip(1), &delete(Some(&right), "a"))),
            429
        );
        assert_eq!(
            status(&sig.handle(t, ip(1), &request(Method::Get, "/"))),
            200
        );
        assert_eq!(status(&sig.handle(t, ip(2), &good)), 1);
        let later = t + Duration::from_secs(30);
        let still = response(sig.handle(later, ip(1), &guess));
        assert_eq!(
            (still.status, still.header("Retry-After")),
            (429, Some("30"))
        );
        let after = t + Duration::from_secs(60);
        assert_eq!(status(&sig.handle(after, ip(1), &good)), 1);
        let s = sig.stats();
        assert_eq!((s.unauthorized, s.offers), (10, 2));
        assert_eq!(s.rate_limited, 3);
        sig.check_invariants();
    }

    #[test]
    fn the_source_table_stays_bounded_and_keeps_the_locked_out() {
        let mut sig = machine();
        let t0 = Instant::now();
        let guess = offer(Some(&format!("Bearer {WRONG}")), None, "");
        let good = offer(
            Some(&format!("Bearer {TOKEN}")),
            Some("application/sdp"),
            OFFER,
        );
        let guesser = IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0xbad, 0, 0, 0, 0, 1));
        for _ in 0..10 {
            sig.handle(t0, guesser, &guess);
        }
        let get = request(Method::Get, "/favicon.ico");
        for i in 0..10_000u32 {
            // 10 ms apart: within the total budget, 100 s in all.
            let t = t0 + Duration::from_millis(10 * u64::from(i) + 10);
            assert_eq!(status(&sig.handle(t, ip(i), &get)), 204, "source {i}");
            assert!(sig.sources.len() <= 256);
            if i % 500 == 0 {
                sig.check_invariants();
            }
        }
        assert_eq!(sig.sources.len(), 256);
        sig.check_invariants();
        // Oldest-first eviction would drop a locked-out guesser among the first; it is
        // kept while its lockout runs, however many new sources come.
        let t = t0 + Duration::from_secs(20);
        let mut sig2 = machine();
        for _ in 0..10 {
            sig2.handle(t0, guesser, &guess);
        }
        for i in 0..1000u32 {
            sig2.handle(t0 + Duration::from_millis(10 * u64::from(i)), ip(i), &get);
        }
        assert_eq!(status(&sig2.handle(t, guesser, &good)), 429);
        sig2.check_invariants();
    }

    #[test]
    fn time_running_backwards_or_zero_budgets_never_panic() {
        let t0 = Instant::now() + Duration::from_secs(10);
        let config = SignallingConfig {
            per_source: Budget {
                burst: 1,
                per_second: 0,
            },
            max_sources: 0,
            max_wrong_tokens: 0,
            ..SignallingConfig::default()
        };
        let mut sig = Signalling::new(TOKEN.parse().unwrap(), config);
        let get = request(Method::Get, "/");
        assert_eq!(status(&sig.handle(t0, ip(1), &get)), 200);
        let refused = response(sig.handle(t0 - Duration::from_secs(5), ip(1), &get));
        assert_eq!(
            (refused.status, refused.header("Retry-After")),
            (429, Some("60"))
        );
        assert_eq!(status(&sig.handle(t0, ip(2), &get)), 200);
        let guess = offer(Some(&format!("Bearer {WRONG}")), None, "");
        assert_eq!(status(&sig.handle(t0, ip(3), &guess)), 401);
        sig.check_invariants();
    }
}
