//! `zeitwork image push`: pack a directory into an OCI image and push it, with no
//! container daemon. This is how the bundled example app becomes an image.

use std::path::PathBuf;

use clap::{Args, Subcommand};
use zeitwork_image::{ImageConfig, PushOptions, push_directory};

#[derive(Subcommand)]
pub enum ImageCommand {
    /// Pack DIR as a one-layer image and push it; prints `NAME@sha256:…`.
    Push(PushArgs),
}

#[derive(Args)]
pub struct PushArgs {
    /// The directory that becomes the image's root filesystem.
    dir: PathBuf,
    /// Where to push, `registry/name:tag`.
    #[arg(long)]
    reference: String,
    /// The program and its first arguments, one per `--entrypoint`.
    #[arg(long, allow_hyphen_values = true)]
    entrypoint: Vec<String>,
    /// Ports the app listens on (documentation for deploys).
    #[arg(long = "expose")]
    expose: Vec<u16>,
}

pub async fn run(command: ImageCommand) -> anyhow::Result<()> {
    let ImageCommand::Push(args) = command;
    let config = ImageConfig {
        entrypoint: args.entrypoint,
        exposed_ports: args.expose.iter().map(|p| format!("{p}/tcp")).collect(),
        ..Default::default()
    };
    let digest =
        push_directory(&args.dir, &args.reference, &config, &PushOptions::default()).await?;
    let name = args
        .reference
        .rsplit_once(':')
        .filter(|(_, tag)| !tag.contains('/'))
        .map_or(args.reference.as_str(), |(n, _)| n);
    println!("{name}@{digest}");
    Ok(())
}
