//! Transport-wide congestion control feedback on the RTP wire
//! (draft-holmer-rmcat-transport-wide-cc-extensions-01, as browsers and GStreamer's
//! `rtpbin` speak it): the sender numbers every packet it sends in an RTP header
//! extension, the receiver reports when each numbered packet arrived (RTCP transport
//! feedback, FMT 15), and the sender turns those arrival times into the same
//! [`Signal::Delivered`] samples picam's own wire gives its controller.
//!
//! Why: receiver reports alone give the controller one round trip per sender report
//! (every 50 ms) and no delivered rate. Through a step from 8 to 2 Mbit/s the RTP wire
//! then braked late and recovered in seconds where picam's wire, with per-frame arrival
//! times every 15 ms, recovered within one. With this feedback both wires feed the one
//! controller the same signal.
//!
//! Two halves, one per machine:
//! - `ArrivalLog` (receiver): the arrival time of each numbered packet until the next
//!   feedback, written with `rtcp-types`' TWCC builder;
//! - `SentLog` (sender): the send time and size of each numbered packet, matched
//!   against the feedback.
//!
//! Resends get a new number (they are new packets on the path). The extension is the
//! RFC 8285 one-byte form, id [`EXTENSION_ID`], announced in the SDP picam writes.

use std::collections::{BTreeMap, VecDeque};
use std::time::{Duration, Instant};

use crate::congestion::Signal;
use crate::repair::seq64::{self, Extender};

/// The extension's URI (SDP `a=extmap`).
pub const EXTENSION_URI: &str =
    "http://www.ietf.org/id/draft-holmer-rmcat-transport-wide-cc-extensions-01";
/// The extension's id in picam's packets (and the one picam's receiver reads).
pub const EXTENSION_ID: u8 = 1;
/// RFC 8285's one-byte header extension profile.
pub const ONE_BYTE_PROFILE: u16 = 0xBEDE;
/// Bytes the extension adds to an RTP packet: the extension header (4) and one element
/// (1 + 2 bytes), padded to a 32-bit word.
pub const EXTENSION_BYTES: usize = 8;
/// Where the number sits in a packet the sender built: after the 12-byte fixed header
/// (no CSRC), the 4-byte extension header and the element's id/length byte.
const SEQ_OFFSET: usize = 12 + 4 + 1;

/// The extension data for transport-wide number `seq`: one element, padded.
pub fn extension_data(seq: u16) -> [u8; 4] {
    let [hi, lo] = seq.to_be_bytes();
    // Length field: bytes of data minus one.
    [(EXTENSION_ID << 4) | 1, hi, lo, 0]
}

/// The transport-wide number in an RTP packet's header extension, if it carries one
/// under [`EXTENSION_ID`]. Malformed extensions give `None`, never a panic.
pub fn read_seq(packet: &rtp_types::RtpPacket<'_>) -> Option<u16> {
    let (profile, data) = packet.extension()?;
    if profile != ONE_BYTE_PROFILE {
        return None;
    }
    let mut i = 0;
    while let Some(&b) = data.get(i) {
        if b == 0 {
            // Padding between elements.
            i += 1;
            continue;
        }
        let (id, len) = (b >> 4, usize::from(b & 0x0f) + 1);
        if id == 15 {
            // RFC 8285: stop reading.
            return None;
        }
        let body = data.get(i + 1..i + 1 + len)?;
        if id == EXTENSION_ID && len == 2 {
            return Some(u16::from_be_bytes([body[0], body[1]]));
        }
        i += 1 + len;
    }
    None
}

/// Gives a packet the sender built (and keeps for resending) a new transport-wide
/// number; false if it does not have the layout the sender writes.
pub fn rewrite_seq(packet: &mut [u8], seq: u16) -> bool {
    let ours = packet.len() >= 12 + EXTENSION_BYTES
        && packet[0] & 0x1f == 0x10 // extension bit, no CSRC
        && packet[12..14] == ONE_BYTE_PROFILE.to_be_bytes()
        && packet[16] == (EXTENSION_ID << 4) | 1;
    if ours {
        packet[SEQ_OFFSET..SEQ_OFFSET + 2].copy_from_slice(&seq.to_be_bytes());
    }
    ours
}

