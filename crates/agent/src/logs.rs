//! Ships an instance's (or a build's) console to the operator. The console file is the buffer: the
//! offset only moves after the operator took a batch, and it is saved beside the file,
//! so an unreachable operator or an agent restart loses no line and repeats none.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use tokio::io::{AsyncReadExt, AsyncSeekExt};
use tokio::sync::watch;
use uuid::Uuid;
use zeitwork_core::guest::{BUSY_LINE, IDLE_LINE};
use zeitwork_core::node::{LogBatch, LogLine, LogSource};

use crate::control::ControlPlane;

/// How often the console file is read for new lines.
const TICK: Duration = Duration::from_millis(250);
/// Lines per request; well under the operator's per-batch limit.
const BATCH: usize = 1000;
/// Bytes of text per request; well under the operator's 1 MiB body limit.
const BATCH_BYTES: usize = 512 * 1024;
/// Longer lines are cut (a runaway app printing without newlines cannot exhaust memory).
const MAX_LINE: usize = 16 * 1024;
/// How long the last lines of an ended VM may take to ship.
const FINAL_FLUSH: Duration = Duration::from_secs(3);
/// Bytes read per pass.
const CHUNK: usize = 256 * 1024;
/// A console log larger than this is truncated once shipped (a VM printing without end
/// must not fill the node's disk).
const MAX_CONSOLE: u64 = 16 << 20;

/// Where one instance's or build's console is and how far it was shipped.
pub struct Console {
    pub source: LogSource,
    pub path: PathBuf,
    /// Holds the shipped offset as decimal text.
    pub offset_file: PathBuf,
}

impl Console {
    /// The console of the instance whose VM runs in `dir`.
    pub fn in_dir(instance: Uuid, dir: &Path) -> Console {
        Console::of(LogSource::Instance(instance), dir)
    }

    /// The console of `source`'s VM, which runs in `dir`.
    pub fn of(source: LogSource, dir: &Path) -> Console {
        Console {
            source,
            path: dir.join(zeitwork_vmm::CONSOLE_LOG),
            offset_file: dir.join("console.shipped"),
        }
    }

    /// The saved offset (0 for a console never shipped).
    pub async fn saved_offset(&self) -> u64 {
        tokio::fs::read_to_string(&self.offset_file)
            .await
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(0)
    }

    async fn save(&self, offset: u64) {
        if let Err(e) = tokio::fs::write(&self.offset_file, offset.to_string()).await {
            tracing::warn!(source = ?self.source, error = %e, "saving the log offset");
        }
    }
}

/// Ships lines from `offset` until `ended` turns true, then ships the rest (a last
/// line without newline included) and returns.
pub async fn ship(
    control: Arc<impl ControlPlane>,
    console: Console,
    mut offset: u64,
    mut ended: watch::Receiver<bool>,
) {
    loop {
        if *ended.borrow() {
            // The VM is gone: one bounded last try, so an unreachable operator cannot hold
            // up a stop; whatever is left stays in the file with its offset.
            let flush = drain(&*control, &console, &mut offset, true);
            let _ = tokio::time::timeout(FINAL_FLUSH, flush).await;
            return;
        }
        drain(&*control, &console, &mut offset, false).await;
        rotate(&console, &mut offset, MAX_CONSOLE).await;
        tokio::select! {
            _ = tokio::time::sleep(TICK) => {}
            _ = ended.changed() => {}
        }
    }
}

/// The file beside an instance's console that says its app is busy (the last of init's
/// [`BUSY_LINE`]/[`IDLE_LINE`] was busy); [`crate::cpu`] reports it with the heartbeat.
pub(crate) const BUSY_FILE: &str = "busy";

/// Keeps [`BUSY_FILE`] as the last busy/idle line in `lines` says.
async fn note_busy(console: &Path, lines: &[String]) {
    let Some(busy) = lines.iter().rev().find_map(|l| match l.as_str() {
        BUSY_LINE => Some(true),
        IDLE_LINE => Some(false),
        _ => None,
    }) else {
        return;
    };
    let file = console.with_file_name(BUSY_FILE);
    let _ = if busy {
        tokio::fs::write(&file, b"").await
    } else {
        tokio::fs::remove_file(&file).await
    };
}

/// Truncates the console file once it is over `cap` (the VMM appends, so it writes on at
/// the new end) and starts the offset over. What was not shipped yet (the operator
/// unreachable for that long, or the last lines of this instant) is dropped, and said so.
async fn rotate(console: &Console, offset: &mut u64, cap: u64) {
    let Ok(meta) = tokio::fs::metadata(&console.path).await else {
        return;
    };
    if meta.len() <= cap {
        return;
    }
    let truncated = match tokio::fs::OpenOptions::new()
        .write(true)
        .open(&console.path)
        .await
    {
        Ok(file) => file.set_len(0).await,
        Err(e) => Err(e),
    };
    if let Err(e) = truncated {
        tracing::warn!(source = ?console.source, error = %e, "truncating the console log");
        return;
    }
    let dropped = meta.len().saturating_sub(*offset);
    if dropped > 0 {
        tracing::warn!(source = ?console.source, dropped, "console log over its cap: unshipped bytes dropped");
    }
    *offset = 0;
    console.save(0).await;
}

/// Ships everything complete from `offset` on, saving progress; stops at the first failure.
async fn drain(control: &impl ControlPlane, console: &Console, offset: &mut u64, flush: bool) {
    loop {
        match pass(control, console, *offset, flush).await {
            Ok(Some(next)) => {
                *offset = next;
                console.save(next).await;
            }
            Ok(None) => return,
            Err(e) => {
                tracing::debug!(source = ?console.source, error = %e, "shipping logs; will retry");
                return;
            }
        }
    }
}

