//! `zeitwork install ROLE`: sets this machine up to run one server role of a cluster
//! (`docs/cluster.md`) under systemd: a hardened unit `zeitwork-<role>.service` and its
//! settings in `/etc/zeitwork/<role>.env`. The settings file is a template made from the
//! role's own flags (every environment variable it reads, with its help and default), so it
//! never names a setting the binary does not have; it is written once and never
//! overwritten, since it holds the role's secrets. Every role but the agent runs as the
//! unprivileged system user `zeitwork`; the agent runs as root (it makes network
//! namespaces, links, nftables tables, cgroups and the VMMs' jails) and its unit leaves the
//! microVMs running when it stops, for the next agent to adopt.
//!
//! Nothing is started: the printed next step is to fill the settings in and enable the unit.

use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::{Args, Subcommand, ValueEnum};

use crate::settings::Key;

/// The system user every role but the agent runs as.
const USER: &str = "zeitwork";

#[derive(Args, Debug)]
pub struct InstallArgs {
    /// The role this machine runs.
    #[arg(value_enum)]
    pub role: InstallRole,
    /// Write under this directory instead of `/` (for images and packages): no user is
    /// made and systemd is not told.
    #[arg(long, default_value = "/")]
    pub root: PathBuf,
    /// The binary the unit runs [default: this one, copied to /usr/local/bin/zeitwork].
    #[arg(long)]
    pub binary: Option<PathBuf>,
}

/// The roles `zeitwork server` runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum InstallRole {
    Operator,
    Listener,
    Edge,
    Lb,
    Dns,
    Agent,
    Registry,
}

impl InstallRole {
    fn name(self) -> &'static str {
        match self {
            InstallRole::Operator => "operator",
            InstallRole::Listener => "listener",
            InstallRole::Edge => "edge",
            InstallRole::Lb => "lb",
            InstallRole::Dns => "dns",
            InstallRole::Agent => "agent",
            InstallRole::Registry => "registry",
        }
    }

    /// What the role is, for the unit's description.
    fn description(self) -> &'static str {
        match self {
            InstallRole::Operator => "Zeitwork operator (control plane API)",
            InstallRole::Listener => "Zeitwork listener (event log → NATS)",
            InstallRole::Edge => "Zeitwork edge (HTTP/HTTPS proxy)",
            InstallRole::Lb => "Zeitwork L4 load balancer",
            InstallRole::Dns => "Zeitwork GeoDNS (authoritative for the base domain)",
            InstallRole::Agent => "Zeitwork node agent (microVMs)",
            InstallRole::Registry => "Zeitwork platform registry",
        }
    }

    /// The keys the role reads from the environment besides its flags.
    fn keys(self) -> &'static [Key] {
        match self {
            InstallRole::Operator => &[Key::Secrets],
            InstallRole::Edge => &[Key::Certificates],
            _ => &[],
        }
    }

    /// Whether it listens on ports below 1024 (80/443 and the like).
    fn binds_low_ports(self) -> bool {
        matches!(self, InstallRole::Edge | InstallRole::Lb | InstallRole::Dns)
    }
}

/// The unit for `role`, running `binary`.
pub fn unit(role: InstallRole, binary: &Path) -> String {
    let name = role.name();
    let mut unit = format!(
        "# Made by `zeitwork install {name}`; settings in /etc/zeitwork/{name}.env.
[Unit]
Description={description}
Wants=network-online.target
After=network-online.target

[Service]
ExecStart={binary} server {name}
EnvironmentFile=/etc/zeitwork/{name}.env
Restart=on-failure
RestartSec=2s
NoNewPrivileges=yes
ProtectHome=yes
PrivateTmp=yes
ProtectKernelModules=yes
ProtectClock=yes
LockPersonality=yes
RestrictRealtime=yes
RestrictSUIDSGID=yes
StateDirectory=zeitwork/{name}
",
        description = role.description(),
        binary = binary.display(),
    );
    if role == InstallRole::Agent {
        unit.push_str(
            "# Root: network namespaces, links, nftables, cgroups and the VMMs' jails. The
# microVMs outlive the agent (the next one adopts them): stop only the agent itself.
KillMode=process
Delegate=yes
ProtectSystem=full
",
        );
    } else {
        unit.push_str(&format!(
            "User={USER}
Group={USER}
ProtectSystem=strict
PrivateDevices=yes
ProtectKernelTunables=yes
ProtectControlGroups=yes
MemoryDenyWriteExecute=yes
SystemCallArchitectures=native
RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6
"
        ));
        if role.binds_low_ports() {
            unit.push_str(
                "AmbientCapabilities=CAP_NET_BIND_SERVICE\nCapabilityBoundingSet=CAP_NET_BIND_SERVICE\n",
            );
        } else {
            unit.push_str("CapabilityBoundingSet=\n");
        }
    }
    unit.push_str("\n[Install]\nWantedBy=multi-user.target\n");
    unit
}

