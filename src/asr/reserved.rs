//! The daemon's own way into its `cabin-asr`: a listening Unix socket in a directory only the
//! daemon's user can enter, inherited by the worker (`--reserved-fd`), whose connections have
//! places of their own. Whoever fills the worker's TCP port (8 clients sending a byte a second
//! once answered `busy` to everyone) cannot take them: the kernel lets no other user reach the
//! socket, whatever they send. The worker cannot make the socket itself: its seccomp filter
//! refuses Unix sockets, so that it cannot reach D-Bus.

use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::fs::DirBuilderExt;
use std::os::unix::net::UnixListener;
use std::path::PathBuf;

/// The socket and its directory, removed when dropped (with the worker's supervisor).
pub struct PrivateSocket {
    listener: UnixListener,
    dir: PathBuf,
}

impl PrivateSocket {
    /// A fresh directory of mode 0700 under the temporary directory (a name already taken,
    /// by anyone, is passed over: its owner might be someone else) and a socket in it.
    pub fn create() -> std::io::Result<PrivateSocket> {
        let base = std::env::temp_dir();
        sweep(&base);
        let mut tries = 0;
        let dir = loop {
            let nanos = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.subsec_nanos())
                .unwrap_or_default();
            let dir = base.join(format!("cabin-asr-{}-{nanos:x}", std::process::id()));
            match std::fs::DirBuilder::new().mode(0o700).create(&dir) {
                Ok(()) => break dir,
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists && tries < 8 => tries += 1,
                Err(e) => return Err(e),
            }
        };
        match UnixListener::bind(dir.join("asr.sock")) {
            Ok(listener) => Ok(PrivateSocket { listener, dir }),
            Err(e) => {
                let _ = std::fs::remove_dir(&dir);
                Err(e)
            }
        }
    }

    pub fn path(&self) -> PathBuf {
        self.dir.join("asr.sock")
    }
}

/// Removes the directories of daemons of this user that were killed before they could
/// (`cabin-asr-PID-…` whose process is gone).
fn sweep(base: &std::path::Path) {
    use std::os::unix::fs::MetadataExt;
    // SAFETY: getuid cannot fail.
    let uid = unsafe { libc::getuid() };
    let Ok(entries) = std::fs::read_dir(base) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(pid) = name
            .to_str()
            .and_then(|n| n.strip_prefix("cabin-asr-"))
            .and_then(|rest| rest.split('-').next())
            .and_then(|pid| pid.parse::<u32>().ok())
        else {
            continue;
        };
        let ours =
            std::fs::symlink_metadata(entry.path()).is_ok_and(|m| m.is_dir() && m.uid() == uid);
        if ours && !std::path::Path::new(&format!("/proc/{pid}")).exists() {
            let _ = std::fs::remove_file(entry.path().join("asr.sock"));
            let _ = std::fs::remove_dir(entry.path());
        }
    }
}

impl AsRawFd for PrivateSocket {
    fn as_raw_fd(&self) -> RawFd {
        self.listener.as_raw_fd()
    }
}

impl Drop for PrivateSocket {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(self.path());
        let _ = std::fs::remove_dir(&self.dir);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn the_socket_is_in_a_directory_only_this_user_enters_and_goes_with_it() {
        // One left by a daemon that was killed (no process has this id) goes too.
        let stale = std::env::temp_dir().join("cabin-asr-4000000000-0");
        std::fs::create_dir_all(&stale).unwrap();
        let socket = PrivateSocket::create().unwrap();
        assert!(!stale.exists());
        let dir = socket.path().parent().unwrap().to_path_buf();
        let mode = std::fs::metadata(&dir).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o700);
        assert!(std::os::unix::net::UnixStream::connect(socket.path()).is_ok());
        drop(socket);
        assert!(!dir.exists());
    }
}
