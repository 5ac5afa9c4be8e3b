//! What a test needs from the machine, said in one place.
//!
//! A test that needs a tool (`gst-launch-1.0`, `nft`), root, or a display calls
//! [`require`] (or one of its shorthands) first. When the prerequisite is there it
//! returns `true` and the test runs. When it is missing:
//! - under CI (`CI=true`, which CI sets), the test **fails**, naming what is missing and
//!   how to get it: a green CI run means every test ran;
//! - elsewhere it returns `false` after a banner written straight to the terminal's
//!   stderr (not through `eprintln!`, which the test harness captures and hides for a
//!   passing test), so a developer sees what did not run.

#![forbid(unsafe_code)]

use std::io::Write;
use std::path::Path;

/// Whether this run is CI's: `CI` set to `true` or `1`.
pub fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v.eq_ignore_ascii_case("true") || v == "1")
}

/// `test` needs `what`; `available` says whether it is here, `hint` how to get it.
/// Returns whether the test may run; panics under CI when it may not.
pub fn require(test: &str, available: bool, what: &str, hint: &str) -> bool {
    if available {
        return true;
    }
    let message = format!("{test}: needs {what} ({hint})");
    if in_ci() {
        panic!("MISSING under CI=true: {message}");
    }
    // Straight to the process's stderr: libtest captures only the print macros.
    let _ = writeln!(
        std::io::stderr().lock(),
        "\n################ SKIPPED ################\n{message}\n#########################################"
    );
    false
}

/// Whether `program` is an executable file on `PATH` (no need to run it: some tools
/// have no `--version`).
pub fn on_path(program: &str) -> bool {
    let Some(path) = std::env::var_os("PATH") else {
        return false;
    };
    std::env::split_paths(&path).any(|dir| is_executable(&dir.join(program)))
}

fn is_executable(file: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(file).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// [`require`] for each program in `programs`, found on `PATH`; `hint` names the
/// packages (the test suite's `scripts/install-deps.sh --test` installs them all).
pub fn require_tools(test: &str, programs: &[&str], hint: &str) -> bool {
    programs
        .iter()
        .all(|p| require(test, on_path(p), &format!("`{p}` on PATH"), hint))
}

/// Whether this process runs as root (effective uid 0), read from `/proc/self/status`
/// so that no `unsafe` libc call is needed.
pub fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status").is_ok_and(|status| {
        status
            .lines()
            .find_map(|l| l.strip_prefix("Uid:"))
            .and_then(|ids| ids.split_whitespace().nth(1))
            == Some("0")
    })
}

/// [`require`] root, for `why` (network namespaces, qdiscs, nftables).
pub fn require_root(test: &str, why: &str) -> bool {
    require(test, is_root(), "root", why)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_program_that_exists_is_found_and_one_that_does_not_is_not() {
        assert!(on_path("sh"));
        assert!(!on_path("picam-no-such-program-here"));
    }

    #[test]
    fn root_is_read_from_proc() {
        // The same answer as the effective uid `id -u` prints.
        let id = std::process::Command::new("id").arg("-u").output().unwrap();
        let uid = String::from_utf8_lossy(&id.stdout).trim().to_string();
        assert_eq!(is_root(), uid == "0");
    }

    #[test]
    fn an_available_prerequisite_runs_the_test() {
        assert!(require("t", true, "x", "y"));
    }
}
