//! RTCP (RFC 3550, 4585): the few packets picam sends and reads, over `rtcp-types`.

use rtcp_types::{
    Compound, CompoundBuilder, Fir, Nack, Packet, PayloadFeedback, Pli, PliBuilder, ReceiverReport,
    RtcpPacketWriter, Sdes, SdesChunk, SdesItem, SenderReport, Twcc, TwccPacketStatus,
};

use super::twcc::{TransportFeedback, MAX_STATUSES};

/// True when a packet on a shared port is RTCP rather than RTP (RFC 5761 §4: the second
/// byte is 192..=223 for RTCP; an RTP payload type of 96 with or without the marker never
/// falls there).
pub fn is_rtcp(data: &[u8]) -> bool {
    data.len() >= 2 && (192..=223).contains(&data[1])
}

/// Seconds between the NTP epoch (1900) and the Unix epoch (1970).
const NTP_UNIX_OFFSET: u64 = 2_208_988_800;

/// A 64-bit NTP timestamp (RFC 3550 §4) for a Unix time in µs.
pub fn ntp_from_unix_us(us: u64) -> u64 {
    let secs = us / 1_000_000 + NTP_UNIX_OFFSET;
    let frac = ((us % 1_000_000) << 32) / 1_000_000;
    (secs << 32) | frac
}

/// What a received RTCP compound packet asks for or tells.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Feedback {
    /// A picture loss indication or full intra request: send a keyframe.
    pub keyframe: bool,
    /// Sequence numbers negatively acknowledged (generic NACK).
    pub nacks: Vec<u16>,
    /// A sender report: its SSRC and NTP timestamp.
    pub sender_report: Option<(u32, u64)>,
    /// The first report block of a receiver or sender report.
    pub reception: Option<ReportInfo>,
    /// Transport-wide congestion control feedback (the first in the packet), with the
    /// SSRC it reports on.
    pub transport_cc: Option<(u32, TransportFeedback)>,
}

/// The fields of a report block (RFC 3550 §6.4.1) the sender acts on.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ReportInfo {
    /// The SSRC the block reports on.
    pub media_ssrc: u32,
    /// Packets lost since the previous report, in 256ths.
    pub fraction_lost: u8,
    /// Interarrival jitter, RTP clock units.
    pub jitter: u32,
    /// The middle 32 bits of the NTP timestamp of the last sender report received (0:
    /// none yet).
    pub lsr: u32,
    /// Delay since that sender report was received, in 1/65536 s.
    pub dlsr: u32,
}

impl ReportInfo {
    fn from_block(b: &rtcp_types::ReportBlock<'_>) -> Self {
        Self {
            media_ssrc: b.ssrc(),
            fraction_lost: b.fraction_lost(),
            jitter: b.interarrival_jitter(),
            lsr: b.last_sender_report_timestamp(),
            dlsr: b.delay_since_last_sender_report_timestamp(),
        }
    }
}

/// The middle 32 bits of a 64-bit NTP timestamp: how report blocks name a sender report.
pub fn ntp_middle(ntp: u64) -> u32 {
    (ntp >> 16) as u32
}

/// Most NACKed sequence numbers taken from one compound packet: a NACK flood cannot make
/// the sender queue more than this per packet.
pub const MAX_NACKS_PER_PACKET: usize = 256;

/// Reads a compound RTCP packet. `None` when it does not parse; unknown packet types in
/// it are skipped.
pub fn parse(data: &[u8]) -> Option<Feedback> {
    let compound = Compound::parse(data).ok()?;
    let mut fb = Feedback::default();
    for packet in compound {
        let Ok(packet) = packet else { return None };
        match &packet {
            Packet::PayloadFeedback(pf)
                if pf.parse_fci::<Pli>().is_ok() || pf.parse_fci::<Fir>().is_ok() =>
            {
                fb.keyframe = true;
            }
            Packet::TransportFeedback(tf) => {
                if let Ok(nack) = tf.parse_fci::<Nack>() {
                    let room = MAX_NACKS_PER_PACKET.saturating_sub(fb.nacks.len());
                    fb.nacks.extend(nack.entries().take(room));
                } else if let Ok(twcc) = tf.parse_fci::<Twcc>() {
                    if fb.transport_cc.is_none() {
                        fb.transport_cc = Some((tf.media_ssrc(), read_transport_cc(&twcc)));
                    }
                }
            }
            Packet::Sr(sr) => {
                fb.sender_report = Some((sr.ssrc(), sr.ntp_timestamp()));
                if let Some(b) = sr.report_blocks().next() {
                    fb.reception = Some(ReportInfo::from_block(&b));
                }
            }
            Packet::Rr(rr) => {
                if let Some(b) = rr.report_blocks().next() {
                    fb.reception = Some(ReportInfo::from_block(&b));
                }
            }
            _ => {}
        }
    }
    Some(fb)
}

