//! The configuration: a TOML file, overridden key by key by flags, validated before
//! anything starts. Each refusal names the key, the value, where it came from and the
//! allowed range.

use std::net::{IpAddr, SocketAddr, ToSocketAddrs};
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use capture::EncoderSettings;
use serde::Deserialize;
use transport::Protocol;

use crate::cli::{LinkArgs, RecordArgs, SendArgs};
use crate::security::Security;
use crate::source_spec::{self, SourceSpec};

/// The file's keys, all optional; unknown keys are refused (typos would otherwise pass
/// silently).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    remote: Option<String>,
    bind: Option<String>,
    port: Option<i64>,
    protocol: Option<String>,
    width: Option<i64>,
    height: Option<i64>,
    fps: Option<i64>,
    bitrate: Option<i64>,
    intra: Option<i64>,
    payload_size: Option<i64>,
    source: Option<String>,
    congestion_control: Option<bool>,
    repair: Option<bool>,
    key: Option<String>,
    insecure: Option<bool>,
    min_bitrate: Option<i64>,
    max_queue_delay_ms: Option<i64>,
    wire: Option<String>,
    rtcp_mux: Option<bool>,
    payload_type: Option<i64>,
    clock_rate: Option<i64>,
    web: Option<WebValue>,
    web_max_viewers: Option<i64>,
    record: Option<String>,
    record_segment: Option<i64>,
    record_keep: Option<i64>,
    record_max_bytes: Option<BytesValue>,
}

/// `record_max_bytes` in the file: a number of bytes, or a string with a suffix
/// (`"20G"`).
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
enum BytesValue {
    Number(i64),
    Text(String),
}

impl BytesValue {
    fn into_text(self) -> String {
        match self {
            BytesValue::Number(n) => n.to_string(),
            BytesValue::Text(text) => text,
        }
    }
}

/// The smallest ring `record_max_bytes` allows: a few seconds of a 4 Mbit/s stream; a
/// smaller one would delete each segment as soon as the next one starts.
pub const MIN_RECORD_MAX_BYTES: u64 = 10_000_000;

/// A byte count with an optional decimal suffix: `20G`, `500M`, `1500000`, `2T`.
pub fn parse_bytes(value: &str) -> Option<u64> {
    let value = value.trim();
    let (digits, scale) = match value.char_indices().last()? {
        (i, 'k' | 'K') => (&value[..i], 1_000),
        (i, 'm' | 'M') => (&value[..i], 1_000_000),
        (i, 'g' | 'G') => (&value[..i], 1_000_000_000),
        (i, 't' | 'T') => (&value[..i], 1_000_000_000_000),
        _ => (value, 1),
    };
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse::<u64>().ok()?.checked_mul(scale)
}

/// `web` in the file: a bare port (`web = 8080`) or `"[ADDR:]PORT"`.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
enum WebValue {
    Port(i64),
    Text(String),
}

impl WebValue {
    fn into_text(self) -> String {
        match self {
            WebValue::Port(port) => port.to_string(),
            WebValue::Text(text) => text,
        }
    }
}

/// Validated settings for either side.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Receiver host (sender side).
    pub remote: String,
    /// Local bind address.
    pub bind: IpAddr,
    /// Receiver port.
    pub port: u16,
    /// UDP or TCP.
    pub protocol: Protocol,
    /// Encoder settings.
    pub encoder: EncoderSettings,
    /// Largest UDP payload, header included.
    pub payload_size: usize,
    /// Where the sender's frames come from.
    pub source: SourceSpec,
    /// The jam guard (congestion control, deadline drops, pacing) is on.
    pub congestion_control: bool,
    /// Loss repair (parity and retransmission) is on; it only ever runs over UDP.
    pub repair: bool,
    /// Encryption: a key file, the paired key, or none.
    pub security: Security,
    /// Bitrate floor for congestion control, bits/s.
    pub min_bitrate: u32,
    /// A frame unsent this long at the sender is dropped.
    pub max_queue_delay: std::time::Duration,
    /// The wire format.
    pub wire: Wire,
    /// `rtp`: RTCP on the RTP port.
    pub rtcp_mux: bool,
    /// `rtp`: the payload type.
    pub payload_type: u8,
    /// `rtp`: the RTP clock rate, Hz.
    pub clock_rate: u32,
    /// Whether `remote` was configured (flag or file) rather than left at its default.
    pub remote_given: bool,
    /// The browser viewer (`--web`), sender only.
    pub web: Option<WebSettings>,
    /// `--web-token new`: replace the kept web access token.
    pub web_token_new: bool,
    /// Recording (`--record`), either side.
    pub record: Option<record::RecordConfig>,
}

