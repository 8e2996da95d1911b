//! `zeitwork vm run` and `zeitwork node setup`: operator commands that drive the node
//! runtime directly, without the control plane, for setting up and debugging a node.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use clap::{Args, Subcommand};
use tokio::io::{AsyncBufReadExt, AsyncSeekExt, BufReader};
use zeitwork_agent::build::{BuildLimits, BuildSpec, BuilderRootfs};
use zeitwork_agent::{InstanceSpec, Runtime, RuntimeConfig};
use zeitwork_core::guest::Exit;
use zeitwork_net::NodePrefix;
use zeitwork_vmm::{Driver, VmExit, Vmm};

use crate::server::shutdown_signal;

#[derive(Args, Debug, Clone)]
pub struct NodeArgs {
    /// Where the node keeps its kernel, image cache and instance files.
    #[arg(long, env = "ZEITWORK_NODE_DIR", default_value = "/var/lib/zeitwork")]
    pub node_dir: PathBuf,
    /// The static guest init [default: `zeitwork-init` next to this binary, or where
    /// `scripts/build-guest.sh` builds it].
    #[arg(long, env = "ZEITWORK_INIT_BIN")]
    pub init_bin: Option<PathBuf>,
    /// This node's IPv6 ULA /64 for instances (`vm run`, `node setup`; an enrolled
    /// agent uses the one the control plane allocated it).
    #[arg(
        long,
        env = "ZEITWORK_NODE_PREFIX",
        default_value = "fd7a:7a77:0:1::/64"
    )]
    pub node_prefix: String,
    /// Private destinations guests may reach past the default deny list, comma-separated
    /// `ADDR[/LEN][:PORT]` (IPv6 in brackets with a port), e.g. a managed database
    /// `10.0.5.7:5432`.
    #[arg(long, env = "ZEITWORK_EGRESS_ALLOW", value_delimiter = ',')]
    pub egress_allow: Vec<zeitwork_net::EgressAllow>,
    /// IPv6 networks the platform's edges on other hosts connect from, comma-separated
    /// `ADDR[/LEN]`: they may reach this node's instances on their app ports (each
    /// edge host also needs a route to the node's instance /64 through the node).
    #[arg(long, env = "ZEITWORK_EDGE_NETWORKS", value_delimiter = ',')]
    pub edge_networks: Vec<zeitwork_net::EdgeNetwork>,
}

impl NodeArgs {
    fn config(&self) -> anyhow::Result<RuntimeConfig> {
        let init_binary = match &self.init_bin {
            Some(path) => path.clone(),
            None => crate::guest_bins::static_bin("zeitwork-init")?,
        };
        anyhow::ensure!(
            init_binary.is_file(),
            "{} not found: build it with scripts/build-guest.sh or pass --init-bin",
            init_binary.display()
        );
        Ok(RuntimeConfig {
            state_dir: self.node_dir.clone(),
            guest_dir: self.node_dir.join("guest"),
            init_binary,
            node_prefix: NodePrefix::parse(&self.node_prefix)?,
            egress_allow: self.egress_allow.clone(),
            edge_networks: self.edge_networks.clone(),
            registry: None,
        })
    }

    pub(crate) async fn runtime(&self) -> anyhow::Result<Runtime<Driver>> {
        self.runtime_with(None).await
    }

    /// The runtime, pulling the platform registry's images as `registry` says.
    pub(crate) async fn runtime_with(
        &self,
        registry: Option<zeitwork_agent::RegistryLogin>,
    ) -> anyhow::Result<Runtime<Driver>> {
        let config = RuntimeConfig {
            registry,
            ..self.config()?
        };
        let driver = zeitwork_vmm::auto()?;
        eprintln!(
            "preparing the guest kernel and initramfs in {} …",
            config.guest_dir.display()
        );
        let runtime = Runtime::new(driver, config).await?;
        eprintln!(
            "guest kernel {} ready; VMM: {}",
            runtime.guest().kernel_release,
            runtime.vmm().name()
        );
        Ok(runtime)
    }
}

#[derive(Subcommand)]
pub enum NodeCommand {
    /// Download and prepare the guest kernel and initramfs, and the builder guest (Debian
    /// with buildah); all cached, so a second run does nothing.
    Setup(SetupArgs),
}

#[derive(Args)]
pub struct SetupArgs {
    #[command(flatten)]
    node: NodeArgs,
    /// Do not prepare the builder guest (this node runs no builds).
    #[arg(long)]
    no_builder: bool,
}

