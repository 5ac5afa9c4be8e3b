//! Which key a side uses, pairing, and `picam keygen`.
//!
//! Order of choice: `--insecure` (no encryption); `--key FILE`; `picam send --pair
//! CODE` (pairs, keeps the key); the key kept from an earlier pairing in the user's
//! config directory; else the receiver shows a pairing code and waits, and the sender
//! says how to pair. Pairing runs over UDP on the stream's port number.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use tokio::net::UdpSocket;
use transport::secure::pairing::{self, PairInitiator, PairOutcome, PairResponder, PairState};
use transport::secure::Psk;

use crate::cli::KeygenArgs;
use crate::shutdown::Shutdown;

/// How a side protects the stream, as configured.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Security {
    /// `--insecure` / `insecure = true`: in the clear.
    Insecure,
    /// `--key FILE` / `key = "FILE"`.
    KeyFile(PathBuf),
    /// The key from pairing, kept in the config directory (paired now if missing).
    Paired,
}

/// Which side, for the name of the kept key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Side {
    /// `picam send`.
    Sender,
    /// `picam recv`.
    Receiver,
}

/// The directory picam keeps paired keys in: `$PICAM_CONFIG_DIR`, else
/// `$XDG_CONFIG_HOME/picam`, else `~/.config/picam`. An empty variable counts as unset
/// (never the current directory).
pub fn config_dir() -> Result<PathBuf> {
    if let Some(dir) = std::env::var_os("PICAM_CONFIG_DIR").filter(|d| !d.is_empty()) {
        return Ok(PathBuf::from(dir));
    }
    if let Some(dir) = std::env::var_os("XDG_CONFIG_HOME").filter(|d| !d.is_empty()) {
        return Ok(PathBuf::from(dir).join("picam"));
    }
    match std::env::var_os("HOME").filter(|d| !d.is_empty()) {
        Some(home) => Ok(PathBuf::from(home).join(".config").join("picam")),
        None => bail!(
            "no home directory to keep the paired key in: set PICAM_CONFIG_DIR, or use --key FILE"
        ),
    }
}

/// Where a side keeps its paired key.
pub fn paired_key_path(side: Side) -> Result<PathBuf> {
    Ok(config_dir()?.join(match side {
        Side::Sender => "sender.key",
        Side::Receiver => "receiver.key",
    }))
}

/// `picam keygen --out FILE`.
pub fn keygen(args: KeygenArgs) -> Result<()> {
    let key = Psk::generate()?;
    key.write(&args.out)?;
    eprintln!(
        "picam: wrote a new key to {} (fingerprint {}); give both sides `--key {}`",
        args.out.display(),
        key.fingerprint(),
        args.out.display()
    );
    Ok(())
}

fn read_key(path: &Path) -> Result<Psk> {
    Ok(Psk::read(path)?)
}

/// The sender's key: `None` for `--insecure`. Pairs first with `pair_code`.
pub fn sender_key(
    security: &Security,
    pair_code: Option<&str>,
    remote: SocketAddr,
    shutdown: &Shutdown,
) -> Result<Option<Psk>> {
    match (security, pair_code) {
        (Security::Insecure, _) => {
            tracing::warn!("--insecure: the stream is not encrypted; anyone on the network can watch or take it over");
            Ok(None)
        }
        (Security::KeyFile(path), _) => Ok(Some(read_key(path)?)),
        (Security::Paired, Some(code)) => {
            if !pairing::is_code(code) {
                bail!("invalid --pair {code:?}: a pairing code is eight digits, as `picam recv` shows it (1234-5678)");
            }
            let key = pair_as_sender(code, remote, shutdown)?;
            let path = paired_key_path(Side::Sender)?;
            key.write(&path)?;
            eprintln!(
                "picam: paired with {remote} (key fingerprint {}); key kept in {}",
                key.fingerprint(),
                path.display()
            );
            Ok(Some(key))
        }
        (Security::Paired, None) => {
            let path = paired_key_path(Side::Sender)?;
            if !path.exists() {
                bail!(
                    "not paired with a receiver yet (no key in {}): start `picam recv` on the viewer, then run this with `--pair CODE` (the code it shows); or give both sides `--key FILE` (`picam keygen`), or `--insecure` to both",
                    path.display()
                );
            }
            let key = read_key(&path)?;
            tracing::info!(fingerprint = %key.fingerprint(), "using the paired key");
            Ok(Some(key))
        }
    }
}

/// Whether the receiver must pair before it can start (no key file, no kept key).
pub fn receiver_needs_pairing(security: &Security) -> Result<bool> {
    Ok(*security == Security::Paired && !paired_key_path(Side::Receiver)?.exists())
}

/// The receiver's key: `None` for `--insecure`; without one, pairs first, showing the
/// code with `show_code`.
pub fn receiver_key(
    security: &Security,
    listen: SocketAddr,
    shutdown: &Shutdown,
    show_code: &mut dyn FnMut(&str),
) -> Result<Option<Psk>> {
    match security {
        Security::Insecure => {
            tracing::warn!("--insecure: the stream is not encrypted; anyone on the network can watch or take it over");
            Ok(None)
        }
        Security::KeyFile(path) => Ok(Some(read_key(path)?)),
        Security::Paired => {
            let path = paired_key_path(Side::Receiver)?;
            if path.exists() {
                let key = read_key(&path)?;
                tracing::info!(fingerprint = %key.fingerprint(), "using the paired key");
                return Ok(Some(key));
            }
            let Some(key) = pair_as_receiver(listen, shutdown, show_code)? else {
                return Ok(None);
            };
            key.write(&path)?;
            eprintln!(
                "picam: paired (key fingerprint {}); key kept in {}",
                key.fingerprint(),
                path.display()
            );
            Ok(Some(key))
        }
    }
}