/// The browser viewer's settings (`picam send --web`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WebSettings {
    /// Where the viewer page and WHEP listen (TCP), and WebRTC media (UDP, same port).
    pub bind: SocketAddr,
    /// How many browsers may watch at once.
    pub max_viewers: usize,
}

/// Most browsers watching one sender at once: each costs a WebRTC session and its
/// share of the uplink (one encoding, sent once per viewer).
pub const MAX_WEB_VIEWERS: i64 = 32;

/// `--web [ADDR:]PORT`: a bare port listens on every IPv4 address.
pub fn parse_web(value: &str) -> Option<SocketAddr> {
    let value = value.trim();
    let addr = if !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit()) {
        SocketAddr::new(
            IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED),
            value.parse().ok()?,
        )
    } else {
        value.parse().ok()?
    };
    (addr.port() != 0).then_some(addr)
}

/// Which wire format carries the stream (`--wire`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Wire {
    /// picam's own (repair, reports, clock pings, the jam guard).
    Picam,
    /// RTP/RTCP with H.264 per RFC 6184 (RFC 4571 framing over TCP).
    Rtp,
    /// Raw H.264 Annex B.
    H264,
}

/// `picam`, `rtp` or `h264`, in any case.
pub fn parse_wire(value: &str) -> Option<Wire> {
    match value.to_ascii_lowercase().as_str() {
        "picam" => Some(Wire::Picam),
        "rtp" => Some(Wire::Rtp),
        "h264" => Some(Wire::H264),
        _ => None,
    }
}

/// Where a value came from, for error messages.
#[derive(Clone, Copy)]
enum Origin<'a> {
    Flag,
    File(&'a Path),
    Default,
}

impl std::fmt::Display for Origin<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Origin::Flag => write!(f, "from the command line"),
            Origin::File(p) => write!(f, "in {}", p.display()),
            Origin::Default => write!(f, "by default"),
        }
    }
}

fn pick<'a, T>(
    flag: Option<T>,
    file: Option<T>,
    path: Option<&'a Path>,
    default: T,
) -> (T, Origin<'a>) {
    match (flag, file, path) {
        (Some(v), _, _) => (v, Origin::Flag),
        (None, Some(v), Some(p)) => (v, Origin::File(p)),
        _ => (default, Origin::Default),
    }
}

fn ranged(
    key: &str,
    (value, origin): (i64, Origin),
    min: i64,
    max: i64,
    unit: &str,
) -> Result<i64> {
    if value < min || value > max {
        bail!("invalid `{key}` = {value} {origin}: allowed {min}..={max}{unit}");
    }
    Ok(value)
}

fn even(key: &str, value: i64) -> Result<()> {
    if value % 2 != 0 {
        bail!("invalid `{key}` = {value}: must be even (4:2:0 video halves it for colour)");
    }
    Ok(())
}

/// `udp` or `tcp`, in any case.
pub fn parse_protocol(value: &str) -> Option<Protocol> {
    match value.to_ascii_lowercase().as_str() {
        "udp" => Some(Protocol::Udp),
        "tcp" => Some(Protocol::Tcp),
        _ => None,
    }
}

/// Reads the file named by `--config`, if any.
pub fn read_file(path: Option<&Path>) -> Result<FileConfig> {
    let Some(path) = path else {
        return Ok(FileConfig::default());
    };
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read config file {}", path.display()))?;
    toml::from_str(&text).with_context(|| format!("invalid config file {}", path.display()))
}

