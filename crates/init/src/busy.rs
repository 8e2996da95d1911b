//! The app's "busy" signal ([`BUSY_PATH`]): init makes its directory the app's, watches
//! for the file and says on the console when it appears or goes ([`BUSY_LINE`],
//! [`IDLE_LINE`]); the node's agent reads the console and tells the autoscaler, which does
//! not stop a process scaled to zero while one of its instances is busy.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::Duration;

use zeitwork_core::guest::{BUSY_LINE, BUSY_PATH, IDLE_LINE};

use crate::console;
use crate::error::{Context, Result};

/// How often the file is looked for.
const POLL: Duration = Duration::from_secs(1);

/// Makes the file's directory, writable by the app's user only.
pub fn prepare(uid: u32, gid: u32) -> Result<()> {
    let dir = Path::new(BUSY_PATH).parent().unwrap_or(Path::new("/run"));
    let what = || format!("preparing {}", dir.display());
    std::fs::create_dir_all(dir).with_context(what)?;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755)).with_context(what)?;
    nix::unistd::chown(
        dir,
        Some(nix::unistd::Uid::from_raw(uid)),
        Some(nix::unistd::Gid::from_raw(gid)),
    )
    .with_context(what)
}

/// Watches for the file for as long as init runs (a thread of its own).
pub fn watch() {
    std::thread::spawn(|| {
        let mut busy = false;
        loop {
            let now = Path::new(BUSY_PATH).exists();
            if now != busy {
                busy = now;
                console::say(if busy { BUSY_LINE } else { IDLE_LINE });
            }
            std::thread::sleep(POLL);
        }
    });
}
