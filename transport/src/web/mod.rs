//! The browser viewer: WHEP signalling over plain HTTP, WebRTC (str0m) to each browser,
//! and the fan-out of one encoder to several viewers.
//!
//! - `http.rs`: bounded HTTP/1.1 request parsing and response encoding (sans-IO).
//! - `signalling.rs`: WHEP routes, the access token check and request budgets.
//! - `token.rs`: the 128-bit access token.
//! - `viewer.rs`: one browser's WebRTC session behind our `Machine` shape.
//! - `fanout.rs`: all viewers of one sender, the keyframe and bitrate policy.
//! - `page/index.html`: the viewer page, served from the binary.

pub mod fanout;
pub mod http;
pub mod signalling;
pub mod token;
pub mod viewer;

/// The viewer page (no framework, one file).
pub const PAGE: &str = include_str!("page/index.html");