/// `record`, `record_segment`, `record_keep`, `record_max_bytes`: the recording, or
/// `None` when `record` is not set (the other three are then refused: they would do
/// nothing). A relative path is relative to the working directory, in the file too
/// (unlike `key`, which ships beside the file): recordings are data, and a service's
/// configuration directory is read-only (`ProtectSystem=strict`) while its working
/// directory, `/var/lib/picam`, is its own.
fn record_config(
    flags: &RecordArgs,
    file: &FileConfig,
    path: Option<&Path>,
) -> Result<Option<record::RecordConfig>> {
    let (target, origin) = match (&flags.record, &file.record) {
        (Some(p), _) => (Some(p.clone()), Origin::Flag),
        (None, Some(p)) => (
            Some(PathBuf::from(p)),
            path.map_or(Origin::Default, Origin::File),
        ),
        (None, None) => (None, Origin::Default),
    };
    let segment = flags
        .record_segment
        .map(|v| (v, Origin::Flag))
        .or_else(|| file.record_segment.zip(path.map(Origin::File)));
    let keep = flags
        .record_keep
        .map(|v| (v, Origin::Flag))
        .or_else(|| file.record_keep.zip(path.map(Origin::File)));
    let max_bytes = flags
        .record_max_bytes
        .clone()
        .map(|v| (v, Origin::Flag))
        .or_else(|| {
            file.record_max_bytes
                .clone()
                .map(BytesValue::into_text)
                .zip(path.map(Origin::File))
        });
    let Some(target) = target else {
        for (key, given) in [
            ("record_segment", segment.is_some()),
            ("record_keep", keep.is_some()),
            ("record_max_bytes", max_bytes.is_some()),
        ] {
            if given {
                bail!("`{key}` is set but `record` is not: give `record` (the file to record to)");
            }
        }
        return Ok(None);
    };
    if let Err(e) = record::Container::for_path(&target) {
        bail!(
            "invalid `record` = {:?} {origin}: {e}",
            target.display().to_string()
        );
    }
    let segment = segment
        .map(|v| ranged("record_segment", v, 1, 86_400, " seconds"))
        .transpose()?
        .map(|secs| std::time::Duration::from_secs(secs as u64));
    let keep = keep
        .map(|v| ranged("record_keep", v, 1, 1_000_000, " files"))
        .transpose()?
        .map(|n| n as u32);
    let max_bytes = match max_bytes {
        None => None,
        Some((text, origin)) => match parse_bytes(&text) {
            Some(n) if n >= MIN_RECORD_MAX_BYTES => Some(n),
            _ => bail!(
                "invalid `record_max_bytes` = {text:?} {origin}: allowed {MIN_RECORD_MAX_BYTES} bytes or more, as a number or with a suffix K, M, G or T (powers of 1000), e.g. 20G"
            ),
        },
    };
    if segment.is_none() {
        for (key, given) in [
            ("record_keep", keep.is_some()),
            ("record_max_bytes", max_bytes.is_some()),
        ] {
            if given {
                bail!(
                    "`{key}` deletes old segments, so it needs `record_segment` (seconds per file)"
                );
            }
        }
    }
    Ok(Some(record::RecordConfig {
        path: target,
        segment,
        keep,
        max_bytes,
    }))
}

impl Settings {
    /// Settings for `picam send`.
    pub fn for_send(args: &SendArgs) -> Result<Self> {
        let file = read_file(args.link.config.as_deref())?;
        Self::resolve(&args.link, Some(args), file)
    }

    /// Settings for `picam recv` (the picture keys do not apply there).
    pub fn for_recv(link: &LinkArgs) -> Result<Self> {
        let file = read_file(link.config.as_deref())?;
        Self::resolve(link, None, file)
    }

