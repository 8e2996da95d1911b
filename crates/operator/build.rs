//! Embeds the dashboard's production build (`web/dist`, made by `npm run build` in
//! `web/`; `scripts/up.sh` runs it) into the operator. Without one, the operator still
//! builds and serves a page saying how to build the dashboard.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

fn main() {
    let manifest = PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").expect("set by cargo"));
    let dist = std::env::var_os("ZEITWORK_WEB_DIST")
        .map(PathBuf::from)
        .unwrap_or_else(|| manifest.join("../../web/dist"));
    println!("cargo:rerun-if-env-changed=ZEITWORK_WEB_DIST");
    println!("cargo:rerun-if-changed={}", dist.display());
    let mut files = Vec::new();
    if dist.join("index.html").is_file() {
        collect(&dist, &dist, &mut files);
    }
    files.sort();
    let mut code = String::from(
        "/// The dashboard's files: URL path and contents.\npub static FILES: &[(&str, &[u8])] = &[\n",
    );
    for (url, path) in &files {
        writeln!(
            code,
            "    ({url:?}, include_bytes!({:?})),",
            path.display().to_string()
        )
        .expect("writing to a string");
    }
    code.push_str("];\n");
    let out = PathBuf::from(std::env::var_os("OUT_DIR").expect("set by cargo"));
    std::fs::write(out.join("dashboard.rs"), code).expect("OUT_DIR is writable");
}

fn collect(root: &Path, dir: &Path, files: &mut Vec<(String, PathBuf)>) {
    let entries = std::fs::read_dir(dir).expect("web/dist is readable");
    for entry in entries {
        let path = entry.expect("web/dist is readable").path();
        if path.is_dir() {
            collect(root, &path, files);
        } else {
            let rel = path.strip_prefix(root).expect("below the root");
            let url = format!("/{}", rel.to_string_lossy().replace('\\', "/"));
            let abs = path.canonicalize().expect("files canonicalize");
            files.push((url, abs));
        }
    }
}
