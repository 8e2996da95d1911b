//! The app's lifecycle as PID 1 runs it, on the host: the real `zeitwork-init` binary
//! as launcher (own session, identity, `execve`, failure report), then init's
//! supervision (exit status, signal forwarding, reaping orphans). This process plays
//! PID 1: it blocks the signals before any thread exists and becomes a child subreaper.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::sys::signal::{Signal, kill};
use nix::sys::signalfd::SignalFd;
use nix::sys::wait::{WaitPidFlag, waitpid};
use nix::unistd::{Gid, Pid, Uid};
use zeitwork_core::guest::Exit;
use zeitwork_init::process::{self, App};
use zeitwork_init::user::Identity;

/// One scenario, run in this process with the shared signalfd.
type Test = fn(&SignalFd);

const LAUNCHER: &str = env!("CARGO_BIN_EXE_zeitwork-init");

fn sh(script: &str, extra_env: &[(&str, &str)]) -> App {
    let mut env = BTreeMap::from([("PATH".to_owned(), "/usr/bin:/bin".to_owned())]);
    for (k, v) in extra_env {
        env.insert(k.to_string(), v.to_string());
    }
    let gid = Gid::current().as_raw();
    App {
        program: PathBuf::from("/bin/sh"),
        argv: vec!["sh".into(), "-c".into(), script.into()],
        env,
        identity: Identity {
            uid: Uid::current().as_raw(),
            gid,
            groups: vec![gid],
            home: "/".into(),
        },
    }
}

fn run(signals: &SignalFd, app: &App) -> Exit {
    let pid = process::start(Path::new(LAUNCHER), app).expect("the app starts");
    process::supervise(signals, None, pid)
}

fn exit_codes_and_signals_are_reported(signals: &SignalFd) {
    assert_eq!(run(signals, &sh("exit 3", &[])), Exit::Code(3));
    assert_eq!(run(signals, &sh("kill -KILL $$", &[])), Exit::Signal(9));
}

/// Init blocks the signals it forwards; the app must not inherit that. (A shell would
/// hide it: dash clears its mask on start.)
fn the_app_starts_with_no_signal_blocked(signals: &SignalFd) {
    let mut app = sh("", &[]);
    app.program = PathBuf::from("/usr/bin/grep");
    app.argv = ["grep", "-q", "^SigBlk:[[:space:]]*0*$", "/proc/self/status"]
        .map(String::from)
        .to_vec();
    assert_eq!(run(signals, &app), Exit::Code(0));
}

fn exec_failures_are_reported_not_run(_: &SignalFd) {
    let mut app = sh("", &[]);
    app.program = PathBuf::from("/nonexistent/app");
    let e = process::start(Path::new(LAUNCHER), &app)
        .unwrap_err()
        .to_string();
    assert!(
        e.starts_with("starting the app: executing /nonexistent/app: No such file"),
        "{e}"
    );
    reap_all();
}

fn the_app_gets_exactly_its_env_its_own_session_and_no_stdin(signals: &SignalFd) {
    // A variable of this test process (cargo sets it) must not leak into the app.
    let leak = ["CARGO_MANIFEST_DIR", "CARGO_PKG_NAME"]
        .into_iter()
        .find(|v| std::env::var_os(v).is_some())
        .unwrap_or("ZEITWORK_NOT_SET");
    let script = format!(
        r#"[ "$A" = "1 2" ] || exit 10
           [ "$HOME" = /h ] || exit 11
           [ -z "${{{leak}+set}}" ] || exit 12
           [ "$(cut -d' ' -f6 /proc/$$/stat)" = "$$" ] || exit 13
           if read line; then exit 14; fi
           exit 0"#
    );
    let app = sh(&script, &[("A", "1 2"), ("HOME", "/h")]);
    assert_eq!(run(signals, &app), Exit::Code(0));
}

/// Starts an app that exits with 7 on SIGTERM and waits until it is ready for it.
fn start_app_awaiting_sigterm() -> Pid {
    let dir = tempfile::tempdir().unwrap();
    let ready = dir.path().join("ready");
    let app = sh(
        r#"trap 'exit 7' TERM; : > "$READY"; while :; do sleep 0.05; done"#,
        &[("READY", ready.to_str().unwrap())],
    );
    let pid = process::start(Path::new(LAUNCHER), &app).unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while !ready.exists() {
        assert!(Instant::now() < deadline, "the app never got ready");
        std::thread::sleep(Duration::from_millis(10));
    }
    pid
}

fn signals_are_forwarded(signals: &SignalFd) {
    let pid = start_app_awaiting_sigterm();
    // Sent to "init" (blocked, so it lands in the signalfd), forwarded to the app.
    kill(Pid::this(), Signal::SIGTERM).unwrap();
    assert_eq!(process::supervise(signals, None, pid), Exit::Code(7));
}

/// The power button's events, as the kernel's evdev device hands them out (here through
/// a pipe): a release is ignored, a press becomes the app's SIGTERM.
fn a_power_button_press_is_a_sigterm(signals: &SignalFd) {
    use std::io::Write;
    let event = |value: i32| {
        let mut e = vec![0u8; 16];
        e.extend(1u16.to_ne_bytes()); // EV_KEY
        e.extend(116u16.to_ne_bytes()); // KEY_POWER
        e.extend(value.to_ne_bytes());
        e
    };
    let pid = start_app_awaiting_sigterm();
    let (button, mut press) = std::io::pipe().unwrap();
    press.write_all(&[event(0), event(1)].concat()).unwrap();
    let button = std::fs::File::from(std::os::fd::OwnedFd::from(button));
    assert_eq!(
        process::supervise(signals, Some(button), pid),
        Exit::Code(7)
    );
}

fn orphans_are_reaped(signals: &SignalFd) {
    let app = sh("(sleep 0.1 &); sleep 1; exit 4", &[]);
    assert_eq!(run(signals, &app), Exit::Code(4));
    // The orphaned `sleep` was reparented to us and reaped while the app ran.
    assert_eq!(
        waitpid(None::<Pid>, Some(WaitPidFlag::WNOHANG)),
        Err(Errno::ECHILD)
    );
}

fn reap_all() {
    while let Ok(status) = waitpid(None::<Pid>, None) {
        let _ = status;
    }
}

fn main() {
    // Before any thread exists: the mask then covers the whole process.
    let signals = process::block_signals().expect("blocking signals");
    nix::sys::prctl::set_child_subreaper(true).expect("becoming a subreaper");
    let tests: [(&str, Test); 7] = [
        (
            "exit_codes_and_signals_are_reported",
            exit_codes_and_signals_are_reported,
        ),
        (
            "the_app_starts_with_no_signal_blocked",
            the_app_starts_with_no_signal_blocked,
        ),
        (
            "exec_failures_are_reported_not_run",
            exec_failures_are_reported_not_run,
        ),
        (
            "the_app_gets_exactly_its_env_its_own_session_and_no_stdin",
            the_app_gets_exactly_its_env_its_own_session_and_no_stdin,
        ),
        ("signals_are_forwarded", signals_are_forwarded),
        (
            "a_power_button_press_is_a_sigterm",
            a_power_button_press_is_a_sigterm,
        ),
        ("orphans_are_reaped", orphans_are_reaped),
    ];
    for (name, test) in &tests {
        test(&signals);
        println!("test {name} ... ok");
    }
    println!("{} passed, 0 failed", tests.len());
}
