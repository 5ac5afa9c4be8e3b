//! Keys on a real stream (issue 10): real `picam` processes on loopback, bounded in
//! time, killed on drop. Wrong key, no key, `--insecure` on one side only, pairing with
//! a wrong code, a key file others can read. Attacks on a running stream are in
//! `security_attacks.rs`.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::{Duration, Instant};

use common::keyed::*;
use common::{free_port, keygen_named, spawn, spawn_in, Scratch};

/// (a) Sender and receiver with different keys: nothing shown, the receiver counts the
/// packets that do not authenticate and says why.
#[test]
fn wrong_key_shows_nothing_and_says_why() {
    let _serial = one_at_a_time();
    let scratch = Scratch::new("sec-wrong-key");
    let (k1, k2) = (keygen_named(&scratch, "k1"), keygen_named(&scratch, "k2"));
    let port = free_port().to_string();
    let y4m = scratch.path("shown.y4m");
    let (recv, send) = start_pair(
        &scratch,
        (&port, "udp", &y4m),
        ("7", &["--key", &k1]),
        ("5", &["--key", &k2]),
    );
    let (send_ok, _, send_err) = send.wait(LIMIT);
    let (recv_ok, recv_out, recv_err) = recv.wait(LIMIT);
    assert!(send_ok && recv_ok, "{send_err}\n{recv_err}");
    assert_eq!(pictures(&y4m).len(), 0, "pictures shown under another key");
    let last = last_record(&recv_out);
    assert_eq!(num(&last["frames_shown"]), 0, "{last}");
    assert!(
        num(&last["secure"]["unauthenticated"]) > 0,
        "unauthenticated packets not counted: {last}"
    );
    assert!(
        recv_err.contains("another key"),
        "the receiver does not say the sender has another key:\n{recv_err}"
    );
    assert!(
        send_err.contains("no answer to the encrypted handshake"),
        "the sender does not say nobody answers:\n{send_err}"
    );
}

/// (b) No key, no `--pair`, no `--insecure`: the sender fails at once and says how to
/// pair.
#[test]
fn sender_without_a_key_fails_at_once() {
    let scratch = Scratch::new("sec-no-key");
    let port = free_port().to_string();
    let begun = Instant::now();
    let send = spawn(
        &scratch,
        "send",
        &["send", "--remote", "127.0.0.1", "--port", &port],
    );
    let (ok, _, err) = send.wait(Duration::from_secs(20));
    let took = begun.elapsed();
    assert!(!ok, "picam send without a key succeeded:\n{err}");
    assert!(took < Duration::from_secs(5), "took {took:?} to fail");
    assert!(
        err.contains("not paired with a receiver yet") && err.contains("--pair"),
        "{err}"
    );
}

/// (c) `--insecure` on one side only: nothing shown, and a warning naming `--insecure`
/// (never a silent black screen).
fn one_side_insecure(insecure_sender: bool) {
    let _serial = one_at_a_time();
    let tag = if insecure_sender {
        "plain-send"
    } else {
        "plain-recv"
    };
    let scratch = Scratch::new(&format!("sec-{tag}"));
    let key = common::key(&scratch);
    let port = free_port().to_string();
    let y4m = scratch.path("shown.y4m");
    let keyed = ["--key", key.as_str()];
    let plain = ["--insecure"];
    let (send_sec, recv_sec): (&[&str], &[&str]) = if insecure_sender {
        (&plain, &keyed)
    } else {
        (&keyed, &plain)
    };
    let (recv, send) = start_pair(
        &scratch,
        (&port, "udp", &y4m),
        ("7", recv_sec),
        ("5", send_sec),
    );
    let (send_ok, _, send_err) = send.wait(LIMIT);
    let (recv_ok, recv_out, recv_err) = recv.wait(LIMIT);
    assert!(send_ok && recv_ok, "{send_err}\n{recv_err}");
    assert_eq!(pictures(&y4m).len(), 0, "{tag}: pictures shown");
    let last = last_record(&recv_out);
    assert_eq!(num(&last["frames_shown"]), 0, "{last}");
    // The receiver is where a person looks at the black screen: it must say why.
    assert!(
        recv_err.contains("--insecure") && recv_err.contains("WARN"),
        "{tag}: the receiver does not name --insecure:\n{recv_err}"
    );
    if insecure_sender {
        assert!(
            num(&last["secure"]["plaintext_refused"]) > 0,
            "{tag}: plaintext packets not counted: {last}"
        );
    } else {
        assert!(
            send_err.contains("--insecure"),
            "{tag}: the sender does not name --insecure:\n{send_err}"
        );
    }
    eprintln!("{tag}: receiver stats {last}");
}

