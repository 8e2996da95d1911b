//! `zeitwork exec` through `zeitwork up` on QEMU: the CLI, the operator's grant and
//! splice, the agent's relay over the instance's virtio-serial channel, and init's exec
//! service. On a just-booted instance of an image with a shell (busybox): a command's
//! output, error output and exit code pass through; stdin with `-i`; the app's user,
//! environment and secrets; a terminal with `-it` driven through a PTY the test holds
//! (window size and its change, Ctrl-C, exit code); 1 GiB of output streams through; a
//! grant is single-use; every exec is an event.

use std::io::{Read, Write};
use std::os::fd::OwnedFd;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rustix::pty::{OpenptFlags, grantpt, openpt, ptsname, unlockpt};
use rustix::termios::{Winsize, tcsetwinsize};
use serde_json::{Value, json};
use tokio::io::AsyncReadExt;
use zeitwork_e2e::{
    EXAMPLE_APP, Up, example_manifest, poll_until, push_example_with_shell, up_with_example,
    zeitwork_bin,
};

const BOOT: Duration = Duration::from_secs(300);
const GIB: u64 = 1 << 30;

fn app(args: &[&str]) -> Vec<String> {
    EXAMPLE_APP
        .iter()
        .chain(args)
        .map(|s| (*s).to_owned())
        .collect()
}

fn strs(args: &[String]) -> Vec<&str> {
    args.iter().map(String::as_str).collect()
}

#[tokio::test]
async fn exec_runs_commands_pipes_and_terminals_in_a_just_booted_instance() {
    assert!(
        rustix::process::geteuid().is_root(),
        "cannot run: microVMs need root (taps, nftables, cgroups)"
    );
    let data = tempfile::tempdir().unwrap();
    let (up, _) = up_with_example(data.path(), BOOT).await;
    let image = push_example_with_shell(&up).await;
    let files = tempfile::tempdir().unwrap();
    let set = app(&["secrets", "set", "--no-restart", "API_KEY=s3cret-value"]);
    up.cli(&strs(&set)).await.success();
    let before = up.running_instances(&EXAMPLE_APP).await.unwrap();
    let manifest = example_manifest(files.path(), "2", "");
    let deploy = app(&["deploy", "--image", &image, "--manifest", &manifest]);
    up.cli(&strs(&deploy)).await.success();
    poll_until(BOOT, || async {
        // Release 1's instance stays on standby beside it.
        let running = up.running_instances(&EXAMPLE_APP).await?;
        running
            .iter()
            .any(|i| i["observed_state"] == "healthy" && !before.iter().any(|b| b["id"] == i["id"]))
            .then_some(())
    })
    .await
    .expect("release 2 runs, healthy");

    // Right after the boot: output, error output and the exit code pass through.
    let started = Instant::now();
    let run = app(&["exec", "--", "sh", "-c", "echo out; echo err >&2; exit 7"]);
    let out = up.cli(&strs(&run)).await;
    eprintln!("first exec: {:?}", started.elapsed());
    assert_eq!(out.code, 7, "{out:?}");
    assert_eq!(out.stdout, "out\n", "{out:?}");
    assert!(out.stderr.contains("err"), "{out:?}");

    // As the app: its user, its env, its secrets file; stdin with -i.
    let script = "busybox id -u; echo release=$RELEASE; busybox cat /run/secrets/zeitwork.json; \
                  echo; busybox cat";
    let run = app(&["exec", "-i", "--", "sh", "-c", script]);
    let mut child = up.cli_command(&strs(&run));
    child.stdin(Stdio::piped()).stdout(Stdio::piped());
    let mut child = child.spawn().unwrap();
    let mut stdin = child.stdin.take().unwrap();
    tokio::io::AsyncWriteExt::write_all(&mut stdin, b"from stdin\n")
        .await
        .unwrap();
    drop(stdin);
    let done = tokio::time::timeout(Duration::from_secs(60), child.wait_with_output())
        .await
        .expect("exec -i ends once stdin does")
        .unwrap();
    let text = String::from_utf8_lossy(&done.stdout);
    assert!(done.status.success(), "{text}");
    assert!(text.contains("release=2"), "{text}");
    assert!(text.contains("s3cret-value"), "{text}");
    assert!(text.ends_with("from stdin\n"), "{text}");
    // No -i: the command's stdin is empty, it does not wait.
    let run = app(&["exec", "--", "sh", "-c", "busybox cat; echo done"]);
    assert_eq!(up.cli(&strs(&run)).await.success().stdout, "done\n");
    let missing = app(&["exec", "--", "no-such-program"]);
    let out = up.cli(&strs(&missing)).await;
    assert_eq!(out.code, 127, "{out:?}");

    terminal(&up).await;
    large_output(&up).await;
    single_use(&up).await;

    let events = up.cli(&strs(&app(&["events", "--json"]))).await.success();
    assert!(events.stdout.contains("exec_granted"), "{}", events.stdout);
    assert!(
        events.stdout.contains("echo out; echo err"),
        "{}",
        events.stdout
    );
}

