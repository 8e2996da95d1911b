//! Host network changes go through iproute2 and nft, the tools operators already read.

use tokio::process::Command;

use crate::NetError;

/// Runs `program args…`, feeding `stdin` when given; stderr becomes the error.
pub(crate) async fn run(
    program: &'static str,
    args: &[&str],
    stdin: Option<&str>,
) -> Result<String, NetError> {
    run_in(None, program, args, stdin).await
}

/// [`run`], inside network namespace `netns` when given (`ip netns exec`).
pub(crate) async fn run_in(
    netns: Option<&str>,
    program: &'static str,
    args: &[&str],
    stdin: Option<&str>,
) -> Result<String, NetError> {
    use tokio::io::AsyncWriteExt;
    let mut cmd = match netns {
        Some(ns) => {
            let mut cmd = Command::new("ip");
            cmd.args(["netns", "exec", ns, program]);
            cmd
        }
        None => Command::new(program),
    };
    cmd.args(args)
        .stdin(if stdin.is_some() {
            std::process::Stdio::piped()
        } else {
            std::process::Stdio::null()
        })
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let mut child = cmd.spawn().map_err(|_| NetError::NotInstalled {
        program,
        package: match program {
            "nft" => "nftables",
            "wg" => "wireguard-tools",
            "wireguard-go" => "wireguard-go",
            _ => "iproute2",
        },
    })?;
    if let (Some(text), Some(mut input)) = (stdin, child.stdin.take()) {
        input.write_all(text.as_bytes()).await.ok();
    }
    let out = child
        .wait_with_output()
        .await
        .map_err(|e| NetError::Command {
            command: format!("{program} {}", args.join(" ")),
            stderr: e.to_string(),
        })?;
    if !out.status.success() {
        return Err(NetError::Command {
            command: format!("{program} {}", args.join(" ")),
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_owned(),
        });
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}
