//! The boot sequence of PID 1, in order. Every step either succeeds or returns an
//! [`Error`] saying what init was doing; the caller turns that into the one
//! `FAILURE_LINE` and powers off.

use std::path::Path;
use std::time::Duration;

use zeitwork_core::guest::{Exit, GuestConfig};

use crate::console::{self, BootOptions};
use crate::error::{Context, Error, Result};
use crate::mounts::{CONFIG_DEVICE, ROOT_DEVICE, RW_DEVICE};
use crate::process::App;
use crate::{
    busy, config, etc, exec, modules, mounts, network, power, process, program, secrets, user,
};

/// How long init waits for the virtio block devices once their modules are loaded.
/// Probing is synchronous on module load, so this only matters when a disk is missing;
/// generous for slow software emulation (TCG) on a busy host.
const DEVICE_TIMEOUT: Duration = Duration::from_secs(10);

/// Runs the whole boot and the app; never returns.
pub fn run() -> ! {
    match boot() {
        Ok(exit) => console::exit(exit),
        Err(e) => console::fail(&e.to_string()),
    }
}

fn boot() -> Result<Exit> {
    // 1. API filesystems, console, modules, devices.
    mounts::mount_dev()?;
    console::attach().context("opening /dev/console")?;
    mounts::mount_api_filesystems()?;
    console::apply(BootOptions::from_proc());
    console::debug(|| "early mounts done".into());
    // Ctrl-Alt-Del (the VMM's graceful stop) becomes a SIGINT to init instead of a reset.
    let _ = nix::sys::reboot::set_cad_enabled(false);
    modules::load_all()?;
    mounts::wait_for(&[ROOT_DEVICE, RW_DEVICE, CONFIG_DEVICE], DEVICE_TIMEOUT)?;

    // 2. The config.
    let config = config::read(Path::new(CONFIG_DEVICE))?;
    let links = network::plan(&config.interfaces)?;
    if config.argv.is_empty() {
        return Err(Error::invalid("reading the config", "argv is empty"));
    }

    // 3. The app's root.
    mounts::mount_root()?;
    if let Some(cache) = &config.cache {
        mounts::mount_cache(cache, DEVICE_TIMEOUT)?;
    }
    mounts::move_api_filesystems()?;
    if !config.hostname.is_empty() {
        nix::unistd::sethostname(&config.hostname)
            .with_context(|| format!("setting the hostname {:?}", config.hostname))?;
    }

    // 4. Network.
    network::configure(&links)?;

    // 5. Switch root; from here on every path is inside the app's root.
    mounts::switch_root()?;
    etc::write(&config.dns, &config.hostname, &links)?;

    // 6. Identity, secrets, working directory, program, and run it.
    let identity = user::resolve_in_root(&config.user)?;
    secrets::write(&config.secrets, identity.uid, identity.gid)?;
    busy::prepare(identity.uid, identity.gid)?;
    enter_workdir(&config)?;
    let env = program::environment(&config.env, &identity.home);
    let program = program::resolve(&config.argv[0], env.get("PATH").map(String::as_str))?;
    let app = App {
        program,
        argv: config.argv,
        env,
        identity,
    };
    let signals = process::block_signals()?;
    let button = power::button();
    let pid = process::start(Path::new("/proc/self/exe"), &app)?;
    busy::watch();
    exec::serve(exec::Context {
        env: app.env.clone(),
        identity: app.identity.clone(),
    });
    Ok(process::supervise(&signals, button, pid))
}

/// `cd` into the config's working directory (relative to `/`), creating it when the
/// image lacks it, as container runtimes do.
fn enter_workdir(config: &GuestConfig) -> Result<()> {
    let dir = Path::new("/").join(&config.workdir);
    std::fs::create_dir_all(&dir)
        .with_context(|| format!("creating the working directory {}", dir.display()))?;
    nix::unistd::chdir(&dir)
        .with_context(|| format!("entering the working directory {}", dir.display()))
}