/// A TWCC feedback's packets, at most [`MAX_STATUSES`]; reading stops at the first
/// malformed status (what came before it is still good).
fn read_transport_cc(twcc: &Twcc<'_>) -> TransportFeedback {
    let statuses = twcc
        .packets()
        .take(MAX_STATUSES)
        .map_while(Result::ok)
        .map(|(_, status)| match status {
            TwccPacketStatus::Received { delta } => Some(delta),
            TwccPacketStatus::NotReceived => None,
        })
        .collect();
    TransportFeedback {
        base_seq: twcc.base_sequence_number(),
        reference: twcc.reference_time(),
        statuses,
    }
}

/// A transport-wide congestion control feedback (RTPFB FMT 15) on `media_ssrc`, alone:
/// it goes every 15 ms, and a receiver report each time would only repeat itself.
pub fn transport_cc(
    buf: &mut Vec<u8>,
    ssrc: u32,
    media_ssrc: u32,
    feedback: &TransportFeedback,
    count: u8,
) {
    let statuses: Vec<TwccPacketStatus> = feedback
        .statuses
        .iter()
        .map(|s| match *s {
            Some(delta) => TwccPacketStatus::Received { delta },
            None => TwccPacketStatus::NotReceived,
        })
        .collect();
    let fci = Twcc::builder(
        feedback.base_seq,
        feedback.reference,
        count,
        &statuses,
        None,
    );
    let packet = rtcp_types::TransportFeedback::builder_owned(fci)
        .sender_ssrc(ssrc)
        .media_ssrc(media_ssrc);
    write(Compound::builder().add_packet(packet), buf);
}

/// Writes a compound packet into `buf` (cleared first).
fn write(compound: CompoundBuilder<'_>, buf: &mut Vec<u8>) {
    buf.clear();
    // Sizes come from packets built here, never from the network: a failure is a bug in
    // this module, and it leaves `buf` empty rather than panicking.
    if let Ok(size) = compound.calculate_size() {
        buf.resize(size, 0);
        let n = compound.write_into_unchecked(buf);
        buf.truncate(n);
    }
}

/// The canonical name sent in SDES (RFC 3550 requires one in every compound packet).
const CNAME: &str = "picam";

/// A sender report with an SDES CNAME.
pub fn sender_report(
    buf: &mut Vec<u8>,
    ssrc: u32,
    ntp: u64,
    rtp_timestamp: u32,
    packets: u32,
    octets: u32,
) {
    let sr = SenderReport::builder(ssrc)
        .ntp_timestamp(ntp)
        .rtp_timestamp(rtp_timestamp)
        .packet_count(packets)
        .octet_count(octets);
    let sdes = Sdes::builder()
        .add_chunk(SdesChunk::builder(ssrc).add_item(SdesItem::builder(SdesItem::CNAME, CNAME)));
    write(Compound::builder().add_packet(sr).add_packet(sdes), buf);
}

/// An empty receiver report followed by a picture loss indication for `media_ssrc`.
pub fn picture_loss(buf: &mut Vec<u8>, ssrc: u32, media_ssrc: u32) {
    let rr = ReceiverReport::builder(ssrc);
    let pli = PayloadFeedback::builder_owned(PliBuilder {})
        .sender_ssrc(ssrc)
        .media_ssrc(media_ssrc);
    write(Compound::builder().add_packet(rr).add_packet(pli), buf);
}

/// A generic NACK (with an empty receiver report first) for `seqs`.
#[cfg_attr(not(test), allow(dead_code))]
pub fn nack(buf: &mut Vec<u8>, ssrc: u32, media_ssrc: u32, seqs: &[u16]) {
    receiver_report(buf, ssrc, None, Some((media_ssrc, seqs)));
}

