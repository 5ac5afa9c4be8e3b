//! The web access token: 128 random bits that a browser shows by holding them in the
//! page's URL fragment (`http://HOST:PORT/#t=TOKEN`) and sends back as
//! `Authorization: Bearer TOKEN` on each WHEP request.
//!
//! 128 bits because the token is the only thing between the network and the camera's
//! picture: guessing is hopeless at any rate (see `signalling.rs` for the budgets that
//! bound the rate anyway). In the fragment, because browsers never send a fragment to
//! any server, nor put it in a `Referer`.

use std::fmt;
use std::str::FromStr;

use subtle::ConstantTimeEq;

use crate::TransportError;

/// The token's length in bytes; written as twice as many hex digits.
pub const TOKEN_BYTES: usize = 16;

/// A 128-bit access token. `Display` writes it as 32 lowercase hex digits (the form in
/// the URL and the token file); `Debug` never shows it.
#[derive(Clone, PartialEq, Eq)]
pub struct WebToken([u8; TOKEN_BYTES]);

impl WebToken {
    /// A new token from the operating system's random source.
    pub fn generate() -> Result<Self, TransportError> {
        let mut bytes = [0u8; TOKEN_BYTES];
        getrandom::getrandom(&mut bytes).map_err(|e| TransportError::Random {
            what: "web access token",
            reason: e.to_string(),
        })?;
        Ok(Self(bytes))
    }

    /// A token from its bytes (tests, fuzzing).
    pub fn from_bytes(bytes: [u8; TOKEN_BYTES]) -> Self {
        Self(bytes)
    }

    /// Whether an `Authorization` header's value is `Bearer` and this token. The scheme
    /// is case-insensitive (RFC 9110 11.1); the token must be its 32 hex digits.
    ///
    /// The bytes are compared in constant time, so how long an answer takes says
    /// nothing about how many leading bytes of a guess were right. Only the guess's
    /// own shape (its length, whether it is hex) shapes the time before that, and the
    /// guesser knows that already.
    pub fn matches_bearer(&self, authorization_header: &str) -> bool {
        let Some((scheme, credentials)) = authorization_header.trim().split_once(' ') else {
            return false;
        };
        if !scheme.eq_ignore_ascii_case("bearer") {
            return false;
        }
        match decode(credentials.trim()) {
            Some(candidate) => bool::from(self.0.ct_eq(&candidate)),
            None => false,
        }
    }
}

/// 32 hex digits (either case) to bytes; `None` for anything else.
fn decode(text: &str) -> Option<[u8; TOKEN_BYTES]> {
    let digits = text.as_bytes();
    if digits.len() != 2 * TOKEN_BYTES {
        return None;
    }
    let mut bytes = [0u8; TOKEN_BYTES];
    for (byte, pair) in bytes.iter_mut().zip(digits.chunks_exact(2)) {
        let high = char::from(pair[0]).to_digit(16)?;
        let low = char::from(pair[1]).to_digit(16)?;
        *byte = (high << 4 | low) as u8;
    }
    Some(bytes)
}

impl fmt::Display for WebToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.iter().try_for_each(|b| write!(f, "{b:02x}"))
    }
}

impl fmt::Debug for WebToken {
    // Never the token: Debug output ends up in logs.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("WebToken(..)")
    }
}

impl FromStr for WebToken {
    type Err = TransportError;

    /// 32 hex digits; surrounding whitespace (a token file's line end) is ignored.
    /// Upper case is accepted, though picam writes lower case.
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        decode(text.trim()).map(Self).ok_or_else(|| {
            // Named in the error, cut so a wrong file cannot flood the terminal.
            let shown: String = text.chars().take(80).collect();
            TransportError::BadWebToken { value: shown }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEX: &str = "00112233445566778899aabbccddeeff";

    fn token() -> WebToken {
        HEX.parse().unwrap()
    }

    #[test]
    fn round_trips_as_lowercase_hex_and_hides_itself_from_debug() {
        let t = token();
        assert_eq!(t.to_string(), HEX);
        assert_eq!(
            t,
            WebToken::from_bytes([
                0x00, 0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88, 0x99, 0xaa, 0xbb, 0xcc, 0xdd,
                0xee, 0xff
            ])
        );
        assert_eq!(format!("{t:?}"), "WebToken(..)");
        assert_eq!(format!("{HEX}\n").parse::<WebToken>().unwrap(), t);
        assert_eq!(HEX.to_uppercase().parse::<WebToken>().unwrap(), t);
        let a = WebToken::generate().unwrap();
        let b = WebToken::generate().unwrap();
        assert_ne!(a, b);
        let text = a.to_string();
        assert_eq!(text.len(), 32);
        assert!(text
            .bytes()
            .all(|c| c.is_ascii_digit() || (b'a'..=b'f').contains(&c)));
        assert!(!format!("{a:?}").contains(&text));
    }

    #[test]
    fn refuses_text_that_is_not_a_token_naming_it() {
        for bad in [
            "",
            "0011",
            "g0112233445566778899aabbccddeeff",
            &format!("{HEX}00"),
            "é1122334455667788899aabbccddeef",
        ] {
            let err = bad.parse::<WebToken>().unwrap_err().to_string();
            assert!(err.contains(&format!("{bad:?}")), "{err}");
            assert!(err.contains("32 hexadecimal digits"), "{err}");
        }
        let long = "x".repeat(10_000);
        let err = long.parse::<WebToken>().unwrap_err().to_string();
        assert!(err.len() < 200, "{err}");
    }

    #[test]
    fn matches_only_bearer_and_the_exact_token() {
        let t = token();
        let mut wrong = HEX.to_string();
        wrong.replace_range(31.., "0");
        let cases: &[(&str, bool)] = &[
            (&format!("Bearer {HEX}"), true),
            (&format!("bearer {HEX}"), true),
            (&format!("BEARER {HEX}"), true),
            (&format!("  Bearer   {HEX}  "), true),
            (&format!("Bearer {}", HEX.to_uppercase()), true),
            (&format!("Bearer {wrong}"), false),
            (HEX, false),
            (&format!("Basic {HEX}"), false),
            (&format!("Bearer{HEX}"), false),
            (&format!("Bearer {HEX}0"), false),
            (&format!("Bearer {}", &HEX[..31]), false),
            (&format!("Bearer {HEX} {HEX}"), false),
            ("Bearer ", false),
            ("", false),
            ("Bearer é", false),
        ];
        for (header, want) in cases {
            assert_eq!(t.matches_bearer(header), *want, "{header:?}");
        }
    }
}
