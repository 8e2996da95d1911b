//! Embeds the dashboard's production build (`web/dist`, made by `npm run build` in
//! `web/`; `scripts/up.sh` runs it) into the operator, each text file also gzipped once
//! here so serving it costs no CPU. Without a build, the operator still builds and
//! serves a page saying how to build the dashboard.

use std::fmt::Write as _;
use std::io::Write as _;
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
    let out = PathBuf::from(std::env::var_os("OUT_DIR").expect("set by cargo"));
    let mut code = String::from(
        "/// The dashboard's files: URL path, contents, and the contents gzipped (text files).\n\
         pub static FILES: &[super::Entry] = &[\n",
    );
    for (n, (url, path)) in files.iter().enumerate() {
        let gz = gzipped(path, &out.join(format!("dashboard-{n}.gz")));
        let gz = gz.map_or("None".to_owned(), |p| {
            format!("Some(include_bytes!({:?}))", p.display().to_string())
        });
        writeln!(
            code,
            "    ({url:?}, include_bytes!({:?}), {gz}),",
            path.display().to_string()
        )
        .expect("writing to a string");
    }
    code.push_str("];\n");
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

/// Writes `path` gzipped to `to` when it is text (images and fonts are compressed
/// already); `to`, if written.
fn gzipped(path: &Path, to: &Path) -> Option<PathBuf> {
    let text = ["html", "js", "css", "svg", "json", "map", "txt"];
    let ext = path.extension()?.to_str()?;
    if !text.contains(&ext) {
        return None;
    }
    let raw = std::fs::read(path).expect("web/dist is readable");
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    gz.write_all(&raw).expect("compressing in memory");
    let gz = gz.finish().expect("compressing in memory");
    std::fs::write(to, gz).expect("OUT_DIR is writable");
    Some(to.to_owned())
}
