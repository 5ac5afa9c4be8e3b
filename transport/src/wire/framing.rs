//! Length-prefixed messages for TCP: a u32 big-endian length, then one wire packet.

use bytes::{Buf, Bytes, BytesMut};

use crate::TransportError;

/// Splits a TCP byte stream into messages. Check-then-parse: an incomplete message is
/// `Ok(None)`, not an error; a length past the maximum is an error (the stream is then
/// unusable and the connection should be dropped).
#[derive(Debug)]
pub struct LengthPrefixed {
    buffer: BytesMut,
    max_message: usize,
}

/// Bytes of the length prefix.
pub const PREFIX: usize = 4;

impl LengthPrefixed {
    /// A splitter that refuses messages over `max_message` bytes.
    pub fn new(max_message: usize) -> Self {
        Self {
            buffer: BytesMut::with_capacity(64 * 1024),
            max_message,
        }
    }

    /// Appends bytes read from the stream.
    pub fn push(&mut self, bytes: &[u8]) {
        self.buffer.extend_from_slice(bytes);
    }

    /// Bytes waiting for a complete message.
    pub fn buffered(&self) -> usize {
        self.buffer.len()
    }

    /// The next complete message, if there is one.
    pub fn pull(&mut self) -> Result<Option<Bytes>, TransportError> {
        if self.buffer.len() < PREFIX {
            return Ok(None);
        }
        let len = u32::from_be_bytes([
            self.buffer[0],
            self.buffer[1],
            self.buffer[2],
            self.buffer[3],
        ]) as usize;
        if len > self.max_message {
            return Err(TransportError::TooLarge {
                what: "TCP message",
                size: len,
                max: self.max_message,
            });
        }
        if self.buffer.len() < PREFIX + len {
            // Reserve once so a large frame does not reallocate on every read.
            self.buffer.reserve(PREFIX + len - self.buffer.len());
            return Ok(None);
        }
        self.buffer.advance(PREFIX);
        Ok(Some(self.buffer.split_to(len).freeze()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write_message(out: &mut Vec<u8>, message: &[u8]) {
        out.extend_from_slice(&(message.len() as u32).to_be_bytes());
        out.extend_from_slice(message);
    }

    #[test]
    fn splits_a_stream_fed_one_byte_at_a_time() {
        let mut stream = Vec::new();
        for m in [&b"a"[..], b"", b"hello world", &[7u8; 3000]] {
            write_message(&mut stream, m);
        }
        let mut splitter = LengthPrefixed::new(4096);
        let mut got = Vec::new();
        for b in &stream {
            splitter.push(std::slice::from_ref(b));
            while let Some(m) = splitter.pull().unwrap() {
                got.push(m);
            }
        }
        assert_eq!(got.len(), 4);
        assert_eq!(&got[2][..], b"hello world");
        assert_eq!(got[3].len(), 3000);
        assert_eq!(splitter.buffered(), 0);
    }

    #[test]
    fn refuses_oversized_lengths_before_buffering_them() {
        let mut splitter = LengthPrefixed::new(100);
        splitter.push(&[0xFF, 0xFF, 0xFF, 0xFF]);
        assert!(matches!(
            splitter.pull(),
            Err(TransportError::TooLarge { .. })
        ));
    }
}
