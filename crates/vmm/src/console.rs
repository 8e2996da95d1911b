//! The serial console is the guest's only voice before networking: the app's output,
//! the kernel's OOM reports and init's one-line verdict all arrive here. We copy it to
//! a log file line by line and remember what decides how the VM ended.

use std::collections::VecDeque;

use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWriteExt, BufReader};
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

/// Copies the console to `log` until it closes, and reports what it saw.
pub(crate) async fn watch(console: impl AsRead, mut log: tokio::fs::File) -> ConsoleReport {
    let mut report = ConsoleReport::default();
    let mut lines = BufReader::new(console).split(b'\n');
    while let Ok(Some(raw)) = lines.next_segment().await {
        let line = String::from_utf8_lossy(&raw);
        let line = line.trim_end_matches('\r');
        report.observe(line);
        let _ = log.write_all(line.as_bytes()).await;
        let _ = log.write_all(b"\n").await;
    }
    let _ = log.flush().await;
    report
}

/// Anything the console can be read from (a pipe from the VMM).
pub(crate) trait AsRead: AsyncRead + Unpin + Send + 'static {}
impl<T: AsyncRead + Unpin + Send + 'static> AsRead for T {}

#[cfg(test)]
mod tests {
    use super::*;

    async fn run(text: &str) -> (ConsoleReport, String) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("console.log");
        let log = tokio::fs::File::create(&path).await.unwrap();
        let report = watch(std::io::Cursor::new(text.as_bytes().to_vec()), log).await;
        (report, std::fs::read_to_string(path).unwrap())
    }

    #[tokio::test]
    async fn app_exit_is_read_from_init_line_and_console_is_logged() {
        let (report, log) =
            run("[ 0.1] Linux version 6.1\r\nhello from app\r\nzeitwork-init: exit code=3\r\n")
                .await;
        assert_eq!(report.outcome(), VmExit::App(Exit::Code(3)));
        assert_eq!(
            log,
            "[ 0.1] Linux version 6.1\nhello from app\nzeitwork-init: exit code=3\n"
        );
    }

    #[tokio::test]
    async fn oom_and_init_failures_are_told_apart() {
        let (r, _) =
            run("[ 5.0] Out of memory: Killed process 42 (hog)\nzeitwork-init: exit signal=9\n")
                .await;
        assert_eq!(r.outcome(), VmExit::OutOfMemory);
        let (r, _) = run("zeitwork-init: failed: mounting /dev/vda: EINVAL\n").await;
        assert_eq!(
            r.outcome(),
            VmExit::InitFailed("mounting /dev/vda: EINVAL".into())
        );
    }

    #[tokio::test]
    async fn no_verdict_is_a_crash_quoting_the_tail() {
        let text: String = (0..30).map(|i| format!("line {i}\n")).collect::<String>()
            + "Kernel panic - not syncing";
        let (r, _) = run(&text).await;
        let VmExit::Crashed(tail) = r.outcome() else {
            panic!("{:?}", r.outcome())
        };
        assert!(
            tail.ends_with("Kernel panic - not syncing") && !tail.contains("line 9\n"),
            "{tail}"
        );
    }
}