    fn resolve(link: &LinkArgs, send: Option<&SendArgs>, file: FileConfig) -> Result<Self> {
        let path = link.config.as_deref();
        let record = record_config(&link.record, &file, path)?;
        let port = ranged("port", pick(link.port, file.port, path, 5000), 1, 65535, "")? as u16;
        let (protocol, origin) = pick(link.protocol.clone(), file.protocol, path, "udp".into());
        let Some(protocol) = parse_protocol(&protocol) else {
            bail!(
                "invalid `protocol` = {:?} {origin}: allowed \"udp\" or \"tcp\"",
                protocol.to_ascii_lowercase()
            );
        };
        let (bind, origin) = pick(link.bind.clone(), file.bind, path, "0.0.0.0".into());
        let bind: IpAddr = bind.parse().map_err(|_| {
            anyhow::anyhow!(
                "invalid `bind` = {bind:?} {origin}: must be an IP address such as 0.0.0.0"
            )
        })?;
        let (remote, origin) = pick(link.remote.clone(), file.remote, path, "127.0.0.1".into());
        let remote_given = !matches!(origin, Origin::Default);
        let payload_size = ranged(
            "payload_size",
            pick(link.payload_size, file.payload_size, path, 1400),
            transport::wire::FRAGMENT_HEADER as i64 + 64,
            65_507,
            " bytes",
        )? as usize;
        let flag = |f: fn(&SendArgs) -> Option<i64>| send.and_then(f);
        let width = ranged(
            "width",
            pick(flag(|s| s.width), file.width, path, 1280),
            320,
            4096,
            " pixels",
        )?;
        even("width", width)?;
        let height = ranged(
            "height",
            pick(flag(|s| s.height), file.height, path, 720),
            240,
            2304,
            " pixels",
        )?;
        even("height", height)?;
        let fps = ranged(
            "fps",
            pick(flag(|s| s.fps), file.fps, path, 30),
            1,
            120,
            " frames/s",
        )?;
        let bitrate = ranged(
            "bitrate",
            pick(flag(|s| s.bitrate), file.bitrate, path, 4_000_000),
            EncoderSettings::MIN_BITRATE as i64,
            EncoderSettings::MAX_BITRATE as i64,
            " bits/s",
        )?;
        let intra = ranged(
            "intra",
            pick(flag(|s| s.intra), file.intra, path, fps * 2),
            1,
            1200,
            " frames",
        )?;
        let (source, origin) = pick(
            send.and_then(|s| s.source.clone()),
            file.source,
            path,
            String::new(),
        );
        // Unset: a camera if this machine has one, else the synthetic camera. Probed only
        // for the sender (the receiver has no source, but refuses a bad one in its file
        // like any other bad key).
        let source = match (origin, send) {
            (Origin::Default, Some(_)) => source_spec::default_source(),
            (Origin::Default, None) => SourceSpec::Test,
            _ => source
                .parse()
                .map_err(|e| anyhow::anyhow!("invalid `source` = {source:?} {origin}: {e}"))?,
        };
        let (congestion_control, _) = pick(
            send.and_then(|s| s.no_congestion_control.then_some(false)),
            file.congestion_control,
            path,
            true,
        );
        let (repair, _) = pick(link.no_repair.then_some(false), file.repair, path, true);
        let (insecure, _) = pick(link.insecure.then_some(true), file.insecure, path, false);
        // A key named in the file is found relative to the file.
        let key = link.key.clone().or_else(|| {
            file.key
                .as_ref()
                .map(|k| match path.and_then(Path::parent) {
                    Some(dir) if Path::new(k).is_relative() => dir.join(k),
                    _ => PathBuf::from(k),
                })
        });
        let security = match (insecure, key) {
            (true, Some(key)) => bail!(
                "both `insecure` and `key` = {:?} are set: choose one (encryption with that key, or none)",
                key.display()
            ),
            (true, None) => Security::Insecure,
            (false, Some(key)) => Security::KeyFile(key),
            (false, None) => Security::Paired,
        };
        let floor_default =
            transport::congestion::CongestionConfig::for_stream(bitrate as u32, fps as u32)
                .min_bitrate;
        let min_bitrate = ranged(
            "min_bitrate",
            pick(
                flag(|s| s.min_bitrate),
                file.min_bitrate,
                path,
                floor_default as i64,
            ),
            EncoderSettings::MIN_BITRATE as i64,
            bitrate,
            " bits/s (at most `bitrate`)",
        )?;
        let max_queue_delay_ms = ranged(
            "max_queue_delay_ms",
            pick(
                flag(|s| s.max_queue_delay_ms),
                file.max_queue_delay_ms,
                path,
                100,
            ),
            10,
            5000,
            " ms",
        )?;
        let (wire, origin) = pick(link.wire.clone(), file.wire, path, "picam".into());
        let Some(wire) = parse_wire(&wire) else {
            bail!(
                "invalid `wire` = {:?} {origin}: allowed \"picam\", \"rtp\" or \"h264\"",
                wire.to_ascii_lowercase()
            );
        };
        let (rtcp_mux, _) = pick(link.rtcp_mux.then_some(true), file.rtcp_mux, path, false);
        let payload_type = ranged(
            "payload_type",
            pick(link.payload_type, file.payload_type, path, 96),
            96,
            127,
            " (dynamic RTP payload types)",
        )? as u8;
        let clock_rate = ranged(
            "clock_rate",
            pick(link.clock_rate, file.clock_rate, path, 90_000),
            1_000,
            1_000_000,
            " Hz (RFC 6184 H.264 uses 90000)",
        )? as u32;
        // Checked for both sides, like every key in the file; used by the sender only.
        let (web, origin) = pick(
            send.and_then(|s| s.web.clone()),
            file.web.map(WebValue::into_text),
            path,
            String::new(),
        );
        let web_bind = match origin {
            Origin::Default => None,
            _ => Some(parse_web(&web).ok_or_else(|| {
                anyhow::anyhow!(
                    "invalid `web` = {web:?} {origin}: allowed PORT (1..=65535, on every address) or ADDR:PORT, e.g. 8080, 127.0.0.1:8080 or [::]:8080"
                )
            })?),
        };
        let max_viewers = ranged(
            "web_max_viewers",
            pick(flag(|s| s.web_max_viewers), file.web_max_viewers, path, 8),
            1,
            MAX_WEB_VIEWERS,
            " viewers",
        )? as usize;
        let web_token_new = match send.and_then(|s| s.web_token.as_deref()) {
            None => false,
            Some("new") => true,
            Some(other) => bail!(
                "invalid `--web-token` = {other:?}: the only value is \"new\" (replaces the kept web access token, so earlier links stop working)"
            ),
        };
        let web = web_bind
            .filter(|_| send.is_some())
            .map(|bind| WebSettings { bind, max_viewers });
        Ok(Self {
            record,
            remote_given,
            web,
            web_token_new,
            wire,
            rtcp_mux,
            payload_type,
            clock_rate,
            remote,
            bind,
            port,
            protocol,
            encoder: EncoderSettings {
                width: width as u32,
                height: height as u32,
                fps: fps as u32,
                bitrate: bitrate as u32,
                intra: intra as u32,
            },
            payload_size,
            source,
            congestion_control,
            repair,
            security,
            min_bitrate: min_bitrate as u32,
            max_queue_delay: std::time::Duration::from_millis(max_queue_delay_ms as u64),
        })
    }

