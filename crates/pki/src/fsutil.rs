//! Small file helpers: atomic writes, private files created with mode 0600.

use std::fs;
use std::io::Write;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::error::PkiError;

/// Who may read a file we write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Access {
    /// Owner read/write only (0600): private keys.
    Private,
    /// World readable (0644): certificates, public keys, registries.
    Public,
}

/// Writes `contents` to `path` atomically (temporary file in the same directory, then rename).
///
/// Private files are created with mode 0600 from the start, so the secret is never readable by
/// others, not even briefly.
pub(crate) fn write_file(path: &Path, contents: &[u8], access: Access) -> Result<(), PkiError> {
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        fs::create_dir_all(parent).map_err(|e| PkiError::io("creating directory", parent, e))?;
    }
    let file_name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let tmp = path.with_file_name(format!(
        ".{file_name}.tmp-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    ));
    let result = (|| {
        let mut options = fs::OpenOptions::new();
        options.write(true).create(true).truncate(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            options.mode(match access {
                Access::Private => 0o600,
                Access::Public => 0o644,
            });
        }
        let mut file = options.open(&tmp)?;
        // The temporary file may have existed with other permissions; enforce ours.
        set_mode(&tmp, access)?;
        file.write_all(contents)?;
        file.sync_all()?;
        fs::rename(&tmp, path)
    })();
    if let Err(e) = result {
        let _ = fs::remove_file(&tmp);
        return Err(PkiError::io("writing", path, e));
    }
    Ok(())
}

#[cfg(unix)]
fn set_mode(path: &Path, access: Access) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let mode = match access {
        Access::Private => 0o600,
        Access::Public => 0o644,
    };
    fs::set_permissions(path, fs::Permissions::from_mode(mode))
}

#[cfg(not(unix))]
fn set_mode(_path: &Path, _access: Access) -> std::io::Result<()> {
    Ok(())
}

/// Reads a UTF-8 file, reporting a missing file as [`PkiError::Missing`].
pub(crate) fn read_string(path: &Path) -> Result<String, PkiError> {
    fs::read_to_string(path).map_err(|e| {
        if e.kind() == std::io::ErrorKind::NotFound {
            PkiError::Missing {
                path: path.to_owned(),
            }
        } else {
            PkiError::io("reading", path, e)
        }
    })
}
