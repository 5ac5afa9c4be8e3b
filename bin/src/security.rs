//! Which key a side uses, pairing, and `picam keygen`.
//!
//! Order of choice: `--insecure` (no encryption); `--key FILE`; `picam send --pair
//! CODE` (pairs, keeps the key); the key kept from an earlier pairing in the user's
//! config directory; else the receiver shows a pairing code and waits, and the sender
//! says how to pair. Pairing runs over UDP on the stream's port number.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use tokio::net::UdpSocket;
use transport::driver::{drive, Hooks};
use transport::secure::key::{read_secret_file, write_secret_file, KeyError};
use transport::secure::pairing::{
    self, PairEvent, PairInitiator, PairOutcome, PairResponder, PairState,
};
use transport::secure::Psk;
use transport::udp::UdpCarrier;
use transport::web::token::WebToken;
use transport::Machine;

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

/// The name of the web access token's file, beside the paired keys.
const WEB_TOKEN_FILE: &str = "web-token";

/// The most a token file may hold: 32 hex digits and a line end, with room for
/// whitespace; anything longer is refused unread.
const MAX_WEB_TOKEN_FILE: u64 = 256;

/// The browser viewer's access token (`picam send --web`): the one kept in the config
/// directory (file `web-token`, mode 0600), made there at first use, and replaced by a
/// new one when `renew` (`--web-token new`: links given out before stop working).
/// Kept rather than made per run, so a bookmarked link keeps working across restarts.
pub fn web_token(renew: bool) -> Result<WebToken> {
    web_token_in(&config_dir()?, renew)
}

