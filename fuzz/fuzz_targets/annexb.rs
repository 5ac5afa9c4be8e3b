//! Feeds `AccessUnitSplitter` a byte stream in fuzzer-chosen chunks, pulling after every
//! push until `Ok(None)`, then finishes, and checks what it hands out against the
//! splitter's contract. A panic is a bug, never bad input.
//!
//! What is checked (the module's documented contract):
//! * every access unit is a run of the stream's bytes, as they were, in stream order and
//!   not overlapping; it starts with a start code and holds a slice (only units with a
//!   picture are handed out), and one marked a keyframe holds an IDR slice;
//! * bytes are skipped only when they hold no start code (garbage before the first NAL
//!   unit, or the tail of a start code cut by `flush`), so no NAL unit is lost;
//! * without `flush`, units follow one another with no gap after the first, and the
//!   result does not depend on how the stream was chunked;
//! * `buffered()` never exceeds what was pushed and not handed out, and is zero after
//!   `finish`.
//!
//! Layout: `mode: u8` (bit 0: `flush` is used), then records of `op: u8`: with flushing
//! on, `op >= 0xF0` calls `flush`; otherwise `op` bytes follow and are pushed.
#![no_main]

use capture::annexb::{nal, nal_type, nal_units, AccessUnit, AccessUnitSplitter};
use libfuzzer_sys::fuzz_target;

fn has_start_code(bytes: &[u8]) -> bool {
    bytes.windows(3).any(|w| w == [0, 0, 1])
}

/// Checks what the splitter promises about each unit it hands out.
struct Checker<'a> {
    stream: &'a [u8],
    /// End of the last unit handed out, in `stream`.
    consumed: usize,
    /// Whether `flush` may have cut the stream (gaps allowed between units).
    flushing: bool,
    units: Vec<AccessUnit>,
}

impl Checker<'_> {
    fn unit(&mut self, au: AccessUnit) {
        let data = &au.data[..];
        assert!(
            data.starts_with(&[0, 0, 1]) || data.starts_with(&[0, 0, 0, 1]),
            "unit does not start with a start code: {:02x?}",
            &data[..data.len().min(8)]
        );
        let types: Vec<u8> = nal_units(data).filter_map(nal_type).collect();
        assert!(
            types.iter().any(|t| (1..=5).contains(t)),
            "unit without a slice handed out: NAL types {types:?}"
        );
        if au.keyframe {
            assert!(
                types.contains(&nal::IDR),
                "keyframe without an IDR slice: NAL types {types:?}"
            );
        }
        // Where it sits in the stream: the first match at or after the last unit's end.
        let rest = &self.stream[self.consumed..];
        let at = rest
            .windows(data.len())
            .position(|w| w == data)
            .unwrap_or_else(|| panic!("unit of {} bytes is not a run of the stream", data.len()));
        let skipped = &rest[..at];
        assert!(
            !has_start_code(skipped),
            "{} bytes holding a start code were skipped",
            skipped.len()
        );
        if !self.flushing && !self.units.is_empty() {
            assert_eq!(at, 0, "gap between units without flush");
        }
        self.consumed += at + data.len();
        self.units.push(au);
    }

    /// Pulls until the splitter needs more bytes.
    fn pull_all(&mut self, splitter: &mut AccessUnitSplitter, pushed: usize) {
        loop {
            match splitter.pull() {
                Ok(Some(au)) => self.unit(au),
                Ok(None) => break,
                Err(e) => {
                    // Only a unit over the size limit is an error; the splitter resets.
                    assert!(
                        pushed - self.consumed > capture::annexb::MAX_ACCESS_UNIT,
                        "error on a small stream: {e}"
                    );
                    assert_eq!(splitter.buffered(), 0, "buffered after an error");
                    self.consumed = pushed;
                    self.flushing = true; // a gap follows
                    break;
                }
            }
            assert!(splitter.buffered() <= pushed - self.consumed);
        }
        assert!(
            splitter.buffered() <= pushed - self.consumed,
            "buffered {} of {} bytes not handed out",
            splitter.buffered(),
            pushed - self.consumed
        );
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, mut rest)) = data.split_first() else {
        return;
    };
    let flushing = mode & 1 == 1;
    // The stream is the concatenation of the chunks: gather it first so units can be
    // located in it.
    let mut chunks: Vec<Option<&[u8]>> = Vec::new();
    let mut stream = Vec::new();
    while let Some((&op, tail)) = rest.split_first() {
        if flushing && op >= 0xF0 {
            chunks.push(None);
            rest = tail;
            continue;
        }
        let (chunk, tail) = tail.split_at(usize::from(op).min(tail.len()));
        rest = tail;
        stream.extend_from_slice(chunk);
        chunks.push(Some(chunk));
    }

    let mut splitter = AccessUnitSplitter::new("fuzz");
    let mut checker = Checker {
        stream: &stream,
        consumed: 0,
        flushing,
        units: Vec::new(),
    };
    let mut pushed = 0;
    for chunk in chunks {
        match chunk {
            Some(chunk) => {
                splitter.push(chunk);
                pushed += chunk.len();
                checker.pull_all(&mut splitter, pushed);
            }
            None => {
                if let Some(au) = splitter.flush() {
                    checker.unit(au);
                }
                checker.pull_all(&mut splitter, pushed);
            }
        }
    }
    if let Some(au) = splitter.finish() {
        checker.unit(au);
    }
    assert_eq!(splitter.buffered(), 0, "bytes left after finish");
    assert!(
        splitter.finish().is_none(),
        "a second finish handed out a unit"
    );

    if !flushing {
        // The same stream in one piece splits the same way.
        let mut whole = AccessUnitSplitter::new("fuzz");
        whole.push(&stream);
        let mut units = Vec::new();
        while let Some(au) = whole.pull().expect("no error below the size limit") {
            units.push(au);
        }
        units.extend(whole.finish());
        assert_eq!(units, checker.units, "the result depends on the chunking");
    }
});
