//! Prepares the guest kernel and initramfs, as `zeitwork node setup` does, and prints where
//! they are: `cargo run -p zeitwork-guest --example prepare -- CACHE_DIR INIT_BINARY`.
//! Honors `ZEITWORK_KERNEL_DEB`.

use std::path::PathBuf;

fn main() {
    let args: Vec<PathBuf> = std::env::args_os().skip(1).map(PathBuf::from).collect();
    let [cache, init] = args.as_slice() else {
        eprintln!("usage: prepare CACHE_DIR INIT_BINARY");
        std::process::exit(2);
    };
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let started = std::time::Instant::now();
    match zeitwork_guest::prepare(cache, init) {
        Ok(a) => {
            println!("kernel_release {}", a.kernel_release);
            println!("vmlinux {}", a.vmlinux.display());
            println!("initramfs {}", a.initramfs.display());
            eprintln!("took {:?}", started.elapsed());
        }
        Err(e) => {
            eprintln!("error: {e}");
            std::process::exit(1);
        }
    }
}