/// A PTY pair: the master (the test's side) and the slave's path.
fn pty(rows: u16, cols: u16) -> (OwnedFd, std::path::PathBuf) {
    let master = openpt(OpenptFlags::RDWR | OpenptFlags::NOCTTY).unwrap();
    grantpt(&master).unwrap();
    unlockpt(&master).unwrap();
    let path = ptsname(&master, Vec::new()).unwrap();
    let size = Winsize {
        ws_row: rows,
        ws_col: cols,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    tcsetwinsize(&master, size).unwrap();
    (master, path.into_string().unwrap().into())
}

/// `exec -it -- sh` with the CLI on a terminal the test drives (through `setsid --ctty`,
/// so the CLI gets SIGWINCH as in a real terminal).
async fn terminal(up: &Up) {
    let (master, slave_path) = pty(33, 101);
    let slave = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(&slave_path)
        .unwrap();
    let run = app(&["exec", "-it", "--", "sh"]);
    let mut command = up.cli_command(&strs(&run));
    let program = command.as_std().get_program().to_owned();
    assert_eq!(program, zeitwork_bin().as_os_str());
    let mut wrapped = tokio::process::Command::new("setsid");
    wrapped
        .arg("--ctty")
        .arg("--wait")
        .arg(program)
        .args(command.as_std().get_args())
        .envs(
            command
                .as_std()
                .get_envs()
                .filter_map(|(k, v)| v.map(|v| (k.to_owned(), v.to_owned()))),
        )
        .current_dir(command.as_std().get_current_dir().unwrap())
        .env("TERM", "xterm-256color")
        .stdin(slave.try_clone().unwrap())
        .stdout(slave.try_clone().unwrap())
        .stderr(slave)
        .kill_on_drop(true);
    command = wrapped;
    let mut child = command.spawn().unwrap();
    let seen = Arc::new(Mutex::new(String::new()));
    let mut reading = std::fs::File::from(master.try_clone().unwrap());
    {
        let seen = seen.clone();
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n) = reading.read(&mut buf) {
                if n == 0 {
                    break;
                }
                seen.lock()
                    .unwrap()
                    .push_str(&String::from_utf8_lossy(&buf[..n]));
            }
        });
    }
    let mut writing = std::fs::File::from(master.try_clone().unwrap());
    let mut type_in = |text: &str| writing.write_all(text.as_bytes()).unwrap();
    let wait_for = |needle: String, within: Duration| {
        let seen = seen.clone();
        async move {
            poll_until(within, || {
                let seen = seen.clone();
                let needle = needle.clone();
                async move { seen.lock().unwrap().contains(&needle).then_some(()) }
            })
            .await
            .unwrap_or_else(|| {
                panic!(
                    "{needle:?} never showed; the terminal: {:?}",
                    seen.lock().unwrap()
                )
            })
        }
    };
    type_in("echo $((6*7))-$TERM\r");
    wait_for("42-xterm-256color".into(), Duration::from_secs(60)).await;
    type_in("busybox stty size\r");
    wait_for("33 101".into(), Duration::from_secs(30)).await;
    // The window changes: the CLI hears SIGWINCH and the command sees the new size.
    tcsetwinsize(
        &master,
        Winsize {
            ws_row: 50,
            ws_col: 132,
            ws_xpixel: 0,
            ws_ypixel: 0,
        },
    )
    .unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    type_in("busybox stty size\r");
    wait_for("50 132".into(), Duration::from_secs(30)).await;
    // Ctrl-C interrupts the foreground command, not the shell.
    type_in("busybox sleep 600\r");
    tokio::time::sleep(Duration::from_secs(2)).await;
    let interrupted = Instant::now();
    type_in("\x03");
    type_in("echo after-$((1+1))\r");
    wait_for("after-2".into(), Duration::from_secs(30)).await;
    assert!(interrupted.elapsed() < Duration::from_secs(30));
    type_in("exit 5\r");
    let status = tokio::time::timeout(Duration::from_secs(30), child.wait())
        .await
        .expect("the CLI ends with the shell")
        .unwrap();
    assert_eq!(status.code(), Some(5), "{:?}", seen.lock().unwrap());
}