#[test]
fn insecure_sender_and_keyed_receiver_say_so() {
    one_side_insecure(true);
}

#[test]
fn keyed_sender_and_insecure_receiver_say_so() {
    one_side_insecure(false);
}

/// The eight digits of `code` with the last one changed.
fn wrong_code(code: &str) -> String {
    let mut chars: Vec<char> = code.chars().collect();
    let last = chars.iter().rposition(|c| c.is_ascii_digit()).unwrap();
    let d = chars[last].to_digit(10).unwrap();
    chars[last] = char::from_digit((d + 1) % 10, 10).unwrap();
    chars.into_iter().collect()
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .permissions()
        .mode()
        & 0o777
}

/// (d) Pairing: a wrong code is refused with a message saying so and the code stays;
/// the right one pairs, pictures flow, and both sides keep the key, mode 0600.
#[test]
fn pairing_refuses_a_wrong_code_then_pairs_with_the_right_one() {
    let _serial = one_at_a_time();
    let scratch = Scratch::new("sec-pair");
    let (recv_dir, send_dir) = (scratch.path("recv-config"), scratch.path("send-config"));
    let port = free_port().to_string();
    let y4m = scratch.path("shown.y4m");
    let recv = spawn_in(
        &scratch,
        "recv",
        &strs(&recv_args(&port, "udp", "60", &y4m, &[])),
        &recv_dir,
    );
    let err = wait_for(&recv, "picam pairing code:", Duration::from_secs(15));
    let code = err
        .lines()
        .find_map(|l| l.trim().strip_prefix("picam pairing code:"))
        .unwrap_or_else(|| panic!("no pairing code shown:\n{err}"))
        .trim()
        .to_string();
    let bad = wrong_code(&code);

    let (ok, _, bad_err) = spawn_in(
        &scratch,
        "send-bad",
        &strs(&send_args(&port, "udp", "3", &["--pair", &bad])),
        &send_dir,
    )
    .wait(Duration::from_secs(40));
    assert!(
        !ok,
        "pairing with the wrong code {bad} (right: {code}) succeeded"
    );
    assert!(
        bad_err.contains("the code does not match"),
        "wrong code: {bad_err}"
    );
    assert!(
        !send_dir.join("sender.key").exists(),
        "a key kept after a wrong code"
    );
    // A wrong try keeps the code: the person retypes the one on the screen.
    let shown = recv.stderr_now().matches("picam pairing code:").count();
    assert_eq!(shown, 1, "a new code after one wrong try");

    let (ok, send_out, send_err) = spawn_in(
        &scratch,
        "send-good",
        &strs(&send_args(&port, "udp", "3", &["--pair", &code])),
        &send_dir,
    )
    .wait(Duration::from_secs(40));
    assert!(ok, "pairing with the right code {code} failed:\n{send_err}");
    std::thread::sleep(Duration::from_millis(500));
    recv.terminate();
    let (recv_ok, recv_out, recv_err) = recv.wait(Duration::from_secs(20));
    assert!(recv_ok, "{recv_err}");
    let shown = pictures(&y4m);
    let sent = num(&last_record(&send_out)["frames_sent"]);
    assert!(
        shown.len() >= 45,
        "{} pictures shown of {sent} sent after pairing:\n{recv_err}",
        shown.len()
    );
    assert_in_order(&shown);
    for key in [recv_dir.join("receiver.key"), send_dir.join("sender.key")] {
        assert_eq!(mode(&key), 0o600, "{}", key.display());
    }
    assert_eq!(
        std::fs::read(recv_dir.join("receiver.key")).unwrap(),
        std::fs::read(send_dir.join("sender.key")).unwrap(),
        "both sides keep the same key"
    );
    eprintln!(
        "paired with {code}; {} shown of {sent}; {}",
        shown.len(),
        last_record(&recv_out)
    );
}

/// (e) A key file others can read is refused on both sides, naming the file and the fix.
#[test]
fn key_file_readable_by_others_is_refused() {
    let scratch = Scratch::new("sec-perms");
    let key = keygen_named(&scratch, "k");
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).unwrap();
    let port = free_port().to_string();
    for side in ["send", "recv"] {
        let args = match side {
            "send" => send_args(&port, "udp", "2", &["--key", &key]),
            _ => recv_args(&port, "udp", "2", &scratch.path("x.y4m"), &["--key", &key]),
        };
        let (ok, _, err) = spawn(&scratch, side, &strs(&args)).wait(Duration::from_secs(20));
        assert!(!ok, "{side} accepted a key file with mode 0644");
        assert!(
            err.contains(&key) && err.contains("chmod 600"),
            "{side}: {err}"
        );
    }
}
