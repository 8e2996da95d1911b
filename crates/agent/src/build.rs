//! Builds from source in a microVM: the builder guest (Debian with buildah, made with
//! mmdebstrap and cached by its recipe, [`BuilderRootfs`]) is booted by the node's `Vmm`
//! with its own CPU, memory, disk and wall-time limits and a link of its own to the
//! internet, confined as an instance's (or none); the source context goes in and an OCI
//! archive of the image comes out through its scratch disk (`Runtime::build`), which the
//! node then pushes to the platform registry (`zeitwork_image::push_oci_archive`).

mod bases;
mod fetch;
mod node;
mod rootfs;
mod run;

pub(crate) use node::Builds;
pub use rootfs::{BuilderRootfs, PACKAGES, SUITE};
pub use run::{BuildError, BuildLimits, BuildSpec, Built, is_build_output};
