//! `registry`: where the platform registry is, and logging docker, podman, buildah and
//! skopeo in to it with this login's token (the operator is the registry's token
//! service; an org's token reaches that org's `<org>/...` repositories only).

use std::path::{Path, PathBuf};

use base64::Engine as _;
use serde_json::{Value, json};
use zeitwork_api_types::RegistryInfo;

use crate::context::{Ctx, Scope};
use crate::error::{CliError, Result};
use crate::output;

#[derive(Debug, Default, clap::Subcommand)]
pub enum RegistryAction {
    /// Show the platform registry's address
    #[default]
    Show,
    /// Let docker, podman, buildah and skopeo push and pull with this login's token
    Login,
}

/// The user name written with the token (the token service reads only the password).
const USER: &str = "zeitwork";

pub async fn registry(ctx: &Ctx, action: RegistryAction) -> Result<()> {
    let answer: RegistryInfo = ctx
        .client()?
        .get(&ctx.path(Scope::Platform, &["registry"])?)
        .await?;
    let address = &answer.address;
    match action {
        RegistryAction::Show => {
            if ctx.json() {
                return output::emit_json(&answer);
            }
            output::emit(&format!("{address}\n"))
        }
        RegistryAction::Login => {
            let token = ctx.settings.token.as_deref().ok_or(CliError::NotLoggedIn)?;
            let files = login_files();
            for file in &files {
                add_login(file, address, token)?;
            }
            if ctx.json() {
                let written: Vec<String> = files.iter().map(|f| f.display().to_string()).collect();
                return output::emit_json(&json!({ "address": address, "files": written }));
            }
            let listed: Vec<String> = files.iter().map(|f| f.display().to_string()).collect();
            output::emit(&format!(
                "Logged in to {address} (saved in {}); push to {address}/<org>/<app>:<tag>\n",
                listed.join(" and ")
            ))
        }
    }
}

/// Where logins are kept: the containers auth file podman, buildah and skopeo read
/// first, and Docker's config unless it keeps credentials in a helper.
fn login_files() -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = zeitwork_image::AuthFiles::from_env()
        .login_file()
        .map(Path::to_path_buf)
        .into_iter()
        .collect();
    let home = std::env::var_os("HOME").map(PathBuf::from);
    let docker = std::env::var_os("DOCKER_CONFIG")
        .map(PathBuf::from)
        .or_else(|| home.map(|h| h.join(".docker")))
        .map(|d| d.join("config.json"));
    if let Some(docker) = docker {
        let uses_helper = std::fs::read_to_string(&docker)
            .ok()
            .and_then(|t| serde_json::from_str::<Value>(&t).ok())
            .is_some_and(|v| v.get("credsStore").is_some());
        if !uses_helper && !files.contains(&docker) {
            files.push(docker);
        }
    }
    files
}

/// Adds (or replaces) `address`'s entry in the auth file at `path`, keeping the rest;
/// the file is owner-only.
fn add_login(path: &Path, address: &str, token: &str) -> Result<()> {
    use std::io::Write as _;
    use std::os::unix::fs::{OpenOptionsExt as _, PermissionsExt as _};
    let io = |what: &str| CliError::io(format!("{what} {}", path.display()));
    let mut doc: Value = match std::fs::read_to_string(path) {
        Ok(text) => serde_json::from_str(&text)
            .map_err(|e| CliError::Usage(format!("{} is not an auth file: {e}", path.display())))?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => json!({}),
        Err(e) => return Err(io("reading")(e)),
    };
    let auth = base64::engine::general_purpose::STANDARD.encode(format!("{USER}:{token}"));
    if !doc.get("auths").is_some_and(Value::is_object) {
        doc["auths"] = json!({});
    }
    doc["auths"][address] = json!({ "auth": auth });
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(io("creating the directory of"))?;
    }
    let text = serde_json::to_string_pretty(&doc).expect("JSON serializes");
    let temp = path.with_extension("json.zeitwork-tmp");
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&temp)
        .map_err(io("writing"))?;
    file.set_permissions(std::fs::Permissions::from_mode(0o600))
        .map_err(io("writing"))?;
    file.write_all(text.as_bytes()).map_err(io("writing"))?;
    std::fs::rename(&temp, path).map_err(io("writing"))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_login_is_added_to_what_the_file_held_and_read_back() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("containers/auth.json");
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(
            &path,
            r#"{"auths": {"other.example": {"auth": "b3RoZXI6c2VjcmV0"}}, "credHelpers": {}}"#,
        )
        .unwrap();
        add_login(&path, "127.0.0.1:5000", "zw_abc").unwrap();
        add_login(&path, "127.0.0.1:5000", "zw_def").unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        use std::os::unix::fs::PermissionsExt as _;
        assert_eq!(mode & 0o777, 0o600);
        let files = zeitwork_image::AuthFiles::at(vec![path.clone()]);
        assert_eq!(
            files.lookup("127.0.0.1:5000", "acme/web").unwrap(),
            zeitwork_image::Auth::Basic {
                username: USER.into(),
                password: "zw_def".into()
            }
        );
        assert!(matches!(
            files.lookup("other.example", "x").unwrap(),
            zeitwork_image::Auth::Basic { .. }
        ));
        std::fs::write(&path, "[").unwrap();
        assert!(
            add_login(&path, "r", "t").is_err(),
            "a broken file is not overwritten"
        );
    }
}