#[derive(Subcommand)]
pub enum VmCommand {
    /// Boot an image in a microVM, print its console and URL; Ctrl-C stops it.
    Run(VmRunArgs),
    /// Build a Dockerfile in a builder microVM (reaching the internet only; bounded CPU,
    /// memory, disk and time) and push the image, or write it as an OCI archive.
    Build(VmBuildArgs),
}

#[derive(Args)]
pub struct VmBuildArgs {
    #[command(flatten)]
    node: NodeArgs,
    /// The build context.
    #[arg(long, default_value = ".")]
    context: PathBuf,
    /// The Dockerfile, relative to the context.
    #[arg(long, default_value = "Dockerfile")]
    dockerfile: String,
    /// The stage to build.
    #[arg(long)]
    target: Option<String>,
    /// `NAME=VALUE` build arguments.
    #[arg(long = "build-arg", value_parser = parse_kv)]
    build_args: Vec<(String, String)>,
    /// Push the image here (`registry/name:tag`, with the docker/podman or `zeitwork
    /// registry login` credentials).
    #[arg(long, value_name = "REF")]
    push: Option<String>,
    /// Write the image as an OCI archive here instead.
    #[arg(long, value_name = "PATH", conflicts_with = "push")]
    output: Option<PathBuf>,
    #[arg(long, default_value_t = 2)]
    vcpus: u32,
    #[arg(long, default_value_t = 2048)]
    memory_mb: u64,
    #[arg(long, default_value_t = 10 * 1024)]
    disk_mb: u64,
    /// Wall time in seconds.
    #[arg(long, default_value_t = 15 * 60)]
    timeout: u64,
    /// Slot of the builder VM on this node (its VMM's own ids; pick one no VM uses).
    #[arg(long, default_value_t = 1001)]
    slot: u32,
    /// The builder's link to the internet, among the node's builder links (pick one no
    /// running build uses).
    #[arg(long, default_value_t = 0, value_parser = clap::value_parser!(u32).range(0..i64::from(zeitwork_net::BUILDER_LINKS)))]
    link: u32,
    /// Build with no network (`RUN` steps reach nothing).
    #[arg(long)]
    no_network: bool,
}

#[derive(Args)]
pub struct VmRunArgs {
    #[command(flatten)]
    node: NodeArgs,
    /// The image, `name@sha256:…` or `name:tag`.
    #[arg(long)]
    image: String,
    /// Command and arguments instead of the image's entrypoint, after `--`.
    #[arg(last = true)]
    cmd: Vec<String>,
    /// The app's port (reachable from this host).
    #[arg(long)]
    port: Option<u16>,
    #[arg(long, default_value_t = 256)]
    memory_mb: u64,
    #[arg(long, default_value_t = 1)]
    vcpus: u32,
    /// `NAME=VALUE` environment variables for the app (`--env` names the deploy env).
    #[arg(long = "var", value_parser = parse_kv)]
    vars: Vec<(String, String)>,
    /// Slot in the node's address pool (pick one no running instance uses).
    #[arg(long, default_value_t = 1000)]
    net_index: u32,
}

fn parse_kv(s: &str) -> Result<(String, String), String> {
    s.split_once('=')
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .ok_or_else(|| format!("expected NAME=VALUE, got {s:?}"))
}

pub async fn node(command: NodeCommand) -> anyhow::Result<()> {
    match command {
        NodeCommand::Setup(args) => {
            let runtime = args.node.runtime().await?;
            println!("vmlinux:   {}", runtime.guest().vmlinux.display());
            println!("initramfs: {}", runtime.guest().initramfs.display());
            if !args.no_builder {
                eprintln!("preparing the builder guest (Debian with buildah) …");
                let builder = BuilderRootfs::prepare(&args.node.node_dir.join("guest")).await?;
                println!("builder:   {}", builder.path.display());
            }
            Ok(())
        }
    }
}

