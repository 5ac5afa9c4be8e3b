//! The pre-shared key: made by pairing or `picam keygen`, kept in a file only its owner
//! can read.

use std::fmt;
use std::path::Path;

/// A 32-byte pre-shared key.
#[derive(Clone, PartialEq, Eq)]
pub struct Psk(pub(crate) [u8; 32]);

/// Why a key could not be made, read or written.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// The operating system's random source failed.
    #[error("no randomness from the operating system: {0}")]
    Random(String),
    /// The file could not be read or written.
    #[error("key file {path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The operating system's error.
        source: std::io::Error,
    },
    /// The file is readable by others: someone else may have the key.
    #[error("key file {path} is readable by others (mode {mode:o}): run `chmod 600 {path}`, and make a new key if others may have read it")]
    Permissions {
        /// The file.
        path: String,
        /// Its permission bits.
        mode: u32,
    },
    /// The file does not hold a key.
    #[error("key file {path} does not hold a picam key (expected 64 hex digits on one line)")]
    Format {
        /// The file.
        path: String,
    },
}

impl Psk {
    /// A new random key.
    pub fn generate() -> Result<Self, KeyError> {
        let mut key = [0u8; 32];
        getrandom::getrandom(&mut key).map_err(|e| KeyError::Random(e.to_string()))?;
        Ok(Self(key))
    }

    /// A key from its 32 bytes.
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }

    /// The key as 64 lowercase hex digits.
    pub fn to_hex(&self) -> String {
        self.0.iter().map(|b| format!("{b:02x}")).collect()
    }

    /// Parses 64 hex digits (surrounding whitespace ignored).
    pub fn from_hex(text: &str) -> Option<Self> {
        let text = text.trim();
        if text.len() != 64 || !text.is_ascii() {
            return None;
        }
        let mut key = [0u8; 32];
        for (i, byte) in key.iter_mut().enumerate() {
            *byte = u8::from_str_radix(&text[2 * i..2 * i + 2], 16).ok()?;
        }
        Some(Self(key))
    }

    /// A short fingerprint for logs and for comparing two sides by eye (never the key).
    pub fn fingerprint(&self) -> String {
        use sha2::{Digest, Sha256};
        let digest = Sha256::digest([b"picam key fingerprint".as_slice(), &self.0].concat());
        digest[..4].iter().map(|b| format!("{b:02x}")).collect()
    }

    /// Reads a key file, refusing one that others can read.
    pub fn read(path: &Path) -> Result<Self, KeyError> {
        let shown = path.display().to_string();
        let io = |source| KeyError::Io {
            path: shown.clone(),
            source,
        };
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(path).map_err(io)?.permissions().mode();
            if mode & 0o077 != 0 {
                return Err(KeyError::Permissions {
                    path: shown,
                    mode: mode & 0o777,
                });
            }
        }
        let text = std::fs::read_to_string(path).map_err(io)?;
        Self::from_hex(&text).ok_or(KeyError::Format { path: shown })
    }

    /// Writes the key to `path`, readable by its owner only; the directory is created.
    pub fn write(&self, path: &Path) -> Result<(), KeyError> {
        let shown = path.display().to_string();
        let io = |source| KeyError::Io {
            path: shown.clone(),
            source,
        };
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(io)?;
        }
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create(true).truncate(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            options.mode(0o600);
        }
        use std::io::Write;
        let mut file = options.open(path).map_err(io)?;
        // An existing file keeps its mode on open: make sure it is ours only.
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            file.set_permissions(std::fs::Permissions::from_mode(0o600))
                .map_err(io)?;
        }
        writeln!(file, "{}", self.to_hex()).map_err(io)
    }
}

impl fmt::Debug for Psk {
    // Never print the key itself.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Psk({})", self.fingerprint())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_through_a_private_file_and_refuses_a_shared_one() {
        let dir = std::env::temp_dir().join(format!("picam-key-{}", std::process::id()));
        let path = dir.join("k");
        let key = Psk::generate().unwrap();
        key.write(&path).unwrap();
        assert_eq!(Psk::read(&path).unwrap(), key);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
            let err = Psk::read(&path).unwrap_err().to_string();
            assert!(
                err.contains("readable by others") && err.contains("644"),
                "{err}"
            );
        }
        std::fs::write(&path, "not a key\n").unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        }
        assert!(matches!(Psk::read(&path), Err(KeyError::Format { .. })));
        let _ = std::fs::remove_dir_all(dir);
        assert!(!format!("{key:?}").contains(&key.to_hex()));
        assert_eq!(Psk::from_hex(&key.to_hex()), Some(key));
        assert_eq!(Psk::from_hex("zz"), None);
    }
}