/// [`web_token`] in `dir`.
fn web_token_in(dir: &Path, renew: bool) -> Result<WebToken> {
    let path = dir.join(WEB_TOKEN_FILE);
    if !renew {
        match read_secret_file(&path, MAX_WEB_TOKEN_FILE) {
            Ok(bytes) => {
                // The text is not shown on failure: it may be the token, damaged.
                let token = std::str::from_utf8(&bytes)
                    .ok()
                    .and_then(|text| text.parse::<WebToken>().ok());
                return token.with_context(|| {
                    format!(
                        "{} does not hold a web access token (32 hex digits on one line): run with `--web-token new` to replace it",
                        path.display()
                    )
                });
            }
            Err(KeyError::Io { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => {
                return Err(e).with_context(|| {
                    format!(
                        "reading the web access token (`--web-token new` replaces {})",
                        path.display()
                    )
                })
            }
        }
    }
    let token = WebToken::generate()?;
    write_secret_file(&path, format!("{token}\n").as_bytes())
        .context("keeping the web access token")?;
    tracing::info!(path = %path.display(), "made a new web access token");
    Ok(token)
}

/// The address to open in a browser: `http://IP:PORT/#t=TOKEN` (the token in the
/// fragment, which browsers never send to a server). For a bind on every address
/// (0.0.0.0 or ::), IP is the address this host would use to reach the LAN.
pub fn web_url(bind: SocketAddr, token: &WebToken) -> String {
    let ip = if bind.ip().is_unspecified() {
        lan_address(bind.is_ipv6())
    } else {
        bind.ip()
    };
    format!("http://{}/#t={token}", SocketAddr::new(ip, bind.port()))
}

/// The local address the routing table picks for a LAN-wide destination: "connecting"
/// a UDP socket only chooses a route and a source address, no packet is sent. The
/// destination is a documentation address (TEST-NET-1, 2001:db8::), reached by the
/// default route. Without a route (no network), loopback.
fn lan_address(v6: bool) -> IpAddr {
    let (local, probe, fallback): (SocketAddr, SocketAddr, IpAddr) = if v6 {
        (
            (Ipv6Addr::UNSPECIFIED, 0).into(),
            (Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1), 9).into(),
            Ipv6Addr::LOCALHOST.into(),
        )
    } else {
        (
            (Ipv4Addr::UNSPECIFIED, 0).into(),
            (Ipv4Addr::new(192, 0, 2, 1), 9).into(),
            Ipv4Addr::LOCALHOST.into(),
        )
    };
    std::net::UdpSocket::bind(local)
        .and_then(|socket| {
            socket.connect(probe)?;
            socket.local_addr()
        })
        .map(|addr| addr.ip())
        .ok()
        .filter(|ip| !ip.is_unspecified())
        .unwrap_or(fallback)
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

/// Connects a pairing machine to the one driver loop: it stops at the machine's
/// `Finished` (or at `deadline`, or shutdown); `on_event` sees every event.
struct PairHooks<F> {
    on_event: F,
    finished: bool,
    deadline: Option<Instant>,
    timed_out: bool,
    shutdown: tokio::sync::watch::Receiver<bool>,
}

impl<F> PairHooks<F> {
    fn new(on_event: F, deadline: Option<Instant>, shutdown: &Shutdown) -> Self {
        Self {
            on_event,
            finished: false,
            deadline,
            timed_out: false,
            shutdown: shutdown.watch(),
        }
    }
}

impl<M, F> Hooks<M> for PairHooks<F>
where
    M: Machine<Event = PairEvent>,
    F: FnMut(PairEvent),
{
    /// Pairing takes nothing from upstream: "the source ends" when it is over.
    type Item = ();

    fn next(&mut self) -> impl std::future::Future<Output = Option<()>> + Send {
        let (finished, deadline) = (self.finished, self.deadline);
        let timed_out = &mut self.timed_out;
        async move {
            if !finished {
                match deadline {
                    Some(at) => {
                        tokio::time::sleep_until(at.into()).await;
                        *timed_out = true;
                    }
                    None => std::future::pending().await,
                }
            }
            None
        }
    }

    fn try_next(&mut self) -> Option<()> {
        None
    }

    fn take(&mut self, _machine: &mut M, _now: Instant, _item: ()) {}

    fn on_event(&mut self, _machine: &mut M, event: PairEvent) {
        self.finished |= event == PairEvent::Finished;
        (self.on_event)(event);
    }

    fn publish(&mut self, _machine: &M) {}

    fn shutdown(&self) -> tokio::sync::watch::Receiver<bool> {
        self.shutdown.clone()
    }
}

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
        // Answers count only from the receiver we pair with.
        let mut carrier = UdpCarrier::new(socket, Some(remote), None).only_from(remote);
        let mut hooks = PairHooks::new(|_| {}, Some(Instant::now() + PAIR_TIMEOUT), shutdown);
        drive(&mut pairing, &mut carrier, &mut hooks).await;
        if pairing.is_finished() {
            return match pairing.outcome() {
                Some(PairOutcome::Paired(key)) => Ok(key.clone()),
                _ => bail!(
                    "pairing with {remote} failed: the code does not match the one `picam recv` shows there (type it again; after {} failed tries it stops answering until restarted)",
                    pairing::MAX_FAILURES
                ),
            };
        }
        if hooks.timed_out {
            bail!("no pairing answer from {remote} in {} s: is `picam recv` running there and showing a pairing code? (after failed tries it answers only after a wait, up to a minute)", PAIR_TIMEOUT.as_secs());
        }
        bail!("pairing interrupted")
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
        // One code for the whole window: failed attempts never make a new one, so
        // nobody on the network can keep it changing under the person typing it.
        let code = pairing::new_code()?;
        let mut responder = PairResponder::new(&code, Instant::now());
        show_code(&code);
        let tell = |event| match event {
            PairEvent::LockedOut => {
                // Locked until the window ends, not until exit: a service manager
                // restarting picam at once would otherwise hand out fresh attempts.
                eprintln!();
                eprintln!("    picam: PAIRING LOCKED: {} pairing attempts failed (someone may be guessing the code).", pairing::MAX_FAILURES);
                eprintln!("    Nothing more is answered. To pair, stop `picam recv` (Ctrl-C) and start it again.");
                eprintln!();
            }
            PairEvent::OlderSender => eprintln!("picam: a sender tries to pair with an older picam (its pairing request is of the earlier format): update picam on the camera, then pair again with the same code"),
            PairEvent::Finished => {}
        };
        // Each answer goes back to its request's source.
        let mut carrier = UdpCarrier::new(socket, None, None);
        let mut hooks = PairHooks::new(tell, None, shutdown);
        drive(&mut responder, &mut carrier, &mut hooks).await;
        let result = match responder.state(Instant::now()) {
            PairState::Paired => Ok(responder.outcome().cloned()),
            PairState::Expired if responder.failures() >= pairing::MAX_FAILURES => Err(anyhow::anyhow!(
                "pairing stayed locked after {} failed attempts: start `picam recv` again to pair (it shows a new code)",
                pairing::MAX_FAILURES
            )),
            PairState::Expired => Err(anyhow::anyhow!(
                "no sender paired within {} minutes: start `picam recv` again for a new code, then run `picam send --pair CODE` on the camera",
                pairing::WINDOW.as_secs() / 60
            )),
            // Shutdown.
            PairState::LockedOut | PairState::Waiting => Ok(None),
        };
        signals.abort();
        result
    })
}

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

