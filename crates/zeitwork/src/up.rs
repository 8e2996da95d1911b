//! `zeitwork up`: the whole platform on one machine, in one process. Postgres and NATS
//! are started privately under the data directory unless DATABASE_URL / NATS_URL point
//! at existing ones; state survives restarts because it all lives there.

use std::path::PathBuf;

use anyhow::Context;
use clap::Args;
use tokio::net::TcpListener;
use zeitwork_core::platform_host;
use zeitwork_services::{Nats, Postgres, Registry, ServiceError};
use zeitwork_store::Store;

use crate::edge::AcmeArgs;
use crate::example;
use crate::server::shutdown_signal;
use crate::settings::{Key, OperatorArgs, write_private};

#[derive(Args)]
pub struct UpArgs {
    #[command(flatten)]
    operator: OperatorArgs,
    /// Where private Postgres/NATS data, the secret key and the admin token live
    /// [default: $XDG_DATA_HOME/zeitwork or ~/.local/share/zeitwork].
    #[arg(long, env = "ZEITWORK_DATA_DIR")]
    data_dir: Option<PathBuf>,
    /// Use this Postgres instead of starting a private one.
    #[arg(long, env = "DATABASE_URL", hide_env_values = true)]
    database_url: Option<String>,
    /// Use this NATS instead of starting a private one.
    #[arg(long, env = "NATS_URL")]
    nats_url: Option<String>,
    /// Port of the private Postgres (loopback only).
    #[arg(long, default_value_t = 54329)]
    postgres_port: u16,
    /// Port of the private NATS (loopback only).
    #[arg(long, default_value_t = 42229)]
    nats_port: u16,
    /// Address the edge proxy serves apps on (`http://<app>-<slug>-<org>.<base domain>:PORT`).
    #[arg(long, env = "ZEITWORK_EDGE_LISTEN", default_value = "127.0.0.1:8081")]
    edge_listen: String,
    /// Address the edge serves HTTPS on, for hosts a certificate covers (`zeitwork certs
    /// import`, or ACME with --acme-directory).
    #[arg(
        long,
        env = "ZEITWORK_EDGE_HTTPS_LISTEN",
        default_value = "127.0.0.1:8443"
    )]
    edge_https_listen: String,
    #[command(flatten)]
    acme: AcmeArgs,
    /// Address the private platform registry listens on (`docker push` to
    /// `<address>/<org>/<app>:tag` after `zeitwork registry login`).
    #[arg(
        long,
        env = "ZEITWORK_REGISTRY_LISTEN",
        default_value = "127.0.0.1:5000"
    )]
    registry_listen: std::net::SocketAddr,
    #[command(flatten)]
    sweep: crate::registry::SweepArgs,
    /// Do not run an agent: this machine hosts no instances.
    #[arg(long)]
    no_agent: bool,
    /// Do not deploy the bundled example app on first start.
    #[arg(long)]
    no_example: bool,
}

