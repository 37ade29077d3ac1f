//! The development key file: when no encryption key is configured outside production, the
//! store creates one random key in a file (mode 0600) on first start and reuses it.
//!
//! The file holds the base64 of 32 bytes and nothing else, so it can be pasted into
//! `store.encryption.keys.dev` when moving to configured keys (rows keep key id `dev`).

use std::fs;
use std::io::{ErrorKind, Write};
use std::path::Path;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;

use super::StoreError;
use super::cipher::{KEY_LEN, decode_key, random_key};

/// Key id of rows sealed with the development key.
pub const DEV_KEY_ID: &str = "dev";

pub(crate) fn load_or_create(path: &Path) -> Result<[u8; KEY_LEN], StoreError> {
    match fs::read_to_string(path) {
        Ok(text) => return parse(path, &text),
        Err(e) if e.kind() == ErrorKind::NotFound => {}
        Err(e) => return Err(file_error(path, "cannot read", &e)),
    }
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        fs::create_dir_all(dir).map_err(|e| file_error(dir, "cannot create directory", &e))?;
    }
    let key = random_key()?;
    // Write a private temporary file completely, then link it into place: a process starting
    // at the same moment either sees no file or a whole one, and exactly one key wins.
    let tmp = path.with_extension(format!("tmp-{}", std::process::id()));
    let _ = fs::remove_file(&tmp);
    let written = (|| {
        let mut file = create_private(&tmp)?;
        file.write_all(format!("{}\n", STANDARD.encode(key)).as_bytes())?;
        file.sync_all()
    })();
    if let Err(e) = written {
        let _ = fs::remove_file(&tmp);
        return Err(file_error(&tmp, "cannot write", &e));
    }
    let linked = fs::hard_link(&tmp, path);
    let _ = fs::remove_file(&tmp);
    match linked {
        Ok(()) => {
            tracing::warn!(
                path = %path.display(),
                "created a development encryption key for the store; configure store.encryption.keys for production"
            );
            Ok(key)
        }
        Err(e) if e.kind() == ErrorKind::AlreadyExists => {
            let text = fs::read_to_string(path).map_err(|e| file_error(path, "cannot read", &e))?;
            parse(path, &text)
        }
        Err(e) => Err(file_error(path, "cannot create", &e)),
    }
}

fn parse(path: &Path, text: &str) -> Result<[u8; KEY_LEN], StoreError> {
    warn_if_shared(path);
    decode_key(text)
        .map_err(|m| StoreError::Config(format!("dev key file {}: {m}", path.display())))
}

#[cfg(unix)]
fn create_private(path: &Path) -> std::io::Result<fs::File> {
    use std::os::unix::fs::OpenOptionsExt;
    fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
}

#[cfg(not(unix))]
fn create_private(path: &Path) -> std::io::Result<fs::File> {
    fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path)
}

#[cfg(unix)]
fn warn_if_shared(path: &Path) {
    use std::os::unix::fs::PermissionsExt;
    if let Ok(meta) = fs::metadata(path)
        && meta.permissions().mode() & 0o077 != 0
    {
        tracing::warn!(
            path = %path.display(),
            mode = format_args!("{:o}", meta.permissions().mode() & 0o777),
            "the store's development key file is readable by other users; chmod 600 it"
        );
    }
}

#[cfg(not(unix))]
fn warn_if_shared(_: &Path) {}

fn file_error(path: &Path, what: &str, e: &std::io::Error) -> StoreError {
    StoreError::Config(format!("dev key file {}: {what}: {e}", path.display()))
}