pub async fn vm(command: VmCommand) -> anyhow::Result<std::process::ExitCode> {
    let args = match command {
        VmCommand::Run(args) => args,
        VmCommand::Build(args) => return vm_build(args).await,
    };
    let runtime = args.node.runtime().await?;
    eprintln!("pulling {} …", args.image);
    let id = format!("vm-run-{}", std::process::id());
    let spec = InstanceSpec {
        id: id.clone(),
        image: args.image.clone(),
        command: (!args.cmd.is_empty()).then(|| args.cmd.clone()),
        env: args.vars.iter().cloned().collect::<BTreeMap<_, _>>(),
        secrets: BTreeMap::new(),
        port: args.port,
        port_from_image: true,
        vcpus: args.vcpus,
        memory_mb: args.memory_mb,
        cpu_weight: 100,
        net_index: args.net_index,
    };
    let instance = runtime.start(&spec).await.context("starting the microVM")?;
    eprintln!(
        "booted {id} (VMM pid {}), guest address {}",
        instance.vmm_pid(),
        instance.guest_ipv4()
    );
    if let Some(url) = instance.url() {
        eprintln!("URL: {url}");
    }
    let console = tokio::spawn(follow(instance.console_log()));
    let stop = async {
        shutdown_signal().await;
        eprintln!("stopping {id} …");
    };
    let exit = instance.wait_or_stop(stop, Duration::from_secs(10)).await?;
    tokio::time::sleep(Duration::from_millis(200)).await;
    console.abort();
    Ok(report(&exit))
}

async fn vm_build(args: VmBuildArgs) -> anyhow::Result<std::process::ExitCode> {
    let runtime = args.node.runtime().await?;
    eprintln!("preparing the builder guest …");
    let builder = BuilderRootfs::prepare(&args.node.node_dir.join("guest")).await?;
    let run = tempfile::Builder::new()
        .prefix("zeitwork-build-")
        .tempdir()?;
    let spec = BuildSpec {
        id: format!("vm-build-{}", std::process::id()),
        context: args.context.clone(),
        bases: run.path().join("bases"),
        dockerfile: args.dockerfile.clone(),
        target: args.target.clone(),
        build_args: args.build_args.iter().cloned().collect(),
        limits: BuildLimits {
            vcpus: args.vcpus,
            memory_mb: args.memory_mb,
            disk_mb: args.disk_mb,
            time: Duration::from_secs(args.timeout),
        },
        slot: args.slot,
        network: (!args.no_network).then_some(args.link),
        cache_disk: None,
    };
    let console = tokio::spawn(follow(run.path().join(zeitwork_vmm::CONSOLE_LOG)));
    let built = runtime.build(&builder, &spec, run.path()).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    console.abort();
    let built = match built {
        Ok(built) => built,
        Err(e) => {
            eprintln!("{e}");
            return Ok(std::process::ExitCode::FAILURE);
        }
    };
    match (&args.push, &args.output) {
        (Some(reference), _) => {
            let auth = zeitwork_image::AuthFiles::from_env().for_reference(reference)?;
            let options = zeitwork_image::PushOptions {
                auth,
                ..Default::default()
            };
            let digest =
                zeitwork_image::push_oci_archive(&built.archive, reference, &options).await?;
            println!("{reference}@{digest}");
        }
        (None, output) => {
            let output = output.clone().unwrap_or_else(|| PathBuf::from("image.tar"));
            std::fs::copy(&built.archive, &output)
                .with_context(|| format!("writing {}", output.display()))?;
            println!("{}", output.display());
        }
    }
    Ok(std::process::ExitCode::SUCCESS)
}

fn report(exit: &VmExit) -> std::process::ExitCode {
    match exit {
        VmExit::App(Exit::Code(c)) => {
            eprintln!("the app exited with code {c}");
            std::process::ExitCode::from(u8::try_from(*c).unwrap_or(1))
        }
        VmExit::App(Exit::Signal(s)) => {
            eprintln!("the app was killed by signal {s}");
            std::process::ExitCode::from(128 + u8::try_from(*s).unwrap_or(0))
        }
        VmExit::OutOfMemory => {
            eprintln!("the app ran out of memory and was killed");
            std::process::ExitCode::from(137)
        }
        VmExit::InitFailed(reason) => {
            eprintln!("the guest could not start the app: {reason}");
            std::process::ExitCode::FAILURE
        }
        VmExit::Crashed(detail) => {
            eprintln!("the VM ended without a report:\n{detail}");
            std::process::ExitCode::FAILURE
        }
    }
}

/// Prints the console log as it grows (once the VMM has made it).
async fn follow(path: PathBuf) {
    let mut file = loop {
        match tokio::fs::File::open(&path).await {
            Ok(file) => break file,
            Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    };
    let _ = file.seek(std::io::SeekFrom::Start(0)).await;
    let mut lines = BufReader::new(file).lines();
    loop {
        match lines.next_line().await {
            Ok(Some(line)) => println!("{line}"),
            Ok(None) => tokio::time::sleep(Duration::from_millis(100)).await,
            Err(_) => return,
        }
    }
}
