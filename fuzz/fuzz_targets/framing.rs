//! Feeds `LengthPrefixed` a byte stream in fuzzer-chosen chunks and checks it against a
//! one-line reference parser. A panic is a bug, never bad input.
//!
//! Layout: `max_message: u16 le`, then records of `chunk_len: u8` and that many bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use transport::{LengthPrefixed, TransportError};

const PREFIX: usize = 4;

fuzz_target!(|data: &[u8]| {
    let Some((max, mut rest)) = data.split_first_chunk::<2>() else {
        return;
    };
    let max = usize::from(u16::from_le_bytes(*max));
    let mut splitter = LengthPrefixed::new(max);
    let mut stream = Vec::new();
    let mut read = 0; // how much of `stream` the reference parser has consumed
    while let Some((&len, tail)) = rest.split_first() {
        let (chunk, tail) = tail.split_at((len as usize).min(tail.len()));
        rest = tail;
        splitter.push(chunk);
        stream.extend_from_slice(chunk);
        loop {
            let pending = &stream[read..];
            let expected = (pending.len() >= PREFIX).then(|| {
                let n = u32::from_be_bytes(pending[..PREFIX].try_into().unwrap()) as usize;
                (n, pending.get(PREFIX..PREFIX + n))
            });
            match (splitter.pull(), expected) {
                (Ok(None), None) => break,
                (Ok(None), Some((n, None))) if n <= max => {
                    assert!(splitter.buffered() < PREFIX + max);
                    break;
                }
                (Ok(Some(message)), Some((n, Some(body)))) if n <= max => {
                    assert_eq!(&message[..], body);
                    read += PREFIX + n;
                    assert_eq!(splitter.buffered(), stream.len() - read);
                }
                (Err(TransportError::TooLarge { size, .. }), Some((n, _))) if n > max => {
                    assert_eq!(size, n);
                    return; // the stream is unusable from here
                }
                (got, want) => panic!("splitter gave {got:?}, reference {want:?}"),
            }
        }
    }
});
