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
    /// The path is a directory, a FIFO, a device or a socket.
    #[error("key file {path} is not a regular file (it is a {what})")]
    NotRegular {
        /// The file.
        path: String,
        /// What it is instead.
        what: &'static str,
    },
    /// The file is far longer than a key: refused before reading it.
    #[error("key file {path} does not hold a picam key: it is {size} bytes, a key is 64 hex digits on one line")]
    TooLarge {
        /// The file.
        path: String,
        /// Its size.
        size: u64,
    },
    /// Writing a key through a symbolic link could overwrite whatever it points to.
    #[error("{path} is a symbolic link: refusing to write a key through it (remove it, or choose another path)")]
    Symlink {
        /// The link.
        path: String,
    },
    /// The file does not hold a key.
    #[error("key file {path} does not hold a picam key (expected 64 hex digits on one line)")]
    Format {
        /// The file.
        path: String,
    },
}

/// The most a key file may hold: 64 hex digits, a line end, and room for whitespace
/// around them. Anything longer is refused before it is read.
const MAX_KEY_FILE: u64 = 256;

/// What a file that is not a regular file is, for the message.
fn file_kind(kind: std::fs::FileType) -> &'static str {
    #[cfg(unix)]
    {
        use std::os::unix::fs::FileTypeExt;
        if kind.is_fifo() {
            return "FIFO";
        }
        if kind.is_socket() {
            return "socket";
        }
        if kind.is_block_device() || kind.is_char_device() {
            return "device";
        }
    }
    if kind.is_dir() {
        "directory"
    } else if kind.is_symlink() {
        "symbolic link"
    } else {
        "special file"
    }
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

    /// Reads a key file, refusing one that others can read, one that is not a regular
    /// file (a FIFO would block forever) and one longer than a key could be.
    pub fn read(path: &Path) -> Result<Self, KeyError> {
        let bytes = read_secret_file(path, MAX_KEY_FILE)?;
        let text = std::str::from_utf8(&bytes).ok();
        text.and_then(Self::from_hex).ok_or(KeyError::Format {
            path: path.display().to_string(),
        })
    }

    /// Writes the key to `path`, readable by its owner only, as [`write_secret_file`]
    /// does.
    pub fn write(&self, path: &Path) -> Result<(), KeyError> {
        write_secret_file(path, format!("{}\n", self.to_hex()).as_bytes())
    }
}

impl fmt::Debug for Psk {
    // Never print the key itself.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Psk({})", self.fingerprint())
    }
}

/// Reads a small secret file (a key, the web access token): refuses one that others can
/// read, one that is not a regular file (a FIFO would block forever) and one longer
/// than `max` bytes (unread). Shared by every file picam keeps a secret in.
pub fn read_secret_file(path: &Path, max: u64) -> Result<Vec<u8>, KeyError> {
    use std::io::Read;
    let shown = path.display().to_string();
    let io = |source| KeyError::Io {
        path: shown.clone(),
        source,
    };
    let mut options = std::fs::OpenOptions::new();
    options.read(true);
    #[cfg(unix)]
    {
        // Opening a FIFO for reading blocks until a writer comes; non-blocking, the
        // open returns and the check below refuses it.
        use std::os::unix::fs::OpenOptionsExt;
        options.custom_flags(libc::O_NONBLOCK);
    }
    let file = options.open(path).map_err(io)?;
    // Checked on the open file, so what is checked is what is read.
    let meta = file.metadata().map_err(io)?;
    if !meta.is_file() {
        return Err(KeyError::NotRegular {
            path: shown,
            what: file_kind(meta.file_type()),
        });
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = meta.permissions().mode();
        if mode & 0o077 != 0 {
            return Err(KeyError::Permissions {
                path: shown,
                mode: mode & 0o777,
            });
        }
    }
    if meta.len() > max {
        return Err(KeyError::TooLarge {
            path: shown,
            size: meta.len(),
        });
    }
    // At most one byte more than allowed, even if the file grew since.
    let mut bytes = Vec::new();
    file.take(max + 1).read_to_end(&mut bytes).map_err(io)?;
    Ok(bytes)
}