/// Ships one chunk; the new offset, or None when there was nothing complete to ship.
async fn pass(
    control: &impl ControlPlane,
    console: &Console,
    offset: u64,
    flush: bool,
) -> Result<Option<u64>, crate::ControlError> {
    let Some(bytes) = read_from(&console.path, offset).await else {
        return Ok(None);
    };
    let (mut lines, used) = split(&bytes, flush);
    if used == 0 {
        return Ok(None);
    }
    if let LogSource::Instance(_) = console.source {
        note_busy(&console.path, &lines).await;
    }
    if let LogSource::Build(_) = console.source {
        lines.retain(|l| crate::build::is_build_output(l));
    }
    let at = Utc::now();
    for chunk in batches(&lines) {
        let batch = LogBatch {
            lines: chunk
                .iter()
                .map(|line| LogLine::new(console.source, at, line.clone()))
                .collect(),
        };
        match control.ship_logs(&batch).await {
            // Refused for good (the instance is gone, or the batch is unacceptable):
            // retrying would block every later line.
            Err(e) if e.is_permanent() => {
                tracing::warn!(source = ?console.source, error = %e, lines = chunk.len(), "the operator refused log lines; dropping them");
            }
            other => other?,
        }
    }
    Ok(Some(offset + used as u64))
}

/// Consecutive runs of lines within [`BATCH`] lines and [`BATCH_BYTES`] bytes.
fn batches(lines: &[String]) -> Vec<&[String]> {
    let mut out = Vec::new();
    let (mut start, mut bytes) = (0, 0);
    for (i, line) in lines.iter().enumerate() {
        if i > start && (i - start == BATCH || bytes + line.len() > BATCH_BYTES) {
            out.push(&lines[start..i]);
            (start, bytes) = (i, 0);
        }
        bytes += line.len();
    }
    if start < lines.len() {
        out.push(&lines[start..]);
    }
    out
}

async fn read_from(path: &Path, offset: u64) -> Option<Vec<u8>> {
    let mut file = tokio::fs::File::open(path).await.ok()?;
    file.seek(std::io::SeekFrom::Start(offset)).await.ok()?;
    let mut bytes = Vec::new();
    file.take(CHUNK as u64).read_to_end(&mut bytes).await.ok()?;
    (!bytes.is_empty()).then_some(bytes)
}

/// Complete lines in `bytes` (all of it when `flush`), and how many bytes they used.
/// Carriage returns of the serial console are dropped; blank lines are not shipped.
fn split(bytes: &[u8], flush: bool) -> (Vec<String>, usize) {
    let mut lines = Vec::new();
    let mut used = 0;
    for raw in bytes.split_inclusive(|b| *b == b'\n') {
        let complete = raw.ends_with(b"\n");
        // A line longer than a whole chunk is shipped in pieces rather than never.
        if !complete && !flush && raw.len() < CHUNK {
            break;
        }
        used += raw.len();
        let text = String::from_utf8_lossy(raw);
        let text = text.trim_end_matches(['\n', '\r']);
        if text.is_empty() {
            continue;
        }
        let mut end = text.len().min(MAX_LINE);
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        lines.push(text[..end].to_owned());
    }
    (lines, used)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_keeps_an_incomplete_line_for_later() {
        let (lines, used) = split(b"one\r\ntwo\n\nthr", false);
        assert_eq!(lines, ["one", "two"]);
        assert_eq!(used, 10);
        let (lines, used) = split(b"thr", true);
        assert_eq!((lines, used), (vec!["thr".to_owned()], 3));
    }

    #[test]
    fn batches_respect_both_limits() {
        let small: Vec<String> = (0..2500).map(|i| i.to_string()).collect();
        let sizes: Vec<usize> = batches(&small).iter().map(|b| b.len()).collect();
        assert_eq!(sizes, [1000, 1000, 500]);
        let big = vec!["x".repeat(MAX_LINE); 100];
        let parts = batches(&big);
        assert!(parts.iter().all(|b| b.len() * MAX_LINE <= BATCH_BYTES));
        assert_eq!(parts.iter().map(|b| b.len()).sum::<usize>(), 100);
    }

    #[test]
    fn split_cuts_long_lines_on_a_char_boundary() {
        let long = format!("{}\n", "é".repeat(MAX_LINE));
        let (lines, _) = split(long.as_bytes(), false);
        assert!(lines[0].len() <= MAX_LINE && lines[0].len() >= MAX_LINE - 1);
    }

    #[tokio::test]
    async fn an_oversized_console_is_truncated_and_the_vmm_writes_on_at_its_start() {
        use std::io::Write;
        let dir = tempfile::tempdir().unwrap();
        let console = Console::in_dir(Uuid::nil(), dir.path());
        // The VMM's stdout, as `zeitwork_vmm` opens it: appending.
        let mut vmm = std::fs::OpenOptions::new()
            .append(true)
            .create(true)
            .open(&console.path)
            .unwrap();
        vmm.write_all(&[b'x'; 300]).unwrap();
        let mut offset = 300;
        rotate(&console, &mut offset, 1000).await;
        assert_eq!(offset, 300, "under the cap: untouched");
        vmm.write_all(&[b'y'; 900]).unwrap();
        rotate(&console, &mut offset, 1000).await;
        assert_eq!(offset, 0);
        assert_eq!(console.saved_offset().await, 0);
        vmm.write_all(b"after\n").unwrap();
        let text = std::fs::read(&console.path).unwrap();
        assert_eq!(text, b"after\n", "no hole where the old text was");
    }
}