    /// The sender's jam guard, or `None` with `--no-congestion-control`.
    pub fn jam_guard_config(&self) -> Option<transport::JamGuardConfig> {
        if !self.congestion_control {
            return None;
        }
        let mut guard =
            transport::JamGuardConfig::for_stream(self.encoder.bitrate, self.encoder.fps);
        guard.congestion.min_bitrate = self.min_bitrate;
        guard.max_queue_delay = self.max_queue_delay;
        Some(guard)
    }

    /// The sender's loss repair, or `None` with `--no-repair` or over TCP.
    pub fn sender_repair(&self) -> Option<transport::RepairConfig> {
        (self.repair && self.protocol == Protocol::Udp)
            .then(|| transport::RepairConfig::for_bitrate(self.encoder.bitrate))
    }

    /// The receiver's state machine settings: repair on over UDP unless turned off.
    pub fn receiver_config(&self) -> transport::ReceiverConfig {
        transport::ReceiverConfig {
            repair: (self.repair && self.protocol == Protocol::Udp)
                .then(transport::ReceiverRepairConfig::default),
            ..Default::default()
        }
    }

    /// The receiver's socket address, resolving the host name; the address family of
    /// `bind` is matched when the name has several.
    pub fn remote_addr(&self) -> Result<SocketAddr> {
        let mut addrs = (self.remote.as_str(), self.port)
            .to_socket_addrs()
            .with_context(|| format!("invalid `remote` = {:?}: cannot resolve it", self.remote))?;
        let want_v6 = self.bind.is_ipv6();
        let all: Vec<_> = addrs.by_ref().collect();
        all.iter()
            .find(|a| a.is_ipv6() == want_v6)
            .or(all.first())
            .copied()
            .with_context(|| {
                format!(
                    "invalid `remote` = {:?}: resolves to no address",
                    self.remote
                )
            })
    }

    /// The receiver's socket address when there is a receiver: `None` when no `remote`
    /// is configured and the browser viewer (`--web`) is on, so the sender serves
    /// browsers only; otherwise as [`Self::remote_addr`], with its errors.
    pub fn remote_addr_opt(&self) -> Result<Option<SocketAddr>> {
        if !self.remote_given && self.web.is_some() {
            return Ok(None);
        }
        self.remote_addr().map(Some)
    }

    /// Where the receiver listens.
    pub fn listen_addr(&self) -> SocketAddr {
        SocketAddr::new(self.bind, self.port)
    }

