//! One instance from spec to powered-off: everything created for it is listed in
//! [`Instance`] and removed by [`Instance::wait`] / [`Instance::stop`], and by the start
//! path itself when a later step fails.

use std::collections::BTreeMap;
use std::future::Future;
use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::time::Duration;

use zeitwork_core::guest::{GuestConfig, Interface};
use zeitwork_image::ImageConfig;
use zeitwork_net::{AppPort, Firewall, InstanceAddrs, Link, Netns};
use zeitwork_vmm::{NetAttachment, RunningVm, VmExit, VmSpec, Vmm};

use crate::{AgentError, InstanceRecord, Runtime, disks};

/// Size of each instance's writable disk; sparse, so unused space costs nothing.
const SCRATCH_MB: u64 = 1024;

#[derive(Debug, Clone)]
pub struct InstanceSpec {
    /// Unique on the node (the instance id).
    pub id: String,
    /// `name@sha256:…` or a tag.
    pub image: String,
    /// Overrides the image's entrypoint and command.
    pub command: Option<Vec<String>>,
    pub env: BTreeMap<String, String>,
    pub secrets: BTreeMap<String, String>,
    /// The app's port; the host may connect to it (and `PORT` is set in the guest).
    pub port: Option<u16>,
    /// Without `port`, take the image's first exposed TCP port (`EXPOSE`): for the
    /// process that serves the deployment's URLs.
    pub port_from_image: bool,
    pub vcpus: u32,
    pub memory_mb: u64,
    pub cpu_weight: u32,
    /// This instance's slot in the node's address pool (from IPAM).
    pub net_index: u32,
}

pub struct Instance {
    pub id: String,
    pub addrs: InstanceAddrs,
    pub port: Option<u16>,
    pub dir: PathBuf,
    net_index: u32,
    vm: RunningVm,
    link: Link,
    firewall: Firewall,
}

impl<V: Vmm> Runtime<V> {
    pub async fn start(&self, spec: &InstanceSpec) -> Result<Instance, AgentError> {
        let rootfs = self
            .images
            .rootfs(&spec.image, &self.config.pull_auth(&spec.image))
            .await?;
        let argv = spec.command.clone().unwrap_or_else(|| {
            [rootfs.config.entrypoint.clone(), rootfs.config.cmd.clone()].concat()
        });
        if argv.is_empty() {
            return Err(AgentError::NoCommand);
        }
        let mut spec = spec.clone();
        if spec.port.is_none() && spec.port_from_image {
            spec.port = rootfs.config.tcp_ports().first().copied();
        }
        let spec = &spec;
        let dir = self.instance_dir(&spec.id);
        tokio::fs::create_dir_all(&dir)
            .await
            .map_err(AgentError::io(format!("creating {}", dir.display())))?;
        let record = InstanceRecord {
            id: spec.id.clone(),
            image: spec.image.clone(),
            net_index: spec.net_index,
            port: spec.port,
        };
        if let Err(e) = record.save(&dir) {
            let _ = tokio::fs::remove_dir_all(&dir).await;
            return Err(e);
        }
        let addrs = InstanceAddrs::for_index(self.config.node_prefix, spec.net_index)?;
        let link = match Link::create(spec.net_index, addrs, self.topology(), &spec.id).await {
            Ok(link) => link,
            Err(e) => {
                let _ = tokio::fs::remove_dir_all(&dir).await;
                return Err(e.into());
            }
        };
        match self
            .boot(spec, &rootfs.config, rootfs.path, argv, &link, &dir)
            .await
        {
            Ok(vm) => Ok(Instance::new(record, addrs, dir, vm, link, &self.firewall)),
            Err(e) => {
                let _ = link.remove().await;
                let _ = tokio::fs::remove_dir_all(&dir).await;
                Err(e)
            }
        }
    }

    async fn boot(
        &self,
        spec: &InstanceSpec,
        image: &ImageConfig,
        root_disk: PathBuf,
        argv: Vec<String>,
        link: &Link,
        dir: &std::path::Path,
    ) -> Result<RunningVm, AgentError> {
        let scratch = dir.join("scratch.ext4");
        disks::scratch(&scratch, SCRATCH_MB).await?;
        let config_disk = dir.join("config.img");
        disks::config(&config_disk, &guest_config(spec, image, argv, link.addrs))?;
        let vm = self
            .vmm
            .launch(&VmSpec {
                name: spec.id.clone(),
                vcpus: spec.vcpus,
                memory_mb: spec.memory_mb,
                cpu_weight: spec.cpu_weight,
                kernel: self.guest.vmlinux.clone(),
                initramfs: self.guest.initramfs.clone(),
                root_disk,
                scratch_disk: scratch,
                config_disk,
                cache_disk: None,
                net: Some(NetAttachment {
                    tap: link.tap().to_owned(),
                    mac: link.mac.clone(),
                    netns: link.netns.as_ref().map(Netns::path),
                }),
                run_dir: dir.to_path_buf(),
                slot: spec.net_index,
            })
            .await?;
        if let Some(port) = spec.port {
            self.firewall
                .allow(AppPort {
                    addrs: link.addrs,
                    port,
                })
                .await?;
        }
        Ok(vm)
    }
}

/// What init needs: the image's defaults, overridden by the spec.
fn guest_config(
    spec: &InstanceSpec,
    image: &ImageConfig,
    argv: Vec<String>,
    addrs: InstanceAddrs,
) -> GuestConfig {
    let mut env: BTreeMap<String, String> = image
        .env
        .iter()
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
    env.entry("PATH".into())
        .or_insert_with(|| "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".into());
    if let Some(port) = spec.port {
        env.insert("PORT".into(), port.to_string());
    }
    env.extend(spec.env.clone());
    GuestConfig {
        argv,
        env,
        workdir: image.working_dir.clone().unwrap_or_else(|| "/".into()),
        user: image.user.clone().unwrap_or_else(|| "0:0".into()),
        hostname: spec.id.chars().take(63).collect(),
        interfaces: vec![interface(addrs)],
        dns: host_resolvers(),
        secrets: spec.secrets.clone(),
        cache: None,
    }
}

