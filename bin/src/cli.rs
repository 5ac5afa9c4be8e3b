//! Command-line flags. Every configuration key is also a flag that overrides the file.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// Ultra-low-latency live video from a camera to a viewer across a LAN.
#[derive(Debug, Parser)]
#[command(name = "picam", version, about)]
pub struct Cli {
    /// What to run.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
// Parsed once at start and moved into its subcommand: the size difference between
// variants costs nothing, and boxing would only add a deref at every use.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Capture, encode and stream to the configured receiver.
    Send(SendArgs),
    /// Receive, decode and show (or record) the stream.
    Recv(RecvArgs),
    /// List cameras and encoders, their formats, sizes and frame rates, and the
    /// `--source` value for each.
    Devices(DevicesArgs),
    /// Sender (test pattern) and viewer on loopback in one process: no setup needed.
    Demo(DemoArgs),
    /// Write a new random key to a file (mode 0600), for `--key FILE` on both sides
    /// instead of pairing (services, scripts).
    Keygen(KeygenArgs),
}

/// Flags of `picam keygen`.
#[derive(Debug, Args)]
pub struct KeygenArgs {
    /// Where to write the key.
    #[arg(long, value_name = "FILE")]
    pub out: PathBuf,
}

/// Keys shared by both sides: the file's keys, as flags.
#[derive(Debug, Args, Default, Clone)]
pub struct LinkArgs {
    /// TOML configuration file (see picam.example.toml).
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Receiver's address, where the sender sends (host name or IP).
    #[arg(long)]
    pub remote: Option<String>,
    /// Local address to bind (the receiver listens here).
    #[arg(long)]
    pub bind: Option<String>,
    /// UDP/TCP port the receiver listens on.
    #[arg(long, allow_negative_numbers = true)]
    pub port: Option<i64>,
    /// `udp` or `tcp`.
    #[arg(long)]
    pub protocol: Option<String>,
    /// Largest UDP payload in bytes, header included.
    #[arg(long, allow_negative_numbers = true)]
    pub payload_size: Option<i64>,
    /// Stop cleanly after this many seconds.
    #[arg(long, value_name = "SECS")]
    pub duration: Option<f64>,
    /// How to print the once-a-second stats.
    #[arg(long, value_enum, default_value_t = StatsFormat::Text)]
    pub stats: StatsFormat,
    /// Turn loss repair off (parity packets, retransmission on nack) on this side:
    /// the baseline, for comparison. UDP only; TCP never needs it.
    #[arg(long)]
    pub no_repair: bool,
    /// Wire format: `picam` (picam's own), `rtp` (RTP/RTCP, RFC 6184; RFC 4571 framing
    /// over TCP) or `h264` (raw Annex B, as `rpicam-vid -o udp://` sends). Over TCP the
    /// interop wires reverse the roles: the sender listens, the receiver connects to
    /// `--remote`.
    #[arg(long)]
    pub wire: Option<String>,
    /// `--wire rtp`: RTCP on the RTP port (RFC 5761) instead of port + 1.
    #[arg(long)]
    pub rtcp_mux: bool,
    /// `--wire rtp`: the RTP payload type (96..=127, default 96).
    #[arg(long, allow_negative_numbers = true)]
    pub payload_type: Option<i64>,
    /// `--wire rtp`: the RTP clock rate, Hz (default 90000, which RFC 6184 requires for
    /// H.264; another value only for a peer that insists on it).
    #[arg(long, allow_negative_numbers = true)]
    pub clock_rate: Option<i64>,
    /// Use this key file (from `picam keygen`, the same on both sides) instead of the
    /// paired key.
    #[arg(long, value_name = "FILE")]
    pub key: Option<PathBuf>,
    /// No encryption: anyone on the network can watch and take over the stream. Both
    /// sides must agree.
    #[arg(long, conflicts_with = "key")]
    pub insecure: bool,
    /// Recording: the H.264 as received (`recv`) or as encoded (`send`), never
    /// re-encoded.
    #[command(flatten)]
    pub record: RecordArgs,
}