/// TWCC's reference time unit, µs (64 ms), and its field's width (24 bits).
const REFERENCE_US: u64 = 64_000;
const REFERENCE_BITS: u32 = 24;
/// TWCC's arrival delta unit, µs.
const DELTA_US: u64 = 250;
/// Packet statuses in one feedback, at most: a feedback of 1024 statuses is at most
/// about 2.3 KB, within one datagram; more wait for the next.
pub const MAX_STATUSES: usize = 1024;

/// One transport-wide feedback as read off the wire.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TransportFeedback {
    /// The number of the first packet described.
    pub base_seq: u16,
    /// Reference time, in 64 ms units of the receiver's clock (24 bits).
    pub reference: u32,
    /// For each packet from `base_seq` on: its arrival delta in 250 µs units (from the
    /// reference for the first received, from the previous received after), or `None`
    /// when it was not received. At most [`MAX_STATUSES`].
    pub statuses: Vec<Option<i16>>,
}

/// The receiver's half: arrival times of numbered packets not yet reported.
#[derive(Debug)]
pub(crate) struct ArrivalLog {
    /// The receiver clock's zero.
    epoch: Instant,
    numbers: Extender,
    /// The first number not yet reported; packets before it that come late are not
    /// reported (the feedback that covered them said "not received").
    next_base: Option<u64>,
    /// Extended number → arrival, µs since `epoch`.
    arrivals: BTreeMap<u64, u64>,
    feedback_count: u8,
    last_feedback: Option<Instant>,
}

impl ArrivalLog {
    pub fn new(now: Instant) -> Self {
        Self {
            epoch: now,
            numbers: Extender::new(16),
            next_base: None,
            arrivals: BTreeMap::new(),
            feedback_count: 0,
            last_feedback: None,
        }
    }

    /// Packet number `seq` arrived.
    pub fn on_packet(&mut self, now: Instant, seq: u16) {
        let ext = self.numbers.push(u64::from(seq));
        if self.next_base.is_some_and(|base| ext < base) {
            return;
        }
        if self.arrivals.len() >= 4 * MAX_STATUSES {
            // Feedback cannot be sent (no address yet) or the stream jumped: the
            // oldest go unreported rather than the log growing.
            self.arrivals.pop_first();
        }
        let at = now.saturating_duration_since(self.epoch).as_micros() as u64;
        self.arrivals.insert(ext, at);
    }

    /// A feedback is due: packets are waiting and `interval` has passed since the last.
    pub fn due(&self, now: Instant, interval: Duration) -> bool {
        !self.arrivals.is_empty() && self.next_due(interval).is_some_and(|t| now >= t)
    }

    /// When the next feedback is due, if packets wait for one.
    pub fn next_due(&self, interval: Duration) -> Option<Instant> {
        if self.arrivals.is_empty() {
            return None;
        }
        Some(self.last_feedback.map_or(self.epoch, |t| t + interval))
    }

    /// The next feedback, covering the waiting packets from the first unreported number
    /// (at most [`MAX_STATUSES`]); `None` when nothing waits.
    pub fn take_feedback(&mut self, now: Instant) -> Option<TransportFeedback> {
        let (&first, &first_at) = self.arrivals.first_key_value()?;
        // A base far behind the first arrival (a jump in the numbers) restarts there.
        let base = self
            .next_base
            .filter(|&b| first.saturating_sub(b) < MAX_STATUSES as u64)
            .unwrap_or(first);
        let last = (*self.arrivals.last_key_value()?.0).min(base + MAX_STATUSES as u64 - 1);
        let reference = first_at / REFERENCE_US;
        let mut previous = reference * REFERENCE_US / DELTA_US;
        let mut statuses = Vec::with_capacity((last - base + 1) as usize);
        for ext in base..=last {
            let status = self.arrivals.remove(&ext).map(|at| {
                let units = at / DELTA_US;
                let delta = (units as i64 - previous as i64)
                    .clamp(i64::from(i16::MIN), i64::from(i16::MAX));
                // The sender adds the deltas up: keep the sum, not the clock, so a
                // clamped delta does not shift every later arrival.
                previous = (previous as i64 + delta) as u64;
                delta as i16
            });
            statuses.push(status);
        }
        self.next_base = Some(last + 1);
        self.last_feedback = Some(now);
        self.feedback_count = self.feedback_count.wrapping_add(1);
        Some(TransportFeedback {
            base_seq: base as u16,
            reference: (reference & ((1 << REFERENCE_BITS) - 1)) as u32,
            statuses,
        })
    }