#[cfg(test)]
mod tests {
    use super::*;

    /// A fresh directory standing in for the config directory (`PICAM_CONFIG_DIR`):
    /// passed in rather than set in the environment, which tests share across threads.
    fn temp_config_dir(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("picam-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        dir
    }

    #[test]
    fn the_web_token_is_made_once_kept_private_and_replaced_on_request() {
        let dir = temp_config_dir("web-token");
        let first = web_token_in(&dir, false).unwrap();
        let path = dir.join(WEB_TOKEN_FILE);
        assert_eq!(
            std::fs::read_to_string(&path).unwrap(),
            format!("{first}\n")
        );
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        assert_eq!(web_token_in(&dir, false).unwrap(), first);
        let renewed = web_token_in(&dir, true).unwrap();
        assert_ne!(renewed, first);
        assert_eq!(web_token_in(&dir, false).unwrap(), renewed);

        std::fs::write(&path, "not a token\n").unwrap();
        let err = format!("{:#}", web_token_in(&dir, false).unwrap_err());
        assert!(err.contains("does not hold a web access token"), "{err}");
        assert!(
            err.contains("--web-token new") && !err.contains("not a token"),
            "{err}"
        );
        assert!(web_token_in(&dir, true).is_ok());
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[cfg(unix)]
    #[test]
    fn the_web_token_file_gets_the_key_files_checks() {
        use std::os::unix::fs::PermissionsExt;
        let dir = temp_config_dir("web-token-odd");
        let token = web_token_in(&dir, false).unwrap();
        let path = dir.join(WEB_TOKEN_FILE);
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let err = format!("{:#}", web_token_in(&dir, false).unwrap_err());
        assert!(err.contains("readable by others"), "{err}");

        std::fs::remove_file(&path).unwrap();
        let victim = dir.join("victim");
        std::fs::write(&victim, "precious\n").unwrap();
        std::os::unix::fs::symlink(&victim, &path).unwrap();
        let err = format!("{:#}", web_token_in(&dir, true).unwrap_err());
        assert!(err.contains("symbolic link"), "{err}");
        assert_eq!(std::fs::read_to_string(&victim).unwrap(), "precious\n");

        std::fs::remove_file(&path).unwrap();
        std::fs::create_dir(&path).unwrap();
        assert!(web_token_in(&dir, false).is_err());
        std::fs::remove_dir(&path).unwrap();

        let file = std::fs::File::create(&path).unwrap();
        file.set_len(1 << 30).unwrap();
        file.set_permissions(std::fs::Permissions::from_mode(0o600))
            .unwrap();
        let err = format!("{:#}", web_token_in(&dir, false).unwrap_err());
        assert!(err.contains("1073741824 bytes"), "{err}");
        assert_ne!(web_token_in(&dir, true).unwrap(), token);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn the_web_url_names_a_reachable_address_and_carries_the_token() {
        let token: WebToken = "00112233445566778899aabbccddeeff".parse().unwrap();
        let cases = [
            (
                "127.0.0.1:8080",
                "http://127.0.0.1:8080/#t=00112233445566778899aabbccddeeff",
            ),
            (
                "192.168.1.20:80",
                "http://192.168.1.20:80/#t=00112233445566778899aabbccddeeff",
            ),
            (
                "[::1]:8443",
                "http://[::1]:8443/#t=00112233445566778899aabbccddeeff",
            ),
            (
                "[fd00::5]:9000",
                "http://[fd00::5]:9000/#t=00112233445566778899aabbccddeeff",
            ),
        ];
        for (bind, want) in cases {
            assert_eq!(web_url(bind.parse().unwrap(), &token), want);
        }
        for bind in ["0.0.0.0:8080", "[::]:8080"] {
            let bind: SocketAddr = bind.parse().unwrap();
            let url = web_url(bind, &token);
            let rest = url.strip_prefix("http://").unwrap();
            let (host, fragment) = rest.split_once('/').unwrap();
            assert_eq!(fragment, "#t=00112233445566778899aabbccddeeff");
            let host: SocketAddr = host.parse().unwrap_or_else(|e| panic!("{url}: {e}"));
            assert_eq!(host.port(), 8080);
            assert_eq!(host.is_ipv6(), bind.is_ipv6(), "{url}");
            assert!(!host.ip().is_unspecified(), "{url}");
        }
    }
}