    /// Where the sender binds: the configured address, any port, in the remote's family.
    pub fn sender_bind_addr(&self, remote: SocketAddr) -> SocketAddr {
        let ip = match (self.bind, remote) {
            (IpAddr::V4(v4), SocketAddr::V6(_)) if v4.is_unspecified() => {
                IpAddr::V6(std::net::Ipv6Addr::UNSPECIFIED)
            }
            (ip, _) => ip,
        };
        SocketAddr::new(ip, 0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::{Cli, Command};
    use clap::Parser;

    fn send_settings(args: &[&str]) -> Result<Settings> {
        let cli = Cli::try_parse_from(["picam", "send"].iter().chain(args)).expect("flags parse");
        let Command::Send(send) = cli.command else {
            unreachable!()
        };
        Settings::for_send(&send)
    }

    fn error_of(args: &[&str]) -> String {
        format!("{:#}", send_settings(args).unwrap_err())
    }

    #[test]
    fn defaults_are_the_documented_ones() {
        let s = send_settings(&[]).unwrap();
        assert_eq!(
            (s.port, s.protocol, s.payload_size),
            (5000, Protocol::Udp, 1400)
        );
        assert_eq!(
            (s.wire, s.rtcp_mux, s.payload_type),
            (Wire::Picam, false, 96)
        );
        assert_eq!(s.clock_rate, 90_000);
        let s = send_settings(&["--wire", "RTP", "--rtcp-mux", "--payload-type", "100"]).unwrap();
        assert_eq!((s.wire, s.rtcp_mux, s.payload_type), (Wire::Rtp, true, 100));
        let s = send_settings(&["--wire", "rtp", "--clock-rate", "48000"]).unwrap();
        assert_eq!(s.clock_rate, 48_000);
        assert_eq!(
            s.encoder,
            EncoderSettings {
                width: 1280,
                height: 720,
                fps: 30,
                bitrate: 4_000_000,
                intra: 60
            }
        );
    }

    #[test]
    fn refuses_bad_values_naming_key_and_range() {
        let cases: &[(&[&str], &str)] = &[
            (
                &["--port", "70000"],
                "invalid `port` = 70000 from the command line: allowed 1..=65535",
            ),
            (&["--port", "0"], "`port` = 0"),
            (
                &["--bitrate", "0"],
                "invalid `bitrate` = 0 from the command line: allowed 100000..=50000000 bits/s",
            ),
            (&["--bitrate", "900000000"], "allowed 100000..=50000000"),
            (&["--width", "1281"], "invalid `width` = 1281: must be even"),
            (&["--height", "-4"], "`height` = -4"),
            (
                &["--protocol", "sctp"],
                "invalid `protocol` = \"sctp\" from the command line: allowed \"udp\" or \"tcp\"",
            ),
            (&["--fps", "0"], "`fps` = 0"),
            (
                &["--wire", "srt"],
                "invalid `wire` = \"srt\" from the command line: allowed \"picam\", \"rtp\" or \"h264\"",
            ),
            (&["--payload-type", "200"], "invalid `payload_type` = 200 from the command line: allowed 96..=127"),
            (&["--clock-rate", "0"], "invalid `clock_rate` = 0 from the command line: allowed 1000..=1000000 Hz"),
            (&["--intra", "0"], "`intra` = 0"),
            (&["--payload-size", "20"], "`payload_size` = 20"),
            (&["--bind", "not-an-ip"], "invalid `bind`"),
            (
                &["--min-bitrate", "9000000"],
                "invalid `min_bitrate` = 9000000 from the command line: allowed 100000..=4000000",
            ),
            (
                &["--max-queue-delay-ms", "0"],
                "invalid `max_queue_delay_ms` = 0",
            ),
            (
                &["--source", "v4l2:"],
                "invalid `source` = \"v4l2:\" from the command line: `v4l2:` names no file; allowed",
            ),
            (
                &["--web", "70000"],
                "invalid `web` = \"70000\" from the command line: allowed PORT (1..=65535",
            ),
            (&["--web", "0"], "invalid `web` = \"0\""),
            (&["--web", "localhost:8080"], "invalid `web` = \"localhost:8080\""),
            (&["--web", "1.2.3.4"], "invalid `web` = \"1.2.3.4\""),
            (&["--web", ""], "invalid `web` = \"\""),
            (
                &["--web", "8080", "--web-max-viewers", "0"],
                "invalid `web_max_viewers` = 0 from the command line: allowed 1..=32 viewers",
            ),
            (&["--web-max-viewers", "33"], "invalid `web_max_viewers` = 33"),
            (
                &["--web", "8080", "--web-token", "old"],
                "invalid `--web-token` = \"old\": the only value is \"new\"",
            ),
            (
                &["--config", "/nonexistent/picam.toml"],
                "cannot read config file /nonexistent/picam.toml",
            ),
        ];
        for (args, want) in cases {
            let got = error_of(args);
            assert!(got.contains(want), "{args:?}: got {got:?}, want {want:?}");
        }
    }

    #[test]
    fn flags_override_the_file_and_file_errors_name_the_file() {
        let dir = std::env::temp_dir().join(format!("picam-config-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("c.toml");
        std::fs::write(
            &path,
            "port = 6000\nwidth = 640\nheight = 480\nprotocol = \"tcp\"\n",
        )
        .unwrap();
        let p = path.to_str().unwrap();
        let s = send_settings(&["--config", p, "--port", "7000"]).unwrap();
        assert_eq!(
            (s.port, s.encoder.width, s.protocol),
            (7000, 640, Protocol::Tcp)
        );

        std::fs::write(&path, "port = 70000\n").unwrap();
        let got = error_of(&["--config", p]);
        assert!(
            got.contains(&format!("invalid `port` = 70000 in {p}")),
            "{got}"
        );

        std::fs::write(&path, "source = \"camera0\"\n").unwrap();
        let got = error_of(&["--config", p]);
        for want in [
            format!("invalid `source` = \"camera0\" in {p}"),
            "allowed \"auto\", \"v4l2:/dev/videoN\", \"rpicam\"".to_string(),
            "\"y4m:FILE\" or \"y4m:-\"".to_string(),
        ] {
            assert!(got.contains(&want), "{got}\nwant {want}");
        }
        std::fs::write(&path, "source = \"rpicam --hflip\"\n").unwrap();
        let s = send_settings(&["--config", p]).unwrap();
        assert_eq!(s.source.to_string(), "rpicam --hflip");

        std::fs::write(&path, "prot = \"udp\"\n").unwrap();
        let got = error_of(&["--config", p]);
        assert!(got.contains("unknown field `prot`"), "{got}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn record_flags_and_keys() {
        assert_eq!(send_settings(&[]).unwrap().record, None);
        let s = send_settings(&["--record", "out.MKV", "--record-segment", "60"]).unwrap();
        let r = s.record.unwrap();
        assert_eq!(r.path, PathBuf::from("out.MKV"));
        assert_eq!(r.segment, Some(std::time::Duration::from_secs(60)));
        assert_eq!((r.keep, r.max_bytes), (None, None));
        let s = send_settings(&[
            "--record",
            "/tmp/x.ts",
            "--record-segment",
            "1",
            "--record-keep",
            "3",
            "--record-max-bytes",
            "20G",
        ])
        .unwrap();
        let r = s.record.unwrap();
        assert_eq!((r.keep, r.max_bytes), (Some(3), Some(20_000_000_000)));
        let cases: &[(&[&str], &str)] = &[
            (
                &["--record", "out.avi"],
                "invalid `record` = \"out.avi\" from the command line",
            ),
            (&["--record", "noext"], "invalid `record` = \"noext\""),
            (
                &["--record", "a.mp4", "--record-segment", "0"],
                "invalid `record_segment` = 0 from the command line: allowed 1..=86400 seconds",
            ),
            (
                &["--record", "a.mp4", "--record-keep", "2"],
                "`record_keep` deletes old segments, so it needs `record_segment`",
            ),
            (
                &[
                    "--record",
                    "a.mp4",
                    "--record-segment",
                    "5",
                    "--record-max-bytes",
                    "2Q",
                ],
                "invalid `record_max_bytes` = \"2Q\" from the command line",
            ),
            (
                &[
                    "--record",
                    "a.mp4",
                    "--record-segment",
                    "5",
                    "--record-max-bytes",
                    "9M",
                ],
                "allowed 10000000 bytes or more",
            ),
            (
                &["--record-segment", "5"],
                "`record_segment` is set but `record` is not",
            ),
        ];
        for (args, want) in cases {
            let err = error_of(args);
            assert!(err.contains(want), "{args:?}: {err}");
        }
        assert_eq!(parse_bytes("1500000"), Some(1_500_000));
        assert_eq!(parse_bytes("2t"), Some(2_000_000_000_000));
        assert_eq!(parse_bytes("k"), None);
        assert_eq!(parse_bytes("-5G"), None);
        assert_eq!(parse_bytes("99999999999T"), None);

        // In the file: relative to the working directory, byte counts as numbers or
        // strings.
        let dir = std::env::temp_dir().join(format!("picam-config-rec-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("c.toml");
        let p = path.to_str().unwrap();
        std::fs::write(
            &path,
            "record = \"rec/door.mp4\"\nrecord_segment = 600\nrecord_max_bytes = 50000000\n",
        )
        .unwrap();
        let r = send_settings(&["--config", p]).unwrap().record.unwrap();
        assert_eq!(r.path, PathBuf::from("rec/door.mp4"));
        assert_eq!(r.max_bytes, Some(50_000_000));
        // The flag wins over the file.
        let r = send_settings(&["--config", p, "--record", "here.ts"])
            .unwrap()
            .record
            .unwrap();
        assert_eq!(r.path, PathBuf::from("here.ts"));
        std::fs::write(
            &path,
            "record = \"a.mkv\"\nrecord_keep = 0\nrecord_segment = 9\n",
        )
        .unwrap();
        let err = error_of(&["--config", p]);
        assert!(
            err.contains(&format!("invalid `record_keep` = 0 in {p}")),
            "{err}"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn web_flags_and_keys() {
        let s = send_settings(&[]).unwrap();
        assert_eq!(
            (s.web, s.web_token_new, s.remote_given),
            (None, false, false)
        );
        assert_eq!(
            s.remote_addr_opt().unwrap(),
            Some("127.0.0.1:5000".parse().unwrap())
        );
        let cases: &[(&str, &str)] = &[
            ("8080", "0.0.0.0:8080"),
            ("127.0.0.1:8080", "127.0.0.1:8080"),
            ("[::]:8443", "[::]:8443"),
            ("[::1]:1", "[::1]:1"),
            ("65535", "0.0.0.0:65535"),
        ];
        for (flag, bind) in cases {
            let s = send_settings(&["--web", flag]).unwrap();
            let want = WebSettings {
                bind: bind.parse().unwrap(),
                max_viewers: 8,
            };
            assert_eq!(s.web, Some(want), "--web {flag}");
            // Browsers only: no receiver.
            assert_eq!(s.remote_addr_opt().unwrap(), None, "--web {flag}");
            // Other callers still get the default receiver.
            assert_eq!(s.remote_addr().unwrap(), "127.0.0.1:5000".parse().unwrap());
        }
        let s = send_settings(&[
            "--web",
            "8080",
            "--web-max-viewers",
            "32",
            "--web-token",
            "new",
            "--remote",
            "127.0.0.2",
        ])
        .unwrap();
        assert_eq!(s.web.unwrap().max_viewers, 32);
        assert!(s.web_token_new);
        assert_eq!(
            s.remote_addr_opt().unwrap(),
            Some("127.0.0.2:5000".parse().unwrap())
        );
        let s = send_settings(&["--remote", "no.such.host.invalid", "--web", "1"]).unwrap();
        let err = format!("{:#}", s.remote_addr_opt().unwrap_err());
        let same = format!("{:#}", s.remote_addr().unwrap_err());
        assert_eq!(err, same);
        assert!(
            err.contains("invalid `remote` = \"no.such.host.invalid\""),
            "{err}"
        );

        let dir = std::env::temp_dir().join(format!("picam-config-web-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("c.toml");
        let p = path.to_str().unwrap();
        std::fs::write(&path, "web = 8080\nweb_max_viewers = 4\n").unwrap();
        let s = send_settings(&["--config", p]).unwrap();
        let want = WebSettings {
            bind: "0.0.0.0:8080".parse().unwrap(),
            max_viewers: 4,
        };
        assert_eq!(s.web, Some(want));
        std::fs::write(&path, "web = \"127.0.0.1:9000\"\nremote = \"127.0.0.3\"\n").unwrap();
        let s = send_settings(&["--config", p]).unwrap();
        assert_eq!(s.web.unwrap().bind, "127.0.0.1:9000".parse().unwrap());
        assert!(s.remote_addr_opt().unwrap().is_some());
        // The flag overrides the file.
        let s = send_settings(&["--config", p, "--web", "7000"]).unwrap();
        assert_eq!(s.web.unwrap().bind, "0.0.0.0:7000".parse().unwrap());
        std::fs::write(&path, "web = 0\n").unwrap();
        let got = error_of(&["--config", p]);
        assert!(
            got.contains(&format!("invalid `web` = \"0\" in {p}")),
            "{got}"
        );
        std::fs::write(&path, "web_max_viewers = 99\n").unwrap();
        let got = error_of(&["--config", p]);
        assert!(
            got.contains(&format!(
                "invalid `web_max_viewers` = 99 in {p}: allowed 1..=32"
            )),
            "{got}"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn the_shipped_example_config_is_valid() {
        let example = concat!(env!("CARGO_MANIFEST_DIR"), "/../picam.example.toml");
        let s = send_settings(&["--config", example]).unwrap();
        assert_eq!(s.port, 5000);
    }
}
