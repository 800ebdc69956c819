//! Advisory file locks (flock): the kernel releases them when the holder dies, so a crashed
//! test never leaves the next one waiting.

use std::fs::{File, OpenOptions};
use std::path::Path;

use rustix::fs::{flock, FlockOperation};

use crate::error::{IoContext, Result};

/// Held until dropped.
#[derive(Debug)]
pub(crate) struct FileLock {
    _file: File,
}

impl FileLock {
    /// Wait for an exclusive lock on `path` (created if missing).
    pub(crate) fn exclusive(path: &Path) -> Result<FileLock> {
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(path)
            .at(path)?;
        flock(&file, FlockOperation::LockExclusive)
            .map_err(std::io::Error::from)
            .at(path)?;
        Ok(FileLock { _file: file })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_holder_waits_for_the_first() {
        let dir = std::env::temp_dir().join(format!("tend-lab-lock-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("lock");
        let first = FileLock::exclusive(&path).unwrap();
        let other = File::open(&path).unwrap();
        let busy = flock(&other, FlockOperation::NonBlockingLockExclusive);
        assert!(
            busy.is_err(),
            "a second lock must not be granted while the first is held"
        );
        drop(first);
        flock(&other, FlockOperation::NonBlockingLockExclusive).unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
