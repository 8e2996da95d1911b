//! Why guest artifacts could not be prepared. Each message says what to do about it.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum GuestError {
    /// `apt-cache`/`apt-get` could not run or failed.
    #[error(
        "`{command}` failed: {detail}. Install apt and configure Debian sources that carry \
         the kernel package (then run `apt-get update`), or download the kernel .deb yourself and \
         set ZEITWORK_KERNEL_DEB to its path"
    )]
    Apt { command: String, detail: String },

    /// The kernel package named in `ZEITWORK_KERNEL_DEB` (or handed in) does not exist.
    #[error(
        "kernel package {0} does not exist: set ZEITWORK_KERNEL_DEB to a downloaded linux-image-*-cloud-amd64 .deb"
    )]
    DebMissing(PathBuf),

    /// The downloaded file's digest differs from what apt announced.
    #[error(
        "{path}: sha256 {actual} differs from apt's {expected}; delete the file and run setup again"
    )]
    DebDigest {
        path: PathBuf,
        expected: String,
        actual: String,
    },

    /// The file is not a Debian package as expected.
    #[error("{path}: not a usable Debian package: {detail}")]
    BadDeb { path: PathBuf, detail: String },

    #[error(
        "{0}: no boot/vmlinuz-<release> in the package; is it a linux-image-*-amd64 package (not the metapackage)?"
    )]
    NoVmlinuz(PathBuf),

    #[error("{path}: more than one kernel in the package ({first}, {second})")]
    SeveralKernels {
        path: PathBuf,
        first: String,
        second: String,
    },

    /// The bzImage could not be understood.
    #[error("vmlinuz is not a usable bzImage: {0}")]
    BadBzImage(String),

    #[error(
        "the kernel payload is not LZ4 (legacy frame, magic 02 21 4c 18); found magic {found}. \
         Only LZ4-compressed kernels (Debian's cloud kernel) are supported"
    )]
    PayloadNotLz4 { found: String },

    #[error("LZ4 payload is corrupt: {0}")]
    BadLz4(String),

    #[error("the decompressed kernel is not an ELF file (starts with {found})")]
    NotElf { found: String },

    /// A requested module (or one it depends on) has no `.ko` and is not built in.
    #[error(
        "module {name} not found in the kernel package (release {release}) and not built in{hint}; \
         check the module list"
    )]
    ModuleNotFound {
        name: String,
        release: String,
        hint: String,
    },

    #[error("module {path}: {detail}")]
    BadModule { path: String, detail: String },

    #[error("module dependency cycle: {}", .0.join(" -> "))]
    ModuleCycle(Vec<String>),

    #[error(
        "init binary {0} is missing: build zeitwork-init first (cargo build -p zeitwork-init) or pass its path"
    )]
    InitMissing(PathBuf),

    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },
}

impl GuestError {
    /// Wraps an I/O error with what was being done.
    pub(crate) fn io(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> GuestError {
        let context = context.into();
        move |source| GuestError::Io { context, source }
    }
}