/// Writes a secret to `path`, readable by its owner only; the directory is created
/// (owner only). The bytes go to a new temporary file beside it (created exclusively,
/// never through a link), which then replaces `path` by a rename: a symbolic link at
/// `path` is refused, never followed, and a reader never sees half a secret.
pub fn write_secret_file(path: &Path, contents: &[u8]) -> Result<(), KeyError> {
    use std::io::Write;
    let shown = path.display().to_string();
    let io = |source| KeyError::Io {
        path: shown.clone(),
        source,
    };
    let dir = path.parent().filter(|d| !d.as_os_str().is_empty());
    if let Some(dir) = dir {
        let mut builder = std::fs::DirBuilder::new();
        builder.recursive(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::DirBuilderExt;
            builder.mode(0o700);
        }
        builder.create(dir).map_err(io)?;
    }
    match std::fs::symlink_metadata(path) {
        Ok(meta) if meta.file_type().is_symlink() => return Err(KeyError::Symlink { path: shown }),
        Ok(meta) if !meta.is_file() => {
            return Err(KeyError::NotRegular {
                path: shown,
                what: file_kind(meta.file_type()),
            })
        }
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(io(e)),
    }
    let name = path
        .file_name()
        .ok_or_else(|| KeyError::NotRegular {
            path: shown.clone(),
            what: "directory",
        })?
        .to_string_lossy();
    let mut tag = [0u8; 8];
    getrandom::getrandom(&mut tag).map_err(|e| KeyError::Random(e.to_string()))?;
    let tag: String = tag.iter().map(|b| format!("{b:02x}")).collect();
    let temp = dir
        .unwrap_or(Path::new("."))
        .join(format!(".{name}.{tag}.tmp"));
    let mut options = std::fs::OpenOptions::new();
    // create_new is O_CREAT|O_EXCL: it fails on any existing name, a link included.
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600).custom_flags(libc::O_NOFOLLOW);
    }
    let mut file = options.open(&temp).map_err(io)?;
    let written = file
        .write_all(contents)
        .and_then(|()| file.sync_all())
        .and_then(|()| std::fs::rename(&temp, path));
    if let Err(e) = written {
        let _ = std::fs::remove_file(&temp);
        return Err(io(e));
    }
    Ok(())
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

    #[cfg(unix)]
    #[test]
    fn refuses_directories_oversized_files_and_writing_through_links() {
        use std::os::unix::fs::PermissionsExt;
        let dir = std::env::temp_dir().join(format!("picam-key-odd-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("receiver.key")).unwrap();
        std::fs::set_permissions(
            dir.join("receiver.key"),
            std::fs::Permissions::from_mode(0o755),
        )
        .unwrap();
        let err = Psk::read(&dir.join("receiver.key")).unwrap_err();
        assert!(
            matches!(
                err,
                KeyError::NotRegular {
                    what: "directory",
                    ..
                }
            ),
            "{err}"
        );
        let key = Psk::generate().unwrap();
        assert!(matches!(
            key.write(&dir.join("receiver.key")),
            Err(KeyError::NotRegular { .. })
        ));

        let big = dir.join("big");
        let file = std::fs::File::create(&big).unwrap();
        file.set_len(1 << 40).unwrap(); // sparse: a terabyte that takes no disk
        file.set_permissions(std::fs::Permissions::from_mode(0o600))
            .unwrap();
        let err = Psk::read(&big).unwrap_err();
        assert!(
            matches!(err, KeyError::TooLarge { size, .. } if size == 1 << 40),
            "{err}"
        );

        let victim = dir.join("victim");
        std::fs::write(&victim, "precious\n").unwrap();
        std::fs::set_permissions(&victim, std::fs::Permissions::from_mode(0o644)).unwrap();
        let link = dir.join("link.key");
        std::os::unix::fs::symlink(&victim, &link).unwrap();
        let err = key.write(&link).unwrap_err();
        assert!(matches!(err, KeyError::Symlink { .. }), "{err}");
        assert_eq!(std::fs::read_to_string(&victim).unwrap(), "precious\n");
        assert_eq!(
            std::fs::metadata(&victim).unwrap().permissions().mode() & 0o777,
            0o644
        );
        // Writing over an existing key replaces it, owner-only, with no temporary left.
        let path = dir.join("k");
        Psk::generate().unwrap().write(&path).unwrap();
        key.write(&path).unwrap();
        assert_eq!(Psk::read(&path).unwrap(), key);
        let left: Vec<_> = std::fs::read_dir(&dir)
            .unwrap()
            .filter_map(|e| e.ok())
            .filter(|e| e.file_name().to_string_lossy().ends_with(".tmp"))
            .collect();
        assert!(left.is_empty(), "{left:?}");
        let _ = std::fs::remove_dir_all(dir);
    }
}
