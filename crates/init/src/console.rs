//! The console is init's only channel to the host: the app's output, the one
//! [`Exit::line`] or [`FAILURE_LINE`] verdict, and (with `zeitwork.debug` on the
//! kernel command line) a line per boot step. Also how init ends the VM.

use std::io::{self, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::time::Duration;

use nix::sys::reboot::{RebootMode, reboot};
use zeitwork_core::guest::{Exit, FAILURE_LINE};

/// How long init waits for the serial line to transmit its last lines before power-off.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(2);

static DEBUG: AtomicBool = AtomicBool::new(false);
/// How to end the VM: [`Shutdown::Reboot`] when set, else power-off.
static REBOOT: AtomicBool = AtomicBool::new(false);

/// Points stdin, stdout and stderr at `/dev/console`. The kernel does this for init
/// only when the initramfs has a `/dev/console` node; with devtmpfs mounted it exists.
pub fn attach() -> io::Result<()> {
    let console = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(nix::libc::O_NOCTTY)
        .open("/dev/console")?;
    nix::unistd::dup2_stdin(&console)?;
    nix::unistd::dup2_stdout(&console)?;
    nix::unistd::dup2_stderr(&console)?;
    Ok(())
}

/// Writes one whole line to the console in one write (never panics: there may be no console).
pub fn say(line: &str) {
    let mut out = io::stdout().lock();
    let _ = out.write_all(format!("{line}\n").as_bytes());
    let _ = out.flush();
}

/// Applies the kernel command line's options for the rest of init's life.
pub fn apply(options: BootOptions) {
    DEBUG.store(options.debug, Ordering::Relaxed);
    REBOOT.store(options.shutdown == Shutdown::Reboot, Ordering::Relaxed);
}

/// A progress line, shown only with `zeitwork.debug` on the kernel command line.
pub fn debug(what: impl FnOnce() -> String) {
    if DEBUG.load(Ordering::Relaxed) {
        say(&format!("zeitwork-init: debug: {}", what()));
    }
}

/// What the kernel command line tells init (`zeitwork.*` parameters; others are ignored).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct BootOptions {
    /// `zeitwork.debug` / `zeitwork.debug=1`: print a line per boot step.
    pub debug: bool,
    /// `zeitwork.shutdown=reboot`: end the VM with a reset instead of an ACPI power-off,
    /// for VMMs that implement no power-off (both QEMU `-no-reboot` and Firecracker exit on reset).
    pub shutdown: Shutdown,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Shutdown {
    #[default]
    PowerOff,
    Reboot,
}

impl BootOptions {
    pub fn parse(cmdline: &str) -> BootOptions {
        let mut options = BootOptions::default();
        for word in cmdline.split_ascii_whitespace() {
            let (key, value) = word.split_once('=').unwrap_or((word, ""));
            match (key, value) {
                ("zeitwork.debug", "" | "1" | "on" | "true" | "yes") => options.debug = true,
                ("zeitwork.debug", _) => options.debug = false,
                ("zeitwork.shutdown", "reboot") => options.shutdown = Shutdown::Reboot,
                ("zeitwork.shutdown", _) => options.shutdown = Shutdown::PowerOff,
                _ => {}
            }
        }
        options
    }

    /// Reads `/proc/cmdline`; without it (or unreadable) the defaults hold.
    pub fn from_proc() -> BootOptions {
        std::fs::read_to_string("/proc/cmdline")
            .map(|s| BootOptions::parse(&s))
            .unwrap_or_default()
    }
}

/// The app has exited: report it, then end the VM.
pub fn exit(exit: Exit) -> ! {
    say(&exit.line());
    shutdown()
}

/// Init could not start the app: report why on ONE line, then end the VM.
pub fn fail(reason: &str) -> ! {
    say(&failure_line(reason));
    shutdown()
}

/// [`FAILURE_LINE`] and the reason, newlines folded: the host reads one line.
pub fn failure_line(reason: &str) -> String {
    let reason: Vec<&str> = reason
        .split(['\n', '\r'])
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .collect();
    format!("{FAILURE_LINE}{}", reason.join(" "))
}

/// Flushes the console and the disks, then powers off (or resets). Never returns: if
/// the kernel refuses, init exits, the kernel panics, and `panic=N` resets the VM.
pub fn shutdown() -> ! {
    drain();
    nix::unistd::sync();
    let mode = if REBOOT.load(Ordering::Relaxed) {
        RebootMode::RB_AUTOBOOT
    } else {
        RebootMode::RB_POWER_OFF
    };
    let Err(e) = reboot(mode);
    say(&format!("zeitwork-init: cannot end the VM: {e}"));
    std::process::exit(1)
}

/// Waits (bounded) until the console has transmitted what was written, so the last
/// line is not lost in the UART's buffer when the VM stops.
fn drain() {
    let _ = io::stdout().flush();
    let _ = io::stderr().flush();
    let (done, wait) = mpsc::channel();
    let spawned = std::thread::Builder::new()
        .name("drain".into())
        .spawn(move || {
            let _ = nix::sys::termios::tcdrain(io::stdout());
            let _ = done.send(());
        });
    if spawned.is_ok() {
        let _ = wait.recv_timeout(DRAIN_TIMEOUT);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn boot_options_come_from_zeitwork_parameters_only() {
        assert_eq!(
            BootOptions::parse("console=ttyS0 reboot=k panic=1 quiet\n"),
            BootOptions::default()
        );
        let o = BootOptions::parse("console=ttyS0 zeitwork.debug zeitwork.shutdown=reboot");
        assert!(o.debug);
        assert_eq!(o.shutdown, Shutdown::Reboot);
        let o = BootOptions::parse("zeitwork.debug=1 zeitwork.debug=0 zeitwork.shutdown=poweroff");
        assert_eq!(o, BootOptions::default());
    }

    #[test]
    fn failure_is_one_line_the_host_can_parse() {
        let line = failure_line("panic: boom\n  at src/boot.rs:10\r\n");
        assert_eq!(line, format!("{FAILURE_LINE}panic: boom at src/boot.rs:10"));
        assert!(Exit::parse(&line).is_none());
    }
}