    /// The count the next feedback carries (TWCC's feedback packet count).
    pub fn feedback_count(&self) -> u8 {
        self.feedback_count
    }

    /// Panics if an internal bound is broken.
    pub fn check_invariants(&self) {
        assert!(self.arrivals.len() <= 4 * MAX_STATUSES);
    }
}

/// Inside a long burst (a keyframe on a slow link) an arrival is sampled at least this
/// often, as picam's own receiver samples its fragments.
const SAMPLE_EVERY_US: i64 = 5_000;
/// Sent packets remembered: 8192 is 2.3 s at 50 Mbit/s of 1400-byte packets, longer than
/// any feedback takes to come.
const SENT_KEPT: usize = 8192;

#[derive(Clone, Copy, Debug)]
struct Sent {
    /// Sender clock, µs.
    at_us: u64,
    bytes: usize,
    /// The last packet of a frame: always sampled.
    marker: bool,
}

/// The sender's half: what each numbered packet was, and the feedback read so far.
#[derive(Debug, Default)]
pub(crate) struct SentLog {
    /// The extended number of `sent[0]`.
    first: u64,
    sent: VecDeque<Sent>,
    /// The highest number already credited: a packet reported twice counts once.
    credited: Option<u64>,
    /// The last reference time read, extended past its 24-bit wrap.
    reference: Option<u64>,
    /// Arrival of the last sample given, µs on the receiver's clock.
    last_sample_us: Option<i64>,
    /// Bytes received since the last sample.
    unsampled_bytes: usize,
    feedbacks: u64,
}

impl SentLog {
    pub fn new() -> Self {
        Self {
            first: seq64::BASE,
            ..Self::default()
        }
    }

    /// The number for the next packet, which left at `at_us` with `bytes`.
    pub fn on_sent(&mut self, at_us: u64, bytes: usize, marker: bool) -> u16 {
        if self.sent.len() == SENT_KEPT {
            self.sent.pop_front();
            self.first += 1;
        }
        let ext = self.first + self.sent.len() as u64;
        self.sent.push_back(Sent {
            at_us,
            bytes,
            marker,
        });
        ext as u16
    }

    /// Feedbacks read.
    pub fn feedbacks(&self) -> u64 {
        self.feedbacks
    }

    /// Reads a feedback: a [`Signal::Delivered`] for every frame's last packet received,
    /// at least one every 5 ms of arrivals and the feedback's last, each with the bytes
    /// received since the one before, handed to `signal`. Numbers not sent (or long
    /// forgotten) are skipped.
    pub fn on_feedback(&mut self, feedback: &TransportFeedback, mut signal: impl FnMut(Signal)) {
        if self.sent.is_empty() {
            return;
        }
        let newest = self.first + self.sent.len() as u64 - 1;
        self.feedbacks += 1;
        let base = seq64::extend(newest, u64::from(feedback.base_seq), 16);
        let reference = self.extend_reference(feedback.reference);
        let mut units = (reference * REFERENCE_US / DELTA_US) as i64;
        let received = feedback.statuses.iter().filter(|s| s.is_some()).count();
        let mut seen = 0;
        for (i, status) in feedback.statuses.iter().take(MAX_STATUSES).enumerate() {
            let Some(delta) = *status else { continue };
            units += i64::from(delta);
            seen += 1;
            let ext = base + i as u64;
            let Some(sent) = ext
                .checked_sub(self.first)
                .and_then(|i| self.sent.get(i as usize))
                .copied()
            else {
                continue;
            };
            if self.credited.is_some_and(|c| ext <= c) {
                continue;
            }
            self.credited = Some(ext);
            self.unsampled_bytes += sent.bytes;
            let arrival_us = units * DELTA_US as i64;
            let due = self
                .last_sample_us
                .is_none_or(|last| arrival_us >= last + SAMPLE_EVERY_US);
            if sent.marker || due || seen == received {
                signal(Signal::Delivered {
                    sent_us: sent.at_us,
                    arrival_us: arrival_us.max(0) as u64,
                    bytes: std::mem::take(&mut self.unsampled_bytes),
                });
                self.last_sample_us = Some(arrival_us);
            }
        }
    }