/// The settings template for `role`: every environment variable its flags read, commented
/// out with its default, the required ones left to fill in.
pub fn settings(role: InstallRole) -> String {
    let name = role.name();
    let command = crate::server::Role::augment_subcommands(clap::Command::new("server"));
    let sub = command
        .find_subcommand(name)
        .expect("every installable role is a server role");
    let mut out = format!(
        "# Settings of `zeitwork server {name}` (read by zeitwork-{name}.service).\n\
         # Each line is a flag's environment variable; uncomment to set. Keep this file\n\
         # readable by root and the service only: it holds secrets.\n"
    );
    for key in role.keys() {
        out.push_str(&format!(
            "\n# Required: 64 hex characters ({}); `openssl rand -hex 32` makes one, the same on\n# every machine of this role.\n{}=\n",
            key.seals(),
            key.var()
        ));
    }
    let mut args: Vec<_> = sub
        .get_arguments()
        .filter(|a| a.get_env().is_some())
        .collect();
    args.sort_by_key(|a| !a.is_required_set());
    for arg in args {
        let env = arg.get_env().expect("filtered").to_string_lossy();
        let help = arg
            .get_help()
            .map(|h| h.to_string())
            .unwrap_or_default()
            .replace('\n', "\n# ");
        out.push('\n');
        if !help.is_empty() {
            out.push_str(&format!("# {help}\n"));
        }
        let defaults: Vec<String> = arg
            .get_default_values()
            .iter()
            .map(|v| v.to_string_lossy().into_owned())
            .collect();
        if arg.is_required_set() {
            out.push_str(&format!("# Required.\n{env}=\n"));
        } else {
            out.push_str(&format!("# {env}={}\n", defaults.join(",")));
        }
    }
    out
}

pub async fn run(args: InstallArgs) -> anyhow::Result<()> {
    let role = args.role;
    let name = role.name();
    let on_host = args.root == Path::new("/");
    let binary = match args.binary {
        Some(b) => b,
        None => {
            let target = PathBuf::from("/usr/local/bin/zeitwork");
            let here = std::env::current_exe().context("finding this binary")?;
            let dest = args.root.join(target.strip_prefix("/").expect("absolute"));
            if here != dest {
                std::fs::create_dir_all(dest.parent().expect("a directory"))?;
                std::fs::copy(&here, &dest)
                    .with_context(|| format!("copying {} to {}", here.display(), dest.display()))?;
            }
            target
        }
    };
    if on_host && role != InstallRole::Agent {
        make_user()?;
    }
    let unit_path = args
        .root
        .join(format!("etc/systemd/system/zeitwork-{name}.service"));
    std::fs::create_dir_all(unit_path.parent().expect("a directory"))?;
    std::fs::write(&unit_path, unit(role, &binary))
        .with_context(|| format!("writing {}", unit_path.display()))?;
    let settings_path = args.root.join(format!("etc/zeitwork/{name}.env"));
    std::fs::create_dir_all(settings_path.parent().expect("a directory"))?;
    let kept = settings_path.exists();
    if !kept {
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o640)
            .open(&settings_path)
            .with_context(|| format!("writing {}", settings_path.display()))?;
        file.write_all(settings(role).as_bytes())?;
        if on_host && role != InstallRole::Agent {
            // Root writes it, the service reads it.
            let status = std::process::Command::new("chgrp")
                .arg(USER)
                .arg(&settings_path)
                .status()?;
            anyhow::ensure!(status.success(), "chgrp {USER} {}", settings_path.display());
        }
    }
    std::fs::set_permissions(&settings_path, std::fs::Permissions::from_mode(0o640))?;
    if on_host {
        let reloaded = std::process::Command::new("systemctl")
            .arg("daemon-reload")
            .status();
        if !reloaded.is_ok_and(|s| s.success()) {
            eprintln!("systemd did not reload its units (is it running here?)");
        }
    }
    println!("Installed {}", unit_path.display());
    println!(
        "Settings: {}{}",
        settings_path.display(),
        if kept { " (kept as it was)" } else { "" }
    );
    println!(
        "Next: fill in the settings, then `systemctl enable --now zeitwork-{name}` (docs/cluster.md)."
    );
    Ok(())
}

/// The system user the roles run as, unless it exists.
fn make_user() -> anyhow::Result<()> {
    let exists = std::process::Command::new("id")
        .arg(USER)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !exists {
        let status = std::process::Command::new("useradd")
            .args([
                "--system",
                "--no-create-home",
                "--shell",
                "/usr/sbin/nologin",
                USER,
            ])
            .status()
            .context("useradd")?;
        anyhow::ensure!(status.success(), "useradd {USER} failed");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn units_are_hardened_and_the_agent_leaves_its_vms_running() {
        let edge = unit(InstallRole::Edge, Path::new("/usr/local/bin/zeitwork"));
        for line in [
            "ExecStart=/usr/local/bin/zeitwork server edge",
            "EnvironmentFile=/etc/zeitwork/edge.env",
            "User=zeitwork",
            "NoNewPrivileges=yes",
            "ProtectSystem=strict",
            "AmbientCapabilities=CAP_NET_BIND_SERVICE",
        ] {
            assert!(
                edge.lines().any(|l| l == line),
                "edge unit lacks {line}:\n{edge}"
            );
        }
        let operator = unit(InstallRole::Operator, Path::new("/usr/local/bin/zeitwork"));
        assert!(operator.contains("CapabilityBoundingSet=\n"), "{operator}");
        let agent = unit(InstallRole::Agent, Path::new("/usr/local/bin/zeitwork"));
        assert!(agent.contains("KillMode=process"), "{agent}");
        assert!(!agent.contains("User="), "the agent runs as root");
    }

    #[test]
    fn settings_name_every_variable_the_role_reads() {
        let edge = settings(InstallRole::Edge);
        for env in [
            "ZEITWORK_CERT_KEY=",
            "DATABASE_URL=",
            "# NATS_URL=",
            "# ZEITWORK_REGION=",
        ] {
            assert!(edge.contains(env), "edge settings lack {env}:\n{edge}");
        }
        let agent = settings(InstallRole::Agent);
        for env in [
            "# ZEITWORK_OVERLAY_PORT=",
            "# ZEITWORK_JOIN_TOKEN=",
            "# ZEITWORK_API=http://127.0.0.1:8080",
        ] {
            assert!(agent.contains(env), "agent settings lack {env}:\n{agent}");
        }
        assert!(settings(InstallRole::Operator).contains("ZEITWORK_SECRET_KEY="));
    }
}