/// A receiver report (with `block` when a stream is being received) and SDES, then a
/// generic NACK of `nacks.1` for SSRC `nacks.0` when given (RFC 4585 §6.2.1).
pub fn receiver_report(
    buf: &mut Vec<u8>,
    ssrc: u32,
    block: Option<ReportBlockFields>,
    nacks: Option<(u32, &[u16])>,
) {
    let mut rr = ReceiverReport::builder(ssrc);
    if let Some(b) = block {
        rr = rr.add_report_block(
            rtcp_types::ReportBlock::builder(b.media_ssrc)
                .fraction_lost(b.fraction_lost)
                .cumulative_lost(b.cumulative_lost)
                .extended_sequence_number(b.extended_seq)
                .interarrival_jitter(b.jitter)
                .last_sender_report_timestamp(b.lsr)
                .delay_since_last_sender_report_timestamp(b.dlsr),
        );
    }
    let sdes = Sdes::builder()
        .add_chunk(SdesChunk::builder(ssrc).add_item(SdesItem::builder(SdesItem::CNAME, CNAME)));
    let compound = Compound::builder().add_packet(rr).add_packet(sdes);
    let compound = match nacks {
        Some((media_ssrc, seqs)) if !seqs.is_empty() => {
            let mut b = Nack::builder();
            for &s in seqs {
                b = b.add_rtp_sequence(s);
            }
            compound.add_packet(
                rtcp_types::TransportFeedback::builder_owned(b)
                    .sender_ssrc(ssrc)
                    .media_ssrc(media_ssrc),
            )
        }
        _ => compound,
    };
    write(compound, buf);
}

/// What a receiver puts in its report block (RFC 3550 §6.4.1).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ReportBlockFields {
    /// The stream reported on.
    pub media_ssrc: u32,
    /// Lost since the last report, in 256ths.
    pub fraction_lost: u8,
    /// Lost since the start (24 bits; RFC 3550 clamps it, so do we).
    pub cumulative_lost: u32,
    /// Extended highest sequence number received.
    pub extended_seq: u32,
    /// Interarrival jitter, RTP clock units.
    pub jitter: u32,
    /// Middle 32 bits of the last sender report's NTP time (0: none).
    pub lsr: u32,
    /// Delay since that report, 1/65536 s.
    pub dlsr: u32,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_we_write_we_read() {
        let mut buf = Vec::new();
        picture_loss(&mut buf, 1, 2);
        assert!(is_rtcp(&buf));
        assert!(parse(&buf).unwrap().keyframe);
        sender_report(
            &mut buf,
            7,
            ntp_from_unix_us(1_700_000_000_500_000),
            9,
            10,
            11,
        );
        assert_eq!(
            parse(&buf).unwrap().sender_report,
            Some((7, ntp_from_unix_us(1_700_000_000_500_000)))
        );
        let block = ReportBlockFields {
            media_ssrc: 2,
            fraction_lost: 13,
            cumulative_lost: 40,
            extended_seq: 70_000,
            jitter: 900,
            lsr: 0x1234_5678,
            dlsr: 655,
        };
        receiver_report(&mut buf, 1, Some(block), Some((2, &[3, 4])));
        let fb = parse(&buf).unwrap();
        assert_eq!(fb.nacks, vec![3, 4]);
        assert_eq!(
            fb.reception,
            Some(ReportInfo {
                media_ssrc: 2,
                fraction_lost: 13,
                jitter: 900,
                lsr: 0x1234_5678,
                dlsr: 655
            })
        );
        nack(&mut buf, 1, 2, &[5, 6, 9, 40]);
        assert_eq!(parse(&buf).unwrap().nacks, vec![5, 6, 9, 40]);
    }

    #[test]
    fn rtp_with_payload_type_96_is_not_rtcp() {
        assert!(!is_rtcp(&[0x80, 96]));
        assert!(!is_rtcp(&[0x80, 96 | 0x80]));
        assert!(is_rtcp(&[0x80, 200]));
    }

    #[test]
    fn garbage_never_panics() {
        let mut buf = Vec::new();
        nack(&mut buf, 1, 2, &[1, 2, 3]);
        for len in 0..buf.len() {
            let _ = parse(&buf[..len]);
        }
        for b in 0..=255u8 {
            let mut v = buf.clone();
            v[13] = b;
            v[3] = b;
            let _ = parse(&v);
        }
    }
}
