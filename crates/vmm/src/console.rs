//! The serial console is the guest's only voice before networking: the app's output,
//! the kernel's OOM reports and init's one-line verdict all arrive here. The VMM writes
//! it straight into `console.log` in the run dir (a file outlives the agent; a pipe to
//! the agent would break when the agent dies), and we follow that file to remember what
//! decides how the VM ended.

use std::collections::VecDeque;

use std::future::Future;
use std::path::Path;
use std::time::Duration;

use tokio::io::AsyncReadExt;
use zeitwork_core::guest::{Exit, FAILURE_LINE};

/// How many console lines a crash report quotes.
const TAIL: usize = 20;

/// How a VM ended, as far as the host can tell.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VmExit {
    /// Init reported the app's exit.
    App(Exit),
    /// The guest kernel killed the app for using more memory than the VM has.
    OutOfMemory,
    /// Init could not start the app; its reason.
    InitFailed(String),
    /// The VMM ended without a verdict from init (kernel panic, VMM error, killed);
    /// the last console lines.
    Crashed(String),
}

#[derive(Debug, Default, Clone)]
pub struct ConsoleReport {
    pub exit: Option<Exit>,
    pub failure: Option<String>,
    pub oom: bool,
    pub tail: VecDeque<String>,
}

impl ConsoleReport {
    fn observe(&mut self, line: &str) {
        if let Some(exit) = Exit::parse(line) {
            self.exit = Some(exit);
        } else if let Some((_, reason)) = line.split_once(FAILURE_LINE) {
            self.failure = Some(reason.trim().to_owned());
        } else if line.contains("Out of memory: Killed process") || line.contains("oom-kill:") {
            self.oom = true;
        }
        if self.tail.len() == TAIL {
            self.tail.pop_front();
        }
        self.tail.push_back(line.to_owned());
    }

    fn observe_raw(&mut self, line: &[u8]) {
        let line = String::from_utf8_lossy(line);
        self.observe(line.trim_end_matches('\r'));
    }

    pub fn outcome(&self) -> VmExit {
        match (&self.failure, self.exit, self.oom) {
            (Some(reason), _, _) => VmExit::InitFailed(reason.clone()),
            (None, Some(_), true) | (None, None, true) => VmExit::OutOfMemory,
            (None, Some(exit), false) => VmExit::App(exit),
            (None, None, false) => {
                VmExit::Crashed(self.tail.iter().cloned().collect::<Vec<_>>().join("\n"))
            }
        }
    }
}

/// How often a followed console is checked for new output while the VMM is quiet.
const POLL: Duration = Duration::from_millis(200);

/// Output without a newline for this long is taken as a line (a guest printing garbage
/// must not grow the agent's memory).
const MAX_LINE: usize = 64 << 10;

/// Follows the console file at `path` from its start while the VMM lives, then reads it
/// to the end once `ended` resolves, and reports what it saw.
pub(crate) async fn watch(path: &Path, ended: impl Future<Output = ()>) -> ConsoleReport {
    let mut report = ConsoleReport::default();
    let Ok(mut file) = tokio::fs::File::open(path).await else {
        return report;
    };
    let mut ended = std::pin::pin!(ended);
    let mut done = false;
    let mut pending = Vec::new();
    let mut chunk = vec![0; 64 << 10];
    loop {
        let n = file.read(&mut chunk).await.unwrap_or(0);
        if n > 0 {
            pending.extend_from_slice(&chunk[..n]);
            let mut start = 0;
            while let Some(i) = pending[start..].iter().position(|&b| b == b'\n') {
                report.observe_raw(&pending[start..start + i]);
                start += i + 1;
            }
            pending.drain(..start);
            if pending.len() > MAX_LINE {
                report.observe_raw(&pending);
                pending.clear();
            }
            continue;
        }
        if done {
            break;
        }
        tokio::select! {
            () = &mut ended => done = true,
            () = tokio::time::sleep(POLL) => {}
        }
    }
    if !pending.is_empty() {
        report.observe_raw(&pending);
    }
    report
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The report on a console that is complete before it is read.
    async fn run(text: &str) -> ConsoleReport {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("console.log");
        std::fs::write(&path, text).unwrap();
        watch(&path, std::future::ready(())).await
    }

    #[tokio::test]
    async fn app_exit_is_read_from_init_line() {
        let report =
            run("[ 0.1] Linux version 6.1\r\nhello from app\r\nzeitwork-init: exit code=3\r\n")
                .await;
        assert_eq!(report.outcome(), VmExit::App(Exit::Code(3)));
        assert_eq!(
            report.tail,
            [
                "[ 0.1] Linux version 6.1",
                "hello from app",
                "zeitwork-init: exit code=3"
            ]
        );
    }

    #[tokio::test]
    async fn oom_and_init_failures_are_told_apart() {
        let r =
            run("[ 5.0] Out of memory: Killed process 42 (hog)\nzeitwork-init: exit signal=9\n")
                .await;
        assert_eq!(r.outcome(), VmExit::OutOfMemory);
        let r = run("zeitwork-init: failed: mounting /dev/vda: EINVAL\n").await;
        assert_eq!(
            r.outcome(),
            VmExit::InitFailed("mounting /dev/vda: EINVAL".into())
        );
    }

    #[tokio::test]
    async fn no_verdict_is_a_crash_quoting_the_tail() {
        let text: String = (0..30).map(|i| format!("line {i}\n")).collect::<String>()
            + "Kernel panic - not syncing";
        let VmExit::Crashed(tail) = run(&text).await.outcome() else {
            panic!("no verdict must be a crash")
        };
        assert!(
            tail.ends_with("Kernel panic - not syncing") && !tail.contains("line 9\n"),
            "{tail}"
        );
    }

    /// What the VMM appends while it runs is followed, in pieces that split lines; once
    /// the VMM has ended, what it wrote last (even without a newline) is read too.
    #[tokio::test]
    async fn lines_appended_while_following_are_seen_until_the_vmm_ends() {
        use std::io::Write;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("console.log");
        let mut vmm = std::fs::File::create(&path).unwrap();
        let (ended_tx, ended) = tokio::sync::oneshot::channel::<()>();
        let watcher = tokio::spawn({
            let path = path.clone();
            async move { watch(&path, async { ended.await.unwrap() }).await }
        });
        for piece in [
            "booting\r\nhel",
            "lo\r\n",
            "[ 9.9] oom-kill: constraint=NONE\r\n",
        ] {
            vmm.write_all(piece.as_bytes()).unwrap();
            tokio::time::sleep(POLL * 2).await;
        }
        assert!(!watcher.is_finished(), "follows while the VMM lives");
        vmm.write_all(b"zeitwork-init: exit code=0").unwrap();
        ended_tx.send(()).unwrap();
        let report = tokio::time::timeout(Duration::from_secs(5), watcher)
            .await
            .expect("ends once the VMM ended")
            .unwrap();
        assert_eq!(
            report.tail,
            [
                "booting",
                "hello",
                "[ 9.9] oom-kill: constraint=NONE",
                "zeitwork-init: exit code=0"
            ]
        );
        assert_eq!(report.outcome(), VmExit::OutOfMemory);
    }
}