fn runtime() -> Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?)
}

/// How long the sender tries to reach a receiver showing a code.
const PAIR_TIMEOUT: Duration = Duration::from_secs(30);

fn pair_as_sender(code: &str, remote: SocketAddr, shutdown: &Shutdown) -> Result<Psk> {
    let mut pairing = PairInitiator::new(code)?;
    runtime()?.block_on(async {
        let bind: SocketAddr = if remote.is_ipv6() {
            "[::]:0".parse()?
        } else {
            "0.0.0.0:0".parse()?
        };
        let socket = UdpSocket::bind(bind).await.context("binding the pairing socket")?;
        eprintln!("picam: pairing with {remote} ...");
        let deadline = Instant::now() + PAIR_TIMEOUT;
        let mut buf = Vec::new();
        let mut inbuf = vec![0u8; 2048];
        loop {
            while pairing.poll_transmit(Instant::now(), &mut buf) {
                let _ = socket.send_to(&buf, remote).await;
            }
            if pairing.is_finished() {
                match pairing.outcome() {
                    Some(PairOutcome::Paired(key)) => return Ok(key.clone()),
                    _ => bail!(
                        "pairing with {remote} failed: the code does not match the one `picam recv` shows there (type it again; after {} failed tries it stops answering until restarted)",
                        pairing::MAX_FAILURES
                    ),
                }
            }
            let wake = pairing.next_timeout().unwrap_or(deadline).min(deadline);
            tokio::select! {
                got = socket.recv_from(&mut inbuf) => {
                    if let Ok((n, from)) = got {
                        if from == remote {
                            pairing.handle(Instant::now(), &inbuf[..n]);
                        }
                    }
                }
                _ = tokio::time::sleep_until(wake.into()) => {
                    if Instant::now() >= deadline {
                        bail!("no pairing answer from {remote} in {} s: is `picam recv` running there and showing a pairing code? (after failed tries it answers only after a wait, up to a minute)", PAIR_TIMEOUT.as_secs());
                    }
                }
                _ = shutdown.wait() => bail!("pairing interrupted"),
            }
        }
    })
}

fn pair_as_receiver(
    listen: SocketAddr,
    shutdown: &Shutdown,
    show_code: &mut dyn FnMut(&str),
) -> Result<Option<Psk>> {
    runtime()?.block_on(async {
        let signals = tokio::spawn(crate::shutdown::watch_signals(shutdown.clone(), None));
        let socket = UdpSocket::bind(listen)
            .await
            .with_context(|| format!("binding {listen} (UDP) for pairing"))?;
        let mut inbuf = vec![0u8; 2048];
        // One code for the whole window: failed attempts never make a new one, so
        // nobody on the network can keep it changing under the person typing it.
        let code = pairing::new_code()?;
        let mut responder = PairResponder::new(&code, Instant::now());
        show_code(&code);
        let mut told_locked = false;
        let mut told_older = false;
        let result = loop {
            let now = Instant::now();
            responder.handle_timeout(now);
            match responder.state(now) {
                PairState::Paired => break Ok(responder.outcome().cloned()),
                PairState::Expired if responder.failures() >= pairing::MAX_FAILURES => break Err(anyhow::anyhow!(
                    "pairing stayed locked after {} failed attempts: start `picam recv` again to pair (it shows a new code)",
                    pairing::MAX_FAILURES
                )),
                PairState::Expired => break Err(anyhow::anyhow!(
                    "no sender paired within {} minutes: start `picam recv` again for a new code, then run `picam send --pair CODE` on the camera",
                    pairing::WINDOW.as_secs() / 60
                )),
                PairState::LockedOut if !told_locked => {
                    told_locked = true;
                    // Locked until the window ends, not until exit: a service manager
                    // restarting picam at once would otherwise hand out fresh attempts.
                    eprintln!();
                    eprintln!("    picam: PAIRING LOCKED: {} pairing attempts failed (someone may be guessing the code).", pairing::MAX_FAILURES);
                    eprintln!("    Nothing more is answered. To pair, stop `picam recv` (Ctrl-C) and start it again.");
                    eprintln!();
                }
                PairState::LockedOut | PairState::Waiting => {}
            }
            let wake = responder
                .next_timeout()
                .unwrap_or(now + pairing::WINDOW);
            tokio::select! {
                got = socket.recv_from(&mut inbuf) => {
                    let Ok((n, from)) = got else { continue };
                    if let Some(reply) = responder.handle(Instant::now(), Some(from), &inbuf[..n]) {
                        // Never more bytes out than came in (PAIR1 is padded for this).
                        if reply.len() <= n {
                            let _ = socket.send_to(&reply, from).await;
                        }
                    }
                    if responder.older_sender_seen() && !told_older {
                        told_older = true;
                        eprintln!("picam: {from} tries to pair with an older picam (its pairing request is of the earlier format): update picam on the camera, then pair again with the same code");
                    }
                }
                _ = tokio::time::sleep_until(wake.into()) => {}
                _ = shutdown.wait() => break Ok(None),
            }
        };
        signals.abort();
        result
    })
}

/// Prints a pairing code where a person will see it.
pub fn print_code(code: &str, listen: SocketAddr) {
    eprintln!();
    eprintln!("    picam pairing code:  {code}");
    eprintln!();
    eprintln!(
        "    On the camera, run:  picam send --pair {code} --remote <this machine's address>"
    );
    eprintln!(
        "    (listening on {listen} for {} minutes; Ctrl-C to stop)",
        pairing::WINDOW.as_secs() / 60
    );
    eprintln!();
}
