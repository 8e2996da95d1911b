//! `zeitwork install ROLE --root DIR`, for every role: a unit systemd itself accepts
//! (`systemd-analyze verify`), hardened, running this binary, and a settings file of mode
//! 0640 that a second install keeps as the operator filled it in.

use std::os::unix::fs::PermissionsExt;
use std::process::Command;

use zeitwork_e2e::zeitwork_bin;

#[test]
fn every_role_installs_as_a_unit_systemd_accepts_with_its_settings_kept() {
    let root = tempfile::tempdir().unwrap();
    let install = |role: &str| {
        let out = Command::new(zeitwork_bin())
            .args(["install", role, "--root"])
            .arg(root.path())
            .arg("--binary")
            .arg(zeitwork_bin())
            .output()
            .expect("zeitwork runs");
        assert!(
            out.status.success(),
            "install {role}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    for role in [
        "operator", "listener", "edge", "lb", "dns", "agent", "registry",
    ] {
        install(role);
        let unit = root
            .path()
            .join(format!("etc/systemd/system/zeitwork-{role}.service"));
        let verify = Command::new("systemd-analyze")
            .arg("verify")
            .arg(&unit)
            .output()
            .expect("systemd-analyze runs (Debian's systemd)");
        assert!(
            verify.status.success(),
            "systemd refuses the {role} unit: {}",
            String::from_utf8_lossy(&verify.stderr)
        );
        let text = std::fs::read_to_string(&unit).unwrap();
        let exec = format!("ExecStart={} server {role}", zeitwork_bin().display());
        assert!(text.contains(&exec), "{text}");
        assert!(text.contains("NoNewPrivileges=yes"), "{text}");
        assert_eq!(
            text.contains("User=zeitwork"),
            role != "agent",
            "only the agent runs as root:\n{text}"
        );
        let settings = root.path().join(format!("etc/zeitwork/{role}.env"));
        let mode = std::fs::metadata(&settings).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o640, "{role}.env holds secrets");
    }
    // The operator filled the edge's settings in: installing again keeps them.
    let settings = root.path().join("etc/zeitwork/edge.env");
    std::fs::write(&settings, "DATABASE_URL=postgres://edge@db/zeitwork\n").unwrap();
    let said = install("edge");
    assert!(said.contains("kept as it was"), "{said}");
    assert_eq!(
        std::fs::read_to_string(&settings).unwrap(),
        "DATABASE_URL=postgres://edge@db/zeitwork\n"
    );
    // A role that is not one is refused with the list of roles.
    let out = Command::new(zeitwork_bin())
        .args(["install", "dns-ish", "--root"])
        .arg(root.path())
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("possible values"));
}

/// A cluster's first step: the platform's first admin token, made once from the database.
#[tokio::test]
async fn the_first_admin_token_is_made_once_and_kept_as_a_hash_only() {
    let pg = zeitwork_services::Postgres::throwaway().await.unwrap();
    let bootstrap = || {
        Command::new(zeitwork_bin())
            .args(["admin", "bootstrap-token"])
            .env("DATABASE_URL", pg.url())
            .output()
            .expect("zeitwork runs")
    };
    let first = bootstrap();
    assert!(
        first.status.success(),
        "{}",
        String::from_utf8_lossy(&first.stderr)
    );
    let token = String::from_utf8_lossy(&first.stdout).trim().to_owned();
    assert!(!token.is_empty() && !token.contains(' '), "{token:?}");
    // One platform admin token, kept as a hash only: the token itself is nowhere.
    let store = zeitwork_store::Store::connect(&pg.url()).await.unwrap();
    let rows: Vec<(bool, String, String)> =
        sqlx::query_as("SELECT org_id IS NULL, role, hash FROM tokens")
            .fetch_all(store.pool())
            .await
            .unwrap();
    assert_eq!(rows.len(), 1);
    let (platform, role, hash) = &rows[0];
    assert_eq!((*platform, role.as_str()), (true, "admin"));
    assert!(hash != &token && !hash.contains(&token));
    // A second one is refused: there are tokens already.
    let again = bootstrap();
    assert!(!again.status.success());
    assert!(
        String::from_utf8_lossy(&again.stderr).contains("has tokens already"),
        "{}",
        String::from_utf8_lossy(&again.stderr)
    );
}
