//! Three network namespaces (sender, router, receiver) joined by veth pairs, for tests
//! on the real kernel path: an nftables forward chain on the router (a counter of every
//! forwarded packet, and an optional drop rule) and an optional `tbf` rate limit on the
//! router's link toward the receiver. Used by `loss_netns.rs` and `web_netns.rs`.
//!
//! Each test picks its own `family` letter and subnet so that tests in different
//! binaries can run at once: namespaces are `picam-{family}{snd,rtr,rcv}-{tag}-{pid}`,
//! links `{family}{family}s0` (sender), `..r0`/`..r1` (router), `..v0` (receiver), and
//! addresses `10.{subnet}.1.1` (sender), `10.{subnet}.1.2`/`.2.1` (router),
//! `10.{subnet}.2.2` (receiver). Everything is removed on drop.

use std::process::{Command, Stdio};

use super::{Picam, Scratch};

/// The namespaces, removed on drop.
pub struct Topology {
    /// Sender, router and receiver namespace names.
    pub ns: [String; 3],
    family: String,
    subnet: u8,
}

/// Runs `program args`; its stdout, or an error naming the command and its stderr.
pub fn run_cmd(program: &str, args: &[&str]) -> Result<String, String> {
    let out = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("{program}: {e}"))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(format!(
            "{program} {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

/// `ip ARGS`.
pub fn ip(args: &[&str]) -> Result<String, String> {
    run_cmd("ip", args)
}

/// `ip netns exec NS ARGS`.
pub fn in_ns(ns: &str, args: &[&str]) -> Result<String, String> {
    let mut full = vec!["netns", "exec", ns];
    full.extend_from_slice(args);
    ip(&full)
}

impl Topology {
    /// Builds the namespaces for test `tag`: `family` (one letter) and `subnet` (the
    /// second octet of 10.x) keep them apart from other tests' (see the module doc).
    /// The router forwards and counts, dropping nothing yet ([`Topology::set_loss`]).
    pub fn new(family: &str, subnet: u8, tag: &str) -> Result<Self, String> {
        let id = std::process::id() % 100_000;
        let ns = ["snd", "rtr", "rcv"].map(|r| format!("picam-{family}{r}-{tag}-{id}"));
        // Built before the first namespace exists so that a failure half-way removes
        // whatever was created.
        let topo = Topology {
            ns: ns.clone(),
            family: family.to_string(),
            subnet,
        };
        for n in &ns {
            ip(&["netns", "add", n])?;
            in_ns(n, &["ip", "link", "set", "lo", "up"])?;
        }
        let [snd, rtr, rcv] = &ns;
        let (s0, r0, r1, v0) = (
            topo.link("s0"),
            topo.link("r0"),
            topo.link("r1"),
            topo.link("v0"),
        );
        // Private test subnets that exist only inside these namespaces; no default route.
        ip(&[
            "link", "add", &s0, "netns", snd, "type", "veth", "peer", "name", &r0, "netns", rtr,
        ])?;
        ip(&[
            "link", "add", &r1, "netns", rtr, "type", "veth", "peer", "name", &v0, "netns", rcv,
        ])?;
        let net = |host: &str| format!("10.{subnet}.{host}");
        in_ns(snd, &["ip", "addr", "add", &net("1.1/24"), "dev", &s0])?;
        in_ns(rtr, &["ip", "addr", "add", &net("1.2/24"), "dev", &r0])?;
        in_ns(rtr, &["ip", "addr", "add", &net("2.1/24"), "dev", &r1])?;
        in_ns(rcv, &["ip", "addr", "add", &net("2.2/24"), "dev", &v0])?;
        // A real link carries single packets: a GSO batch (the senders' UDP carrier
        // joins up to 64) is cut into them as it leaves its host, not forwarded whole,
        // or the router's random loss would drop a whole frame's batch at once.
        for (n, dev) in [(snd, &s0), (rcv, &v0)] {
            in_ns(n, &["ip", "link", "set", dev, "gso_max_segs", "1"])?;
        }
        for (n, dev) in [(snd, &s0), (rtr, &r0), (rtr, &r1), (rcv, &v0)] {
            in_ns(n, &["ip", "link", "set", dev, "up"])?;
        }
        in_ns(rtr, &["sysctl", "-qw", "net.ipv4.ip_forward=1"])?;
        in_ns(
            snd,
            &["ip", "route", "add", &net("2.0/24"), "via", &net("1.2")],
        )?;
        in_ns(
            rcv,
            &["ip", "route", "add", &net("1.0/24"), "via", &net("2.1")],
        )?;
        // The router's forward-hook chain, where `set_loss` puts its rules. (The chain is
        // not called `fwd`: that is a keyword in nft 1.0.6.)
        in_ns(rtr, &["nft", "add", "table", "inet", "picamloss"])?;
        in_ns(
            rtr,
            &[
                "nft",
                "add",
                "chain",
                "inet",
                "picamloss",
                "loss",
                "{ type filter hook forward priority 0 ; }",
            ],
        )?;
        topo.set_loss(&[])?;
        Ok(topo)
    }

    fn link(&self, end: &str) -> String {
        format!("{0}{0}{end}", self.family)
    }

    /// The sender's address (`10.{subnet}.1.1`).
    pub fn sender_addr(&self) -> String {
        format!("10.{}.1.1", self.subnet)
    }

    /// The receiver's address (`10.{subnet}.2.2`).
    pub fn receiver_addr(&self) -> String {
        format!("10.{}.2.2", self.subnet)
    }

    /// Replaces the router's loss rule: a counter of every forwarded packet, then
    /// `selector` (an nft match, e.g. `numgen random mod 1000 < 20`) counted and dropped.
    /// An empty `selector` drops nothing.
    pub fn set_loss(&self, selector: &[&str]) -> Result<(), String> {
        let rtr = self.ns[1].as_str();
        let chain = ["inet", "picamloss", "loss"];
        in_ns(rtr, &[&["nft", "flush", "chain"][..], &chain].concat())?;
        in_ns(
            rtr,
            &[&["nft", "add", "rule"][..], &chain, &["counter"]].concat(),
        )?;
        if !selector.is_empty() {
            in_ns(
                rtr,
                &[
                    &["nft", "add", "rule"][..],
                    &chain,
                    selector,
                    &["counter", "drop"],
                ]
                .concat(),
            )?;
        }
        Ok(())
    }

    /// Limits the router's link toward the receiver to `rate` (tc syntax, `3mbit`) with
    /// `latency` of queue (`400ms`): a `tbf` qdisc, the "traffic jam" of `jam_netns.rs`.
    pub fn limit_rate(&self, rate: &str, latency: &str) -> Result<(), String> {
        let dev = self.link("r1");
        in_ns(
            &self.ns[1],
            &[
                "tc", "qdisc", "replace", "dev", &dev, "root", "tbf", "rate", rate, "burst",
                "32kbit", "latency", latency,
            ],
        )?;
        Ok(())
    }

    /// (packets forwarded or dropped, packets dropped) by the router so far.
    pub fn counters(&self) -> Result<(u64, u64), String> {
        let listing = in_ns(
            &self.ns[1],
            &["nft", "list", "chain", "inet", "picamloss", "loss"],
        )?;
        let packets: Vec<u64> = listing
            .split_whitespace()
            .collect::<Vec<_>>()
            .windows(2)
            .filter(|w| w[0] == "packets")
            .filter_map(|w| w[1].parse().ok())
            .collect();
        match packets[..] {
            [total, dropped] => Ok((total, dropped)),
            [total] => Ok((total, 0)),
            _ => Err(format!("unexpected nft listing:\n{listing}")),
        }
    }
}

impl Drop for Topology {
    fn drop(&mut self) {
        for n in &self.ns {
            let _ = ip(&["netns", "delete", n]);
        }
    }
}

/// Starts `cmd` (picam, possibly through `ip netns exec`) with its output in the scratch
/// directory as `NAME.out` and `NAME.err`, logging at info (the readiness line); killed
/// on drop if a test panics.
pub fn start_logged(scratch: &Scratch, name: &str, mut cmd: Command) -> Picam {
    let stdout = scratch.path(&format!("{name}.out"));
    let stderr = scratch.path(&format!("{name}.err"));
    let child = cmd
        .env("PICAM_LOG", "info")
        .env("PICAM_CONFIG_DIR", scratch.path("config"))
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&stdout).unwrap())
        .stderr(std::fs::File::create(&stderr).unwrap())
        .spawn()
        .unwrap_or_else(|e| panic!("start {name}: {e}"));
    Picam {
        child,
        stdout,
        stderr,
    }
}