/// 1 GiB of output streams to the CLI, all of it, at a measured pace.
async fn large_output(up: &Up) {
    let run = app(&[
        "exec",
        "--",
        "busybox",
        "head",
        "-c",
        &GIB.to_string(),
        "/dev/zero",
    ]);
    let mut command = up.cli_command(&strs(&run));
    command.stdout(Stdio::piped());
    let mut child = command.spawn().unwrap();
    let mut stdout = child.stdout.take().unwrap();
    let started = Instant::now();
    let mut total = 0u64;
    let mut buf = vec![0u8; 1 << 20];
    let mut nonzero = false;
    loop {
        let n = tokio::time::timeout(Duration::from_secs(60), stdout.read(&mut buf))
            .await
            .expect("output stalled for 60 s")
            .unwrap();
        if n == 0 {
            break;
        }
        nonzero |= buf[..n].iter().any(|b| *b != 0);
        total += n as u64;
    }
    let status = child.wait().await.unwrap();
    let took = started.elapsed();
    eprintln!(
        "1 GiB through exec in {took:?} ({:.0} MiB/s)",
        GIB as f64 / (1 << 20) as f64 / took.as_secs_f64()
    );
    assert!(status.success());
    assert_eq!(total, GIB);
    assert!(!nonzero, "the bytes are the command's zeros");
}

/// A grant taken through the API directly works once; its replay is refused.
async fn single_use(up: &Up) {
    let token = up.admin_token().unwrap().to_owned();
    let http = reqwest::Client::new();
    let base = up.api().trim_end_matches('/').to_owned();
    let granted: Value = http
        .post(format!("{base}/api/v1/orgs/demo/apps/hello/envs/prod/exec"))
        .bearer_auth(&token)
        .json(&json!({"command": ["sh", "-c", "exit 0"]}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let attach = format!(
        "{base}/api/v1/exec/{}",
        granted["grant_id"].as_str().unwrap()
    );
    let secret = granted["token"].as_str().unwrap();
    let open = || {
        http.get(&attach)
            .bearer_auth(secret)
            .header("connection", "upgrade")
            .header("upgrade", "zeitwork-exec")
            .send()
    };
    let first = open().await.unwrap();
    assert_eq!(first.status(), reqwest::StatusCode::SWITCHING_PROTOCOLS);
    let mut conn = first.upgrade().await.unwrap();
    let mut reader = zeitwork_core::exec::Reader::new();
    let mut buf = [0u8; 1024];
    let exit = loop {
        if let Some(frame) = reader.next_frame().unwrap() {
            if frame.kind == zeitwork_core::exec::Kind::Exit {
                break frame.as_exit().unwrap();
            }
            continue;
        }
        let n = tokio::time::timeout(Duration::from_secs(60), conn.read(&mut buf))
            .await
            .unwrap()
            .unwrap();
        assert!(n > 0, "closed before the exit");
        reader.push(&buf[..n]);
    };
    assert_eq!(exit, 0);
    let replay = open().await.unwrap();
    assert_eq!(replay.status(), reqwest::StatusCode::FORBIDDEN);
}