/// Recording flags, on either side (`picam send` keeps the stream on the camera's own
/// storage, `picam recv` on the viewer's).
#[derive(Debug, Args, Default, Clone)]
#[command(next_help_heading = "Recording")]
pub struct RecordArgs {
    /// Keep the stream in FILE, muxed (not re-encoded) into the container its extension
    /// names: `.mkv` (Matroska), `.ts` (MPEG-TS) or `.mp4` (fragmented). An existing file
    /// is never overwritten: the next free `NAME-1.EXT` is taken.
    #[arg(long, value_name = "FILE")]
    pub record: Option<PathBuf>,
    /// Start a new file every SECS seconds, named by its start time in UTC
    /// (`NAME-YYYYmmdd-HHMMSS.EXT`), each on a keyframe.
    #[arg(long, value_name = "SECS", allow_negative_numbers = true)]
    pub record_segment: Option<i64>,
    /// With `--record-segment`: keep the newest N segment files, deleting older ones.
    #[arg(long, value_name = "N", allow_negative_numbers = true)]
    pub record_keep: Option<i64>,
    /// With `--record-segment`: keep the segment files under BYTES in all, deleting the
    /// oldest (suffixes K, M, G, T: powers of 1000; e.g. 20G).
    #[arg(long, value_name = "BYTES")]
    pub record_max_bytes: Option<String>,
}

/// Flags of `picam send`.
#[derive(Debug, Args)]
pub struct SendArgs {
    /// Shared keys.
    #[command(flatten)]
    pub link: LinkArgs,
    /// Pair with a receiver first: the code `picam recv` shows (the key is then kept
    /// in the user's config directory and used from then on).
    #[arg(long, value_name = "CODE", conflicts_with_all = ["key", "insecure"])]
    pub pair: Option<String>,
    /// Picture width in pixels (even).
    #[arg(long, allow_negative_numbers = true)]
    pub width: Option<i64>,
    /// Picture height in pixels (even).
    #[arg(long, allow_negative_numbers = true)]
    pub height: Option<i64>,
    /// Frames per second.
    #[arg(long, allow_negative_numbers = true)]
    pub fps: Option<i64>,
    /// Bitrate ceiling in bits per second.
    #[arg(long, allow_negative_numbers = true)]
    pub bitrate: Option<i64>,
    /// Keyframe interval in frames (default: two seconds' worth).
    #[arg(long, allow_negative_numbers = true)]
    pub intra: Option<i64>,
    /// Where frames come from: `auto` (the best camera here), `v4l2:/dev/videoN`,
    /// `rpicam` (rpicam-vid; `libcamera` for libcamera-vid; `rpicam:PROGRAM`; options
    /// for it may follow, e.g. "rpicam --hflip"), `file:PATH.h264` or `-` (H.264 Annex B
    /// on stdin), `test` (synthetic camera), `y4m:FILE` or `y4m:-`.
    #[arg(long)]
    pub source: Option<String>,
    /// Camera and H.264 stream options.
    #[command(flatten)]
    pub capture: CaptureArgs,
    /// Paint the latency stamp into y4m input too (the test pattern always has it).
    #[arg(long)]
    pub stamp: bool,
    /// Turn the jam guard off (congestion control, deadline drops, pacing): the
    /// unguarded baseline, for comparison only.
    #[arg(long)]
    pub no_congestion_control: bool,
    /// Bitrate floor for congestion control, bits/s (default: a tenth of `bitrate`,
    /// at most 500000).
    #[arg(long, allow_negative_numbers = true)]
    pub min_bitrate: Option<i64>,
    /// Drop a frame still unsent this many ms after capture hands it over (default 100).
    #[arg(long, allow_negative_numbers = true)]
    pub max_queue_delay_ms: Option<i64>,
    /// `--wire rtp`: write an SDP file describing the stream, for ffplay, VLC or
    /// `ffmpeg -protocol_whitelist file,udp,rtp -i FILE`.
    #[arg(long, value_name = "FILE")]
    pub sdp: Option<std::path::PathBuf>,
    /// Serve a viewer page and WHEP (WebRTC) for browsers on this TCP port (media on the
    /// same UDP port); a bare PORT listens on every address. `--remote` is then
    /// optional. The address to open, with its access token, is printed at start.
    #[arg(long, value_name = "[ADDR:]PORT")]
    pub web: Option<String>,
    /// `--web`: how many browsers may watch at once (1..=32, default 8).
    #[arg(long, value_name = "N", allow_negative_numbers = true)]
    pub web_max_viewers: Option<i64>,
    /// `--web-token new`: replace the kept web access token (links given out before
    /// stop working). The token is kept beside the paired keys, in `web-token`.
    #[arg(long, value_name = "new")]
    pub web_token: Option<String>,
}

