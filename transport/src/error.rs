use std::net::SocketAddr;

/// Everything the transport stage can report.
#[derive(Debug, thiserror::Error)]
pub enum TransportError {
    /// A packet shorter than its header says it must be.
    #[error("truncated packet: {needed} bytes needed for the {what}, {got} present")]
    Truncated {
        /// Which part was cut.
        what: &'static str,
        /// Bytes that part needs.
        needed: usize,
        /// Bytes present.
        got: usize,
    },
    /// The first two bytes are not picam's magic.
    #[error("not a picam packet (magic {0:#06x})")]
    BadMagic(u16),
    /// A wire version newer than this build's.
    #[error("the peer speaks picam wire version {0}, newer than this build's version 2: upgrade this picam")]
    UnsupportedVersion(u8),
    /// A wire version older than this build's: the peer is an older picam.
    #[error("the peer speaks picam wire version {0}, from an older picam without loss repair: upgrade it to talk to this one (wire version 2)")]
    OlderVersion(u8),
    /// A message kind this build does not know.
    #[error("unknown message kind {0}")]
    UnknownKind(u8),
    /// Fragment fields that cannot describe a frame.
    #[error("bad fragment {index}/{count} of frame {frame}")]
    BadFragment {
        /// Frame number.
        frame: u32,
        /// Fragment index.
        index: u16,
        /// Fragment count.
        count: u16,
    },
    /// Flags this build does not implement (for instance, authenticated packets).
    #[error("unsupported flags {0:#04x}")]
    UnsupportedFlags(u8),
    /// A frame or message larger than the configured maximum.
    #[error("{what} of {size} bytes exceeds the maximum of {max}")]
    TooLarge {
        /// What was too large.
        what: &'static str,
        /// Its size.
        size: usize,
        /// The limit.
        max: usize,
    },
    /// An HTTP request head (web signalling) longer than the parser accepts: 431.
    #[error("HTTP request head exceeds the maximum of {max} bytes")]
    HttpHeadTooLarge {
        /// The limit, bytes.
        max: usize,
    },
    /// An HTTP request with more header fields than the parser accepts: 431.
    #[error("HTTP request with more than {max} header fields")]
    HttpTooManyHeaders {
        /// The limit.
        max: usize,
    },
    /// An HTTP request whose `Content-Length` is over the body limit: 413.
    #[error("HTTP request body of {length} bytes (Content-Length) exceeds the maximum of {max}")]
    HttpBodyTooLarge {
        /// The `Content-Length` as sent (cut if long).
        length: String,
        /// The limit, bytes.
        max: usize,
    },
    /// An HTTP request body framed by `Transfer-Encoding` (chunked): 411.
    #[error("HTTP request body with Transfer-Encoding {transfer_encoding:?}: only bodies with a Content-Length are accepted")]
    HttpLengthRequired {
        /// The `Transfer-Encoding` as sent (cut if long).
        transfer_encoding: String,
    },
    /// An HTTP request that does not parse, or is ambiguous: 400.
    #[error("bad HTTP request: {what}")]
    HttpMalformed {
        /// What is wrong with it.
        what: String,
    },
    /// Text that should be a web access token is not one.
    #[error("invalid web access token {value:?}: expected 32 hexadecimal digits")]
    BadWebToken {
        /// The text (cut if long).
        value: String,
    },
    /// The operating system's random source failed.
    #[error("no randomness from the operating system for the {what}: {reason}")]
    Random {
        /// What the randomness was for.
        what: &'static str,
        /// The operating system's error.
        reason: String,
    },
    /// A socket operation failed.
    #[error("{context} ({addr}): {source}")]
    Io {
        /// What was being done.
        context: &'static str,
        /// The local or remote address involved.
        addr: SocketAddr,
        /// The operating system's error.
        source: std::io::Error,
    },
    /// A browser's SDP offer that picam cannot answer.
    #[error("cannot answer the browser's offer: {0}")]
    BadOffer(String),
}