    /// The reference time extended past its 24-bit wrap (every 12.4 days).
    fn extend_reference(&mut self, reference: u32) -> u64 {
        let r = self.reference.map_or(u64::from(reference), |last| {
            seq64::extend(last, u64::from(reference), REFERENCE_BITS)
        });
        self.reference = Some(r);
        r
    }

    /// Panics if an internal bound is broken.
    pub fn check_invariants(&self) {
        assert!(self.sent.len() <= SENT_KEPT);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rtp_with(ext: Option<(u16, &[u8])>) -> Vec<u8> {
        let mut b = rtp_types::RtpPacketBuilder::<&[u8], &[u8]>::new()
            .payload_type(96)
            .sequence_number(7)
            .ssrc(1)
            .payload(&[1, 2, 3][..]);
        if let Some((profile, data)) = ext {
            b = b.extension(profile, data);
        }
        b.write_vec().unwrap()
    }

    #[test]
    fn the_number_is_written_read_and_rewritten_in_place() {
        let data = extension_data(0xabcd);
        let mut bytes = rtp_with(Some((ONE_BYTE_PROFILE, &data)));
        let p = rtp_types::RtpPacket::parse(&bytes).unwrap();
        assert_eq!(read_seq(&p), Some(0xabcd));
        assert_eq!(p.payload(), &[1, 2, 3]);
        assert!(rewrite_seq(&mut bytes, 0x1234));
        let p = rtp_types::RtpPacket::parse(&bytes).unwrap();
        assert_eq!(read_seq(&p), Some(0x1234));
        // A packet without the extension is left alone.
        let mut plain = rtp_with(None);
        let before = plain.clone();
        assert!(!rewrite_seq(&mut plain, 5));
        assert_eq!(plain, before);
        assert_eq!(
            read_seq(&rtp_types::RtpPacket::parse(&plain).unwrap()),
            None
        );
    }

    #[test]
    fn other_extensions_are_skipped_and_malformed_ones_read_as_none() {
        // Padding, another id (3 bytes), then ours.
        let data = [0, 0x22, 9, 9, 9, (EXTENSION_ID << 4) | 1, 0x01, 0x02];
        let mut padded = data.to_vec();
        padded.resize(12, 0);
        let p = rtp_with(Some((ONE_BYTE_PROFILE, &padded)));
        assert_eq!(
            read_seq(&rtp_types::RtpPacket::parse(&p).unwrap()),
            Some(0x0102)
        );
        // Our id with the wrong length, a stop id, a two-byte profile, a truncated element.
        for (profile, data) in [
            (ONE_BYTE_PROFILE, [(EXTENSION_ID << 4) | 2, 1, 2, 3]),
            (ONE_BYTE_PROFILE, [0xf0, (EXTENSION_ID << 4) | 1, 1, 2]),
            (0x1000, [EXTENSION_ID, 2, 1, 2]),
            (ONE_BYTE_PROFILE, [0, 0, 0, (EXTENSION_ID << 4) | 1]),
        ] {
            let p = rtp_with(Some((profile, &data)));
            assert_eq!(read_seq(&rtp_types::RtpPacket::parse(&p).unwrap()), None);
        }
    }

    /// Arrival times go through the feedback to the sender within the 250 µs unit, the
    /// lost packets give no sample, and the bytes between samples are all credited.
    #[test]
    fn arrivals_reach_the_sender_as_delivered_samples() {
        let t0 = Instant::now();
        let mut sent = SentLog::new();
        let mut rx = ArrivalLog::new(t0);
        // 20 packets of 1000 bytes, 1 ms apart; the 5th of each 10 is lost, every 10th
        // ends a frame; the path takes 7.3 ms.
        let mut expected_bytes = 0;
        for i in 0..20u64 {
            let seq = sent.on_sent(1_000_000 + i * 1000, 1000, i % 10 == 9);
            if i % 10 != 4 {
                rx.on_packet(t0 + Duration::from_micros(7_300 + i * 1000), seq);
                expected_bytes += 1000;
            }
        }
        let fb = rx.take_feedback(t0 + Duration::from_millis(30)).unwrap();
        assert_eq!(fb.statuses.len(), 20);
        assert_eq!(fb.statuses.iter().filter(|s| s.is_none()).count(), 2);
        assert!(rx.take_feedback(t0 + Duration::from_millis(31)).is_none());
        let mut samples = Vec::new();
        sent.on_feedback(&fb, |s| samples.push(s));
        let mut bytes = 0;
        for s in &samples {
            let Signal::Delivered {
                sent_us,
                arrival_us,
                bytes: b,
            } = *s
            else {
                panic!("{s:?}")
            };
            bytes += b;
            let i = (sent_us - 1_000_000) / 1000;
            let want = 7_300 + i * 1000;
            assert!(
                arrival_us.abs_diff(want) < DELTA_US,
                "{arrival_us} vs {want}"
            );
        }
        assert_eq!(bytes, expected_bytes);
        // Frame ends (9, 19) and at least one every 5 ms.
        assert!((4..=6).contains(&samples.len()), "{samples:?}");
        // The same feedback again credits nothing.
        let mut again = Vec::new();
        sent.on_feedback(&fb, |s| again.push(s));
        assert!(again.is_empty());
    }

    #[test]
    fn numbers_and_reference_times_wrap() {
        let t0 = Instant::now();
        let mut sent = SentLog::new();
        let mut rx = ArrivalLog::new(t0);
        let mut got = 0;
        // 70 000 packets (the 16-bit number wraps), fed back every 1000.
        for i in 0..70_000u64 {
            let seq = sent.on_sent(i * 100, 100, false);
            rx.on_packet(t0 + Duration::from_micros(i * 100 + 500), seq);
            if i % 1000 == 999 {
                let fb = rx
                    .take_feedback(t0 + Duration::from_micros(i * 100 + 600))
                    .unwrap();
                assert_eq!(fb.statuses.len(), 1000);
                sent.on_feedback(&fb, |s| {
                    if let Signal::Delivered { bytes, .. } = s {
                        got += bytes;
                    }
                });
            }
        }
        assert_eq!(got, 70_000 * 100);
        rx.check_invariants();
        sent.check_invariants();
        // The reference time's wrap: 2^24 x 64 ms, read across it.
        let mut log = SentLog::new();
        assert_eq!(log.extend_reference((1 << 24) - 1), (1 << 24) - 1);
        assert_eq!(log.extend_reference(2), (1 << 24) + 2);
    }

    #[test]
    fn a_late_packet_after_its_feedback_and_a_jump_stay_bounded() {
        let t0 = Instant::now();
        let mut rx = ArrivalLog::new(t0);
        rx.on_packet(t0, 10);
        rx.on_packet(t0, 12);
        let fb = rx.take_feedback(t0).unwrap();
        assert_eq!(fb.base_seq, 10);
        assert_eq!(fb.statuses, vec![Some(0), None, Some(0)]);
        // 11 comes after the feedback that said it was lost: not reported again.
        rx.on_packet(t0, 11);
        assert!(rx.take_feedback(t0).is_none());
        // A jump far ahead restarts the base there instead of listing the gap.
        rx.on_packet(t0 + Duration::from_millis(1), 30_000);
        let fb = rx.take_feedback(t0).unwrap();
        assert_eq!((fb.base_seq, fb.statuses.len()), (30_000, 1));
        // A flood without feedback keeps at most the bound.
        for i in 0..10 * MAX_STATUSES as u16 {
            rx.on_packet(t0, 30_001 + i);
        }
        rx.check_invariants();
        let fb = rx.take_feedback(t0).unwrap();
        assert_eq!(fb.statuses.len(), MAX_STATUSES);
    }
}