fn default_data_dir() -> PathBuf {
    let base = std::env::var_os("XDG_DATA_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".local/share")))
        .unwrap_or_else(|| PathBuf::from("."));
    base.join("zeitwork")
}

pub async fn run(args: UpArgs) -> anyhow::Result<()> {
    crate::init_logging();
    let data = args.data_dir.clone().unwrap_or_else(default_data_dir);
    std::fs::create_dir_all(&data).with_context(|| format!("creating {}", data.display()))?;
    let data = data.canonicalize()?;
    let lock = std::fs::File::create(data.join("up.lock"))?;
    if lock.try_lock().is_err() {
        anyhow::bail!(
            "another `zeitwork up` is running on {}; stop it first (Ctrl-C)",
            data.display()
        );
    }

    let (postgres, database_url) = match &args.database_url {
        Some(url) => (None, url.clone()),
        None => {
            eprintln!(
                "starting private PostgreSQL on 127.0.0.1:{} …",
                args.postgres_port
            );
            let dir = data.join("postgres");
            let pg = adopting(|| Postgres::start(&dir, args.postgres_port)).await?;
            let url = pg.url();
            (Some(pg), url)
        }
    };
    let (nats, nats_url) = match &args.nats_url {
        Some(url) => (None, url.clone()),
        None => {
            eprintln!("starting private NATS on 127.0.0.1:{} …", args.nats_port);
            let dir = data.join("nats");
            let nats = adopting(|| Nats::start(&dir, args.nats_port)).await?;
            let url = nats.url();
            (Some(nats), url)
        }
    };
    let result = serve(&args, &data, &database_url, &nats_url).await;
    if let Some(nats) = nats {
        nats.stop().await?;
    }
    if let Some(pg) = postgres {
        pg.stop().await?;
    }
    eprintln!("stopped");
    result
}

/// Starts a private server. One still running on our directory while we hold the
/// data-dir lock was left by a `zeitwork up` that was killed outright: stop it and
/// start afresh (the data is on disk; nothing is lost).
async fn adopting<T, F, Fut>(start: F) -> Result<T, ServiceError>
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = Result<T, ServiceError>>,
{
    match start().await {
        Err(ServiceError::AlreadyRunning { service, pid, .. }) => {
            eprintln!(
                "{service} (pid {pid}) was left running by a killed `zeitwork up`; restarting it"
            );
            zeitwork_services::stop_orphan(pid).await?;
            start().await
        }
        other => other,
    }
}

async fn serve(
    args: &UpArgs,
    data: &std::path::Path,
    database_url: &str,
    nats_url: &str,
) -> anyhow::Result<()> {
    let store = Store::connect(database_url)
        .await
        .context("connecting to Postgres")?;
    let bus = zeitwork_bus::NatsBus::connect(nats_url).await?;
    // Two keys, as a cluster has them: the operator's opens tenants' secrets, the
    // edge's only certificate keys.
    let secrets = Key::Secrets.load(Some(data))?;
    let certificate_key = Key::Certificates.load(Some(data))?;
    let token_file = data.join("admin-token");
    let new_token = zeitwork_operator::auth::bootstrap_platform_token(&store).await?;
    if let Some(token) = &new_token {
        write_private(&token_file, &format!("{token}\n"))?;
    }
    let listener = TcpListener::bind(&args.operator.listen)
        .await
        .with_context(|| format!("listening on {}", args.operator.listen))?;
    let api = format!("http://{}", listener.local_addr()?);
    let private = crate::registry::private(data, args.registry_listen, &api)?;
    eprintln!(
        "starting the platform registry on {} …",
        args.registry_listen
    );
    let registry =
        std::sync::Arc::new(adopting(|| Registry::serve(&private.config, &private.dir)).await?);
    let sweeper = tokio::spawn(crate::registry::sweep_forever(
        store.clone(),
        registry.clone(),
        args.sweep.registry_sweep_every,
    ));
    let registry_address = private.platform.address.clone();
    let config = zeitwork_operator::Config {
        registry: Some(private.platform),
        ..args.operator.config()
    };
    // Installs the metrics recorder: the edge's and the agent's metrics are on its /metrics.
    let app = zeitwork_operator::app(store.clone(), secrets, config).await?;
    let base_domain = args.operator.base_domain.clone();
    // Names under .localhost are never ordered; others only from a directory given here.
    let acme = args.acme.acme_directory.clone();
    let acme = acme.map(|directory| args.acme.config(directory, &base_domain));
    let edge = crate::edge::start(crate::edge::Setup {
        store: store.clone(),
        bus: Some(bus.clone()),
        certificate_key,
        base_domain: base_domain.clone(),
        http_listen: args.edge_listen.clone(),
        https_listen: args.edge_https_listen.clone(),
        https_public_port: None,
        acme,
        workers: 0,
        trusted_proxies: Vec::new(),
        tcp_listen: None,
        // One machine, one region.
        region: None,
    })
    .await?;
    let (edge_http, edge_https) = (edge.http_addr(), edge.https_addr());
    // Apps are shown on https only when a certificate covers them (normally none does).
    let example_host = platform_host::host(
        &platform_host::env_label(example::APP, platform_host::PRIMARY_ENV, example::ORG),
        &base_domain,
    );
    let (scheme, edge_port) = if edge.covers(&example_host) {
        ("https", edge_https.port())
    } else {
        ("http", edge_http.port())
    };
    println!("Zeitwork is up.");
    println!("  API:        {api}");
    match zeitwork_operator::dashboard::built() {
        true => println!(
            "  Dashboard:  {}/ (sign in with the admin token)",
            api.trim_end_matches('/')
        ),
        false => {
            println!("  Dashboard:  not built into this binary (scripts/up.sh builds web/ first)")
        }
    }
    match &new_token {
        Some(token) => {
            println!(
                "  Admin token (shown once; also saved to {}):",
                token_file.display()
            );
            println!("              {token}");
            println!("  Log in:     zeitwork login --api {api} --token {token}");
        }
        None => println!("  Admin token: in {}", token_file.display()),
    }
    println!(
        "  Edge:       http://{edge_http} (apps at {scheme}://<app>-<org>.{base_domain}:{edge_port})"
    );
    println!("  HTTPS:      {edge_https}, for hosts with a certificate (`zeitwork certs import`)");
    println!(
        "  Registry:   {registry_address} (push <org>/<app> images after `zeitwork registry login`)"
    );
    println!("  Data:       {}", data.display());
    println!("Press Ctrl-C to stop.");
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let until_stopped = || {
        let mut stopped = stopped.clone();
        async move {
            let _ = stopped.wait_for(|s| *s).await;
        }
    };
    tokio::spawn(async move {
        shutdown_signal().await;
        let _ = stop.send(true);
    });
    let monitor = tokio::spawn(zeitwork_operator::monitor::run(
        store.clone(),
        args.operator.config(),
        until_stopped(),
    ));
    let autoscaler = tokio::spawn(zeitwork_operator::autoscale::run(
        store.clone(),
        args.operator.config(),
        until_stopped(),
    ));
    let notifier = tokio::spawn(zeitwork_listener::run(store, bus, until_stopped()));
    let admin = std::fs::read_to_string(&token_file)
        .with_context(|| format!("reading {}", token_file.display()))?;
    let node = crate::local::run(
        crate::local::Local {
            api: api.clone(),
            admin_token: admin.trim().to_owned(),
            node_dir: data.join("node"),
            nats_url: nats_url.to_owned(),
            agent: !args.no_agent,
            example: !args.no_example,
            edge_scheme: scheme,
            edge_port,
            example_host: example_host.clone(),
            registry: Some(registry_address.clone()),
        },
        until_stopped(),
    );
    let (served, edged, node) = tokio::join!(
        zeitwork_operator::serve(listener, app, until_stopped()),
        edge.serve(until_stopped()),
        node
    );
    let _ = notifier.await;
    let _ = monitor.await;
    let _ = autoscaler.await;
    // The registry stops with its last handle, the sweeper's included.
    sweeper.abort();
    let _ = sweeper.await;
    drop(registry);
    served?;
    edged?;
    node
}