/// How cameras and H.264 streams are read (`picam send`).
#[derive(Debug, Args, Default, Clone)]
pub struct CaptureArgs {
    /// Encoder for a raw camera: `auto` (the V4L2 hardware encoder if there is one,
    /// else libx264), `x264`, or an encoder device such as `/dev/video11`. With
    /// `--source rpicam`, `rpicam` keeps rpicam-vid's own H.264 (no run-time control).
    #[arg(long, value_name = "auto|x264|rpicam|/dev/videoM")]
    pub encoder: Option<String>,
    /// Start an H.264 file again at its end (`file:` sources).
    #[arg(long = "loop")]
    pub looping: bool,
    /// Pass an H.264 file or stdin on as fast as it is read instead of at --fps (for a
    /// live producer on stdin).
    #[arg(long)]
    pub no_pace: bool,
}

/// Flags of `picam devices`.
#[derive(Debug, Args, Default, Clone)]
pub struct DevicesArgs {
    /// Print one JSON object per device instead of text.
    #[arg(long)]
    pub json: bool,
}

/// Flags of `picam recv`.
#[derive(Debug, Args)]
pub struct RecvArgs {
    /// Shared keys.
    #[command(flatten)]
    pub link: LinkArgs,
    /// Window or headless, vsync, overlay.
    #[command(flatten)]
    pub view: ViewArgs,
    /// Write every picture shown as YUV4MPEG2 to FILE, or to stdout with `-`.
    #[arg(long, value_name = "FILE")]
    pub frames_out: Option<String>,
    /// Write one line per picture shown to FILE (CSV: frame, seconds since start,
    /// stamp-to-picture latency in ms), to read a run's latency frame by frame.
    #[arg(long, value_name = "FILE")]
    pub latency_out: Option<String>,
}

/// How the viewer shows pictures (`picam recv`, `picam demo`).
#[derive(Debug, Args, Default, Clone)]
pub struct ViewArgs {
    /// Decode and report only; no window.
    #[arg(long)]
    pub headless: bool,
    /// Insist on a window: fail if there is no display (default: a window when a
    /// display is available, headless otherwise).
    #[arg(long, conflicts_with = "headless")]
    pub window: bool,
    /// Wait for the display's vertical blank (no tearing, up to a refresh of latency).
    #[arg(long)]
    pub vsync: bool,
    /// Start with the stats overlay shown (`S` toggles it).
    #[arg(long, overrides_with = "no_overlay")]
    pub overlay: bool,
    /// Start with the stats overlay hidden.
    #[arg(long, overrides_with = "overlay")]
    pub no_overlay: bool,
}

/// Flags of `picam demo`: the picture and link keys that make sense on loopback.
#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Picture width in pixels (even).
    #[arg(long, allow_negative_numbers = true)]
    pub width: Option<i64>,
    /// Picture height in pixels (even).
    #[arg(long, allow_negative_numbers = true)]
    pub height: Option<i64>,
    /// Frames per second.
    #[arg(long, allow_negative_numbers = true)]
    pub fps: Option<i64>,
    /// Bitrate ceiling in bits per second.
    #[arg(long, allow_negative_numbers = true)]
    pub bitrate: Option<i64>,
    /// `udp` or `tcp`.
    #[arg(long)]
    pub protocol: Option<String>,
    /// Loopback port (default: 5000 if free, else any free port).
    #[arg(long, allow_negative_numbers = true)]
    pub port: Option<i64>,
    /// Stop cleanly after this many seconds.
    #[arg(long, value_name = "SECS")]
    pub duration: Option<f64>,
    /// How to print the once-a-second stats.
    #[arg(long, value_enum, default_value_t = StatsFormat::Text)]
    pub stats: StatsFormat,
    /// Window or headless, vsync, overlay.
    #[command(flatten)]
    pub view: ViewArgs,
}

/// Stats output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Default)]
pub enum StatsFormat {
    /// One human-readable line a second.
    #[default]
    Text,
    /// One JSON object a line.
    Json,
}