/// The guest's `eth0`: its ends of the point-to-point links, the host's as gateways.
pub(crate) fn interface(addrs: InstanceAddrs) -> Interface {
    Interface {
        name: "eth0".into(),
        ipv4: Some(format!("{}/31", addrs.guest4)),
        gateway4: Some(addrs.host4.to_string()),
        ipv6: Some(format!("{}/127", addrs.guest6)),
        gateway6: Some(addrs.host6.to_string()),
    }
}

/// The host's upstream resolvers; loopback ones (a local stub) are unreachable from a guest.
pub(crate) fn host_resolvers() -> Vec<String> {
    std::fs::read_to_string("/etc/resolv.conf")
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.strip_prefix("nameserver"))
        .map(str::trim)
        .filter(|a| {
            a.parse::<std::net::IpAddr>()
                .is_ok_and(|ip| !ip.is_loopback())
        })
        .map(str::to_owned)
        .collect()
}

impl Instance {
    /// One constructor for started and adopted instances.
    pub(crate) fn new(
        record: InstanceRecord,
        addrs: InstanceAddrs,
        dir: PathBuf,
        vm: RunningVm,
        link: Link,
        firewall: &Firewall,
    ) -> Instance {
        Instance {
            id: record.id,
            addrs,
            port: record.port,
            dir,
            net_index: record.net_index,
            vm,
            link,
            firewall: firewall.clone(),
        }
    }

    /// Where the host reaches the app, when it has a port.
    pub fn url(&self) -> Option<String> {
        self.port
            .map(|p| format!("http://{}:{p}/", self.addrs.guest4))
    }

    pub fn guest_ipv4(&self) -> Ipv4Addr {
        self.addrs.guest4
    }

    /// Its slot in the node's address pool.
    pub fn net_index(&self) -> u32 {
        self.net_index
    }

    pub fn vmm_pid(&self) -> u32 {
        self.vm.pid()
    }

    pub fn console_log(&self) -> PathBuf {
        self.dir.join("console.log")
    }

    /// Waits until the VM powers off, then removes what was created for it.
    pub async fn wait(self) -> Result<VmExit, AgentError> {
        self.wait_or_stop(std::future::pending(), Duration::ZERO)
            .await
    }

    /// Stops the VM (gracefully: the app gets SIGTERM; SIGKILL to the VMM after `grace`)
    /// and cleans up.
    pub async fn stop(self, grace: Duration) -> Result<VmExit, AgentError> {
        self.wait_or_stop(std::future::ready(()), grace).await
    }

    /// Waits until the VM powers off, or until `stop` resolves and then stops it; then
    /// removes what was created for it.
    pub async fn wait_or_stop(
        self,
        stop: impl Future<Output = ()>,
        grace: Duration,
    ) -> Result<VmExit, AgentError> {
        let Instance {
            vm,
            link,
            firewall,
            port,
            dir,
            ..
        } = self;
        let exit = vm.wait_or_stop(stop, grace).await;
        teardown(link, firewall, port, &dir).await;
        Ok(exit?)
    }
}

/// Removes the link (and the namespace, if the VMM had one), the firewall entry, the
/// disks and the record that would let a later agent adopt it; the console log stays for
/// reading.
async fn teardown(link: Link, firewall: Firewall, port: Option<u16>, dir: &std::path::Path) {
    if let Some(port) = port {
        let _ = firewall
            .revoke(AppPort {
                addrs: link.addrs,
                port,
            })
            .await;
    }
    if let Err(e) = link.remove().await {
        tracing::warn!(error = %e, "removing the instance's link");
    }
    for disk in ["scratch.ext4", "config.img"] {
        let _ = tokio::fs::remove_file(dir.join(disk)).await;
    }
    InstanceRecord::remove(dir);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn guest_config_merges_image_and_spec() {
        let image = ImageConfig {
            entrypoint: vec!["/hello".into()],
            env: vec!["PATH=/bin".into(), "MODE=image".into()],
            working_dir: Some("/app".into()),
            user: Some("1000".into()),
            ..Default::default()
        };
        let spec = InstanceSpec {
            id: "i-1".into(),
            image: "x".into(),
            command: None,
            env: BTreeMap::from([("MODE".into(), "spec".into())]),
            secrets: BTreeMap::from([("DB".into(), "s".into())]),
            port: Some(8080),
            port_from_image: false,
            vcpus: 1,
            memory_mb: 128,
            cpu_weight: 100,
            net_index: 3,
        };
        let addrs =
            InstanceAddrs::for_index(zeitwork_net::NodePrefix::parse("fd00:1::/64").unwrap(), 3)
                .unwrap();
        let c = guest_config(&spec, &image, vec!["/hello".into()], addrs);
        assert_eq!(c.env["MODE"], "spec");
        assert_eq!(c.env["PATH"], "/bin");
        assert_eq!(c.env["PORT"], "8080");
        assert_eq!((c.workdir.as_str(), c.user.as_str()), ("/app", "1000"));
        assert_eq!(c.interfaces[0].ipv4.as_deref(), Some("172.31.0.7/31"));
        assert_eq!(c.interfaces[0].gateway4.as_deref(), Some("172.31.0.6"));
        assert_eq!(c.secrets["DB"], "s");
    }
}
