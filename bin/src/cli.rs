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
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Capture, encode and stream to the configured receiver.
    Send(SendArgs),
    /// Receive, decode and show (or record) the stream.
    Recv(RecvArgs),
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
}

/// Flags of `picam send`.
#[derive(Debug, Args)]
pub struct SendArgs {
    /// Shared keys.
    #[command(flatten)]
    pub link: LinkArgs,
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
    /// Where frames come from: `test` (synthetic camera), `y4m:FILE` or `y4m:-`.
    #[arg(long)]
    pub source: Option<String>,
    /// Paint the latency stamp into y4m input too (the test pattern always has it).
    #[arg(long)]
    pub stamp: bool,
}

/// Flags of `picam recv`.
#[derive(Debug, Args)]
pub struct RecvArgs {
    /// Shared keys.
    #[command(flatten)]
    pub link: LinkArgs,
    /// Decode and report only; no window.
    #[arg(long)]
    pub headless: bool,
    /// Write every picture shown as YUV4MPEG2 to FILE, or to stdout with `-`.
    #[arg(long, value_name = "FILE")]
    pub frames_out: Option<String>,
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
