//! `picam demo`: the test pattern sent to a viewer over loopback, in one process.
//!
//! The viewer is `recv::run_with` on the main thread (its window lives there); the
//! sender is `send::run_with` on a thread of its own, started once the viewer is up.
//! One shutdown handle stops both: `--duration`, Ctrl-C, closing the window, or
//! either side ending.

use std::net::{TcpListener, UdpSocket};

use anyhow::{Context, Result};
use clap::{Args, FromArgMatches};
use transport::Protocol;

use crate::cli::{DemoArgs, LinkArgs, RecvArgs, SendArgs};
use crate::config::{parse_protocol, Settings};
use crate::recv;
use crate::send::{self, Role};
use crate::shutdown::Shutdown;
use crate::view::OverlayDefault;

/// The port tried first: the default of `picam send` and `picam recv`.
const PREFERRED_PORT: u16 = 5000;

/// Runs the demo until `--duration` passes, a signal arrives or the window closes.
pub fn run(args: DemoArgs) -> Result<()> {
    // A bad protocol is refused below, with the other flags; UDP's port is probed then.
    let tcp = args.protocol.as_deref().and_then(parse_protocol) == Some(Protocol::Tcp);
    let port = match args.port {
        Some(port) => port,
        None => i64::from(free_port(tcp)?),
    };
    // Both ends in one process share a fresh key: encrypted like a real pair, with no
    // pairing to do. The file lives as long as the demo.
    let key = DemoKey::new()?;
    let link = LinkArgs {
        remote: Some("127.0.0.1".into()),
        bind: Some("127.0.0.1".into()),
        port: Some(port),
        protocol: args.protocol.clone(),
        duration: args.duration,
        stats: args.stats,
        key: Some(key.path.clone()),
        ..Default::default()
    };
    let send_args = send_args(&args, &link)?;
    // Refuse bad flags before anything starts (both sides check them again).
    let settings = Settings::for_send(&send_args)?;
    let recv_args = RecvArgs {
        link,
        view: args.view.clone(),
        frames_out: None,
        latency_out: None,
    };
    let e = settings.encoder;
    tracing::info!(
        "demo: test pattern {}x{} at {} fps, {:.1} Mbit/s, over {} on 127.0.0.1:{}",
        e.width,
        e.height,
        e.fps,
        f64::from(e.bitrate) / 1e6,
        match settings.protocol {
            Protocol::Udp => "UDP",
            Protocol::Tcp => "TCP",
        },
        settings.port,
    );

    let shutdown = Shutdown::new();
    let mut sender = None;
    let start_sender = || {
        let shutdown = shutdown.clone();
        let thread = std::thread::Builder::new()
            .name("demo-sender".into())
            .spawn(move || {
                let result = send::run_with(&send_args, shutdown.clone(), Role::Embedded);
                if let Err(e) = &result {
                    tracing::error!("sender: {e:#}");
                }
                shutdown.fire();
                result
            })
            .context("starting the sender thread")?;
        sender = Some(thread);
        Ok(())
    };
    let peer = format!("127.0.0.1:{}", settings.port);
    let shown = recv::run_with(
        &recv_args,
        OverlayDefault::On,
        Some(peer),
        shutdown.clone(),
        start_sender,
    );
    shutdown.fire();
    let sent = match sender {
        Some(thread) => thread
            .join()
            .map_err(|_| anyhow::anyhow!("sender thread panicked"))?,
        None => Ok(()),
    };
    shown?;
    sent.context("sender")
}

/// A key for both ends of the demo, in a private temporary file removed on drop.
struct DemoKey {
    path: std::path::PathBuf,
}

impl DemoKey {
    fn new() -> Result<Self> {
        let path = std::env::temp_dir().join(format!("picam-demo-{}.key", std::process::id()));
        transport::secure::Psk::generate()?.write(&path)?;
        Ok(Self { path })
    }
}

impl Drop for DemoKey {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// The sender's flags, parsed as `picam send` would parse them (so flags added to
/// `send` later get their defaults here too).
fn send_args(args: &DemoArgs, link: &LinkArgs) -> Result<SendArgs> {
    let mut argv: Vec<String> = vec!["send".into(), "--source".into(), "test".into()];
    let mut flag = |name: &str, value: Option<String>| {
        if let Some(v) = value {
            argv.push(format!("--{name}"));
            argv.push(v);
        }
    };
    flag("width", args.width.map(|v| v.to_string()));
    flag("height", args.height.map(|v| v.to_string()));
    flag("fps", args.fps.map(|v| v.to_string()));
    flag("bitrate", args.bitrate.map(|v| v.to_string()));
    flag("protocol", link.protocol.clone());
    flag("remote", link.remote.clone());
    flag("bind", link.bind.clone());
    flag("port", link.port.map(|v| v.to_string()));
    flag("key", link.key.as_ref().map(|k| k.display().to_string()));
    let command = SendArgs::augment_args(clap::Command::new("send"));
    let matches = command
        .try_get_matches_from(&argv)
        .context("building the demo's sender flags")?;
    Ok(SendArgs::from_arg_matches(&matches)?)
}

/// [`PREFERRED_PORT`] if it is free on loopback, else a free port the system picks.
fn free_port(tcp: bool) -> Result<u16> {
    let bind = |port: u16| -> std::io::Result<u16> {
        if tcp {
            TcpListener::bind(("127.0.0.1", port))?
                .local_addr()
                .map(|a| a.port())
        } else {
            UdpSocket::bind(("127.0.0.1", port))?
                .local_addr()
                .map(|a| a.port())
        }
    };
    if bind(PREFERRED_PORT).is_ok() {
        return Ok(PREFERRED_PORT);
    }
    let port = bind(0).context("finding a free loopback port")?;
    tracing::info!("port {PREFERRED_PORT} is busy: using {port}");
    Ok(port)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn demo_flags_reach_the_sender() {
        let args = DemoArgs {
            width: Some(640),
            height: Some(480),
            fps: Some(25),
            bitrate: Some(1_000_000),
            protocol: Some("tcp".into()),
            port: Some(5600),
            duration: Some(1.0),
            stats: crate::cli::StatsFormat::Json,
            view: Default::default(),
        };
        let link = LinkArgs {
            remote: Some("127.0.0.1".into()),
            port: Some(5600),
            protocol: Some("tcp".into()),
            ..Default::default()
        };
        let send = send_args(&args, &link).unwrap();
        assert_eq!(
            (send.width, send.height, send.fps),
            (Some(640), Some(480), Some(25))
        );
        assert_eq!(send.link.port, Some(5600));
        let settings = Settings::for_send(&send).unwrap();
        assert_eq!(settings.source, crate::source_spec::SourceSpec::Test);
        assert_eq!(
            settings.remote_addr().unwrap().to_string(),
            "127.0.0.1:5600"
        );
    }

    #[test]
    fn a_free_port_is_found() {
        let held = UdpSocket::bind(("127.0.0.1", PREFERRED_PORT));
        let port = free_port(false).unwrap();
        if held.is_ok() {
            assert_ne!(port, PREFERRED_PORT, "5000 is held here");
        }
        assert!(UdpSocket::bind(("127.0.0.1", port)).is_ok());
    }
}
