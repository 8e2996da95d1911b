//! Everything written to the event log reads back as itself. Two halves:
//! every payload type, with arbitrary field values, survives event JSON → text → event;
//! and whatever a user's input becomes once the API's parsers accept it (a manifest, a
//! route policy: durations, numbers, floats) survives the same trip. The log's readers
//! would otherwise meet an event they cannot decode (the `"1e308m"` → `"infs"` defect).

use std::collections::{BTreeMap, HashSet};

use chrono::{DateTime, Utc};
use proptest::prelude::*;
use serde_json::{Value, json};
use uuid::Uuid;
use zeitwork_core::build::BuildState;
use zeitwork_core::event::{ProcessSpec, Replacement};
use zeitwork_core::node::{NodeState, ObservedState};
use zeitwork_core::repository::GitSource;
use zeitwork_core::{
    CertificateSource, Event, EventData, InstancePlan, Manifest, QuotaOverrides, Quotas,
    RoutePolicy,
};

/// Parse → event JSON → text → parse is the identity, and writing it again gives the
/// same text.
fn assert_round_trips(data: &EventData) -> Result<(), TestCaseError> {
    let text = serde_json::to_string(data).expect("payloads serialize");
    let back: EventData = serde_json::from_str(&text)
        .map_err(|e| TestCaseError::fail(format!("{text} does not read back: {e}")))?;
    prop_assert_eq!(&back, data);
    prop_assert_eq!(serde_json::to_string(&back).unwrap(), text);
    Ok(())
}

fn uuid() -> impl Strategy<Value = Uuid> {
    any::<u128>().prop_map(Uuid::from_u128)
}

fn text() -> impl Strategy<Value = String> {
    any::<String>()
}

/// Any duration the log may hold, 0 to 24 hours in milliseconds.
fn seconds() -> impl Strategy<Value = zeitwork_core::manifest::Seconds> {
    (0..=zeitwork_core::manifest::Seconds::MAX.as_millis())
        .prop_map(|ms| zeitwork_core::manifest::Seconds::from_millis(ms).unwrap())
}

fn time() -> impl Strategy<Value = DateTime<Utc>> {
    // Any instant in years 0..=9999 with nanoseconds, as chrono writes RFC 3339.
    (-62_167_219_200i64..=253_402_300_799, 0u32..1_000_000_000)
        .prop_map(|(s, ns)| DateTime::from_timestamp(s, ns).unwrap())
}

/// Overrides as the API accepts them: each unset, or any value up to its bound.
fn quota_overrides() -> impl Strategy<Value = QuotaOverrides> {
    let max = Quotas::MAX;
    let one = |max: u64| proptest::option::of(prop_oneof![0..=max, Just(max)]);
    (
        one(max.instances),
        one(max.memory_mb),
        one(max.routes),
        one(max.tcp_routes),
        one(max.domains),
        one(max.registry_mb),
    )
        .prop_map(
            |(instances, memory_mb, routes, tcp_routes, domains, registry_mb)| QuotaOverrides {
                instances,
                memory_mb,
                routes,
                tcp_routes,
                domains,
                registry_mb,
            },
        )
}

fn plan() -> impl Strategy<Value = InstancePlan> {
    (
        uuid(),
        text(),
        proptest::option::of(uuid()),
        proptest::option::of(text()),
        proptest::option::of(text()),
    )
        .prop_map(
            |(instance_id, process, node_id, region, reason)| InstancePlan {
                instance_id,
                process,
                node_id,
                region,
                reason,
            },
        )
}

fn plans() -> impl Strategy<Value = Vec<InstancePlan>> {
    proptest::collection::vec(plan(), 0..3)
}

fn uuids() -> impl Strategy<Value = Vec<Uuid>> {
    proptest::collection::vec(uuid(), 0..3)
}

fn texts() -> impl Strategy<Value = Vec<String>> {
    proptest::collection::vec(text(), 0..3)
}

fn node_state() -> impl Strategy<Value = NodeState> {
    prop_oneof![
        Just(NodeState::Ready),
        Just(NodeState::Draining),
        Just(NodeState::Dead)
    ]
}

fn observed_state() -> impl Strategy<Value = ObservedState> {
    prop_oneof![
        Just(ObservedState::Pending),
        Just(ObservedState::Pulling),
        Just(ObservedState::Booting),
        Just(ObservedState::Healthy),
        Just(ObservedState::Unhealthy),
        Just(ObservedState::Stopping),
        Just(ObservedState::Stopped),
        Just(ObservedState::Failed),
    ]
}

/// A policy the API would accept, from arbitrary policy input.
fn accepted_policy() -> impl Strategy<Value = RoutePolicy> {
    policy_input().prop_filter_map("rejected by the API's checks", |v| {
        let policy: RoutePolicy = serde_json::from_value(v).ok()?;
        policy.check().ok()?;
        Some(policy)
    })
}

/// What a deployer may send as a duration: numbers of seconds and text in every form
/// the parser might be fooled by (exponents, huge values, non-finite words, signs).
fn duration_input() -> impl Strategy<Value = Value> {
    prop_oneof![
        any::<u64>().prop_map(Value::from),
        (0u64..=86_400).prop_map(Value::from),
        any::<f64>().prop_map(Value::from),
        (0.0f64..86_400.0).prop_map(Value::from),
        "[-+]?[0-9]{0,22}(\\.[0-9]{0,22})?([eE][-+]?[0-9]{1,4})?(ms|s|m|h|d)?"
            .prop_map(Value::from),
        "[0-9]{1,5}(\\.[0-9]{1,3})?(ms|s|m|h)".prop_map(Value::from),
        prop_oneof![
            Just("1e308m"),
            Just("inf"),
            Just("infs"),
            Just("NaN"),
            Just("-0s"),
            Just("1e-400s"),
            Just("0.0000001ms"),
            Just("24h"),
            Just("86400.001"),
        ]
        .prop_map(Value::from),
    ]
}

fn number_input() -> impl Strategy<Value = Value> {
    prop_oneof![
        any::<u64>().prop_map(Value::from),
        (0u64..2_000_000).prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<f64>().prop_map(Value::from),
    ]
}

fn policy_input() -> impl Strategy<Value = Value> {
    let balance = prop_oneof![
        Just("round-robin"),
        Just("least-connections"),
        Just("consistent-hash"),
        Just("random"),
    ];
    let hash_on = prop_oneof![
        Just("client-ip".to_owned()),
        "header:[a-z-]{1,8}",
        "cookie:[a-z]{1,8}",
        text(),
    ];
    let header = prop_oneof![
        Just("x-frame-options".to_owned()),
        Just("strict-transport-security".to_owned()),
        text()
    ];
    let cors = (
        proptest::collection::vec(
            prop_oneof![Just("*".to_owned()), "https://[a-z]{1,8}\\.example", text()],
            0..3,
        ),
        proptest::option::of(duration_input()),
        any::<bool>(),
    )
        .prop_map(|(origins, max_age, credentials)| {
            let mut c = json!({ "origins": origins, "credentials": credentials });
            if let Some(m) = max_age {
                c["max_age"] = m;
            }
            c
        });
    (
        proptest::option::of(balance),
        proptest::option::of(hash_on),
        proptest::option::of(duration_input()),
        proptest::option::of(number_input()),
        proptest::option::of((number_input(), number_input(), number_input())),
        proptest::collection::btree_map(header, "[ -~]{0,20}", 0..2),
        proptest::option::of(cors),
    )
        .prop_map(|(balance, hash_on, timeout, body, rate, headers, cors)| {
            let mut p = json!({});
            let mut set = |k: &str, v: Option<Value>| {
                if let Some(v) = v {
                    p[k] = v;
                }
            };
            set("balance", balance.map(Value::from));
            set("hash_on", hash_on.map(Value::from));
            set("timeout", timeout);
            set("max_body_mb", body);
            set(
                "rate_limit",
                rate.map(|(c, r, b)| json!({"per_client": c, "per_route": r, "burst": b})),
            );
            if !headers.is_empty() {
                set("headers", Some(json!(headers)));
            }
            set("cors", cors);
            p
        })
}

/// A manifest's TOML text with arbitrary numbers, floats and durations where a deployer
/// may write them.
fn manifest_input() -> impl Strategy<Value = String> {
    let cpus = prop_oneof![
        Just("inf".to_owned()),
        Just("-inf".to_owned()),
        Just("nan".to_owned()),
        any::<f64>().prop_map(|f| format!("{f:?}")),
        plausible_cpus(),
    ];
    let memory = prop_oneof![any::<u64>(), 64u64..2048];
    (
        cpus,
        memory,
        toml_duration(duration_input()),
        toml_duration(duration_input()),
        prop_oneof![any::<u32>(), 0u32..1000],
        proptest::option::of(any::<u16>()),
        (
            proptest::option::of(build_input()),
            proptest::option::of(toml_duration(duration_input())),
        )
            .prop_map(sections),
    )
        .prop_map(manifest_text)
}

/// A `[build]` section with arbitrary numbers and durations.
fn build_input() -> impl Strategy<Value = String> {
    (any::<u32>(), any::<u64>(), toml_duration(duration_input())).prop_map(
        |(cpus, memory, timeout)| {
            format!("[build]\ncpus = {cpus}\nmemory_mb = {memory}\ntimeout = {timeout}\n")
        },
    )
}

/// Manifest text of values in the accepted ranges, most of which the checks accept.
fn plausible_manifest_input() -> impl Strategy<Value = String> {
    (
        plausible_cpus(),
        64u64..2048,
        toml_duration(plausible_duration()),
        toml_duration(plausible_duration()),
        0u32..1000,
        proptest::option::of(any::<u16>()),
        (
            proptest::option::of(build_section()),
            proptest::option::of(toml_duration(plausible_duration())),
        )
            .prop_map(sections),
    )
        .prop_map(manifest_text)
}

/// A `[build]` section as a user might write one, bounds included.
fn build_section() -> impl Strategy<Value = String> {
    (
        1u32..=16,
        512u64..=65536,
        60u64..=7200,
        proptest::collection::btree_map("[A-Z_][A-Z0-9_]{0,8}", "[ -~]{0,20}", 0..4),
        proptest::option::of("[a-z][a-z0-9_.-]{0,10}"),
        proptest::bool::ANY,
    )
        .prop_map(|(cpus, memory, timeout, args, target, network)| {
            let args: Vec<String> = args
                .iter()
                .map(|(k, v)| format!("{k} = {}", Value::from(v.as_str())))
                .collect();
            let target = target.map_or(String::new(), |t| format!("target = \"{t}\"\n"));
            format!(
                "[build]\ndockerfile = \"docker/Dockerfile\"\ncpus = {cpus}\nmemory_mb = {memory}\n\
                 timeout = \"{timeout}s\"\nnetwork = {network}\n{target}args = {{ {} }}\n",
                args.join(", ")
            )
        })
}

fn plausible_cpus() -> impl Strategy<Value = String> {
    (1u32..64_000).prop_map(|m| format!("{:?}", f64::from(m) / 1000.0))
}

fn plausible_duration() -> impl Strategy<Value = Value> {
    prop_oneof![
        (1u64..=3600).prop_map(Value::from),
        (0.001f64..3600.0).prop_map(Value::from),
        "[1-9][0-9]{0,3}(\\.[0-9]{1,3})?(ms|s|m)".prop_map(Value::from),
    ]
}

/// A duration as TOML writes it: text quoted, numbers bare.
fn toml_duration(input: impl Strategy<Value = Value>) -> impl Strategy<Value = String> {
    input.prop_map(|v| match v {
        Value::String(s) => format!("{s:?}"),
        Value::Number(n) if n.is_f64() => format!("{:?}", n.as_f64().unwrap()),
        other => other.to_string(),
    })
}

/// The optional `[build]` and `[deploy]` sections (`standby` the given duration).
fn sections((build, standby): (Option<String>, Option<String>)) -> Option<String> {
    let deploy = standby.map(|d| format!("[deploy]\nstandby = {d}\n"));
    match (build, deploy) {
        (None, None) => None,
        (b, d) => Some(b.unwrap_or_default() + &d.unwrap_or_default()),
    }
}

fn manifest_text(
    (cpus, memory, interval, timeout, instances, port, build): (
        String,
        u64,
        String,
        String,
        u32,
        Option<u16>,
        Option<String>,
    ),
) -> String {
    let port = port.map_or(String::new(), |p| format!("port = {p}\n"));
    format!(
        "version = 1\napp = \"shop\"\n[processes.web]\ncpus = {cpus}\nmemory_mb = {memory}\n\
         instances = {instances}\n{port}[processes.web.health]\npath = \"/\"\n\
         interval = {interval}\ntimeout = {timeout}\n{}",
        build.unwrap_or_default()
    )
}

fn any_event_data() -> BoxedStrategy<EventData> {
    let process_spec = (
        text(),
        any::<u32>(),
        any::<u32>(),
        any::<u64>(),
        any::<Option<u16>>(),
    )
        .prop_map(
            |(name, instances, millicpus, memory_mb, port)| ProcessSpec {
                name,
                instances,
                millicpus,
                memory_mb,
                port,
            },
        );
    let source = prop_oneof![
        Just(CertificateSource::Acme),
        Just(CertificateSource::Operator)
    ];
    let git_source = || {
        (text(), text(), "[0-9a-f]{40}", "[0-9a-f]{40}").prop_map(|(url, branch, commit, tree)| {
            GitSource {
                url,
                branch,
                commit,
                tree,
            }
        })
    };
    let accepted_manifest = plausible_manifest_input()
        .prop_filter_map("rejected by the manifest checks", |t| {
            Manifest::from_toml(&t).ok()
        });
    prop_oneof![
        (uuid(), text()).prop_map(|(org_id, name)| EventData::OrgCreated { org_id, name }),
        uuid().prop_map(|org_id| EventData::OrgDeleted { org_id }),
        (
            uuid(),
            uuid(),
            text(),
            uuid(),
            proptest::option::of(git_source())
        )
            .prop_map(|(build_id, env_id, source, node_id, git)| {
                EventData::BuildQueued {
                    build_id,
                    env_id,
                    source,
                    manifest: json!({"version": 1, "app": "shop"}),
                    node_id,
                    git,
                }
            }),
        (
            uuid(),
            proptest::sample::select(BuildState::ALL.to_vec()),
            proptest::option::of(text()),
            proptest::option::of(text()),
            proptest::collection::vec(text(), 0..4),
            any::<bool>(),
        )
            .prop_map(|(build_id, state, reason, image, log, manifest)| {
                EventData::BuildStateChanged {
                    build_id,
                    state,
                    reason,
                    image,
                    log,
                    manifest: manifest.then(|| json!({"version": 1, "app": "shop"})),
                }
            }),
        (
            (uuid(), uuid(), text(), text()),
            (text(), proptest::option::of(text()))
        )
            .prop_map(
                |((app_id, hook_id, url, branch), (sealed_secret, sealed_token))| {
                    EventData::RepositoryConnected {
                        app_id,
                        hook_id,
                        url,
                        branch,
                        sealed_secret,
                        sealed_token,
                    }
                }
            ),
        uuid().prop_map(|app_id| EventData::RepositoryDisconnected { app_id }),
        (uuid(), text(), text(), text()).prop_map(|(app_id, delivery, event, outcome)| {
            EventData::WebhookDelivered {
                app_id,
                delivery,
                event,
                outcome,
            }
        }),
        (uuid(), quota_overrides())
            .prop_map(|(org_id, quotas)| EventData::OrgQuotasSet { org_id, quotas }),
        (uuid(), uuid(), text(), text()).prop_map(|(user_id, org_id, email, role)| {
            EventData::UserAdded {
                user_id,
                org_id,
                email,
                role,
            }
        }),
        uuid().prop_map(|user_id| EventData::UserRemoved { user_id }),
        (uuid(), proptest::option::of(uuid()), text(), text(), text()).prop_map(
            |(token_id, org_id, name, role, hash)| EventData::TokenCreated {
                token_id,
                org_id,
                name,
                role,
                hash
            }
        ),
        uuid().prop_map(|token_id| EventData::TokenRevoked { token_id }),
        (uuid(), uuid(), text()).prop_map(|(app_id, org_id, name)| EventData::AppCreated {
            app_id,
            org_id,
            name
        }),
        uuid().prop_map(|app_id| EventData::AppDeleted { app_id }),
        (uuid(), uuid(), text(), proptest::option::of(text())).prop_map(
            |(env_id, app_id, name, preview_of)| EventData::EnvCreated {
                env_id,
                app_id,
                name,
                preview_of,
            }
        ),
        uuid().prop_map(|env_id| EventData::EnvDeleted { env_id }),
        (
            (uuid(), uuid(), proptest::option::of(text()), text(), text()),
            (
                any::<u16>(),
                any::<bool>(),
                accepted_policy(),
                any::<Option<u16>>(),
                any::<bool>()
            )
        )
            .prop_map(
                |(
                    (route_id, env_id, host, process, mode),
                    (port, proxy_protocol, policy, listen_port, declared),
                )| EventData::RouteCreated {
                    route_id,
                    env_id,
                    host,
                    process,
                    mode,
                    port,
                    proxy_protocol,
                    policy,
                    listen_port,
                    declared,
                }
            ),
        uuid().prop_map(|route_id| EventData::RouteDeleted { route_id }),
        (uuid(), uuid(), text(), text()).prop_map(
            |(domain_id, env_id, hostname, verification_token)| EventData::DomainAdded {
                domain_id,
                env_id,
                hostname,
                verification_token
            }
        ),
        uuid().prop_map(|domain_id| EventData::DomainRemoved { domain_id }),
        uuid().prop_map(|domain_id| EventData::DomainVerified { domain_id }),
        (uuid(), text(), any::<i32>(), text()).prop_map(|(env_id, name, version, ciphertext)| {
            EventData::SecretSet {
                env_id,
                name,
                version,
                ciphertext,
            }
        }),
        (uuid(), text()).prop_map(|(env_id, name)| EventData::SecretUnset { env_id, name }),
        (uuid(), text()).prop_map(|(region_id, name)| EventData::RegionCreated { region_id, name }),
        (uuid(), texts(), texts()).prop_map(|(region_id, addresses, client_networks)| {
            EventData::RegionAddressesSet {
                region_id,
                addresses,
                client_networks,
            }
        }),
        (
            (uuid(), text(), text(), proptest::option::of(text())),
            (
                any::<u32>(),
                any::<u64>(),
                texts(),
                proptest::option::of(text())
            )
        )
            .prop_map(
                |(
                    (node_id, name, region, zone),
                    (millicpus, memory_mb, addresses, instance_prefix),
                )| {
                    EventData::NodeRegistered {
                        node_id,
                        name,
                        region,
                        zone,
                        millicpus,
                        memory_mb,
                        addresses,
                        instance_prefix,
                    }
                }
            ),
        (
            uuid(),
            uuid(),
            any::<i32>(),
            text(),
            text(),
            accepted_manifest
        )
            .prop_map(|(release_id, app_id, number, image, digest, manifest)| {
                EventData::ReleaseCreated {
                    release_id,
                    app_id,
                    number,
                    image,
                    digest,
                    manifest_hash: manifest.hash(),
                    manifest: serde_json::to_value(&manifest).unwrap(),
                }
            }),
        (
            (uuid(), uuid(), uuid(), text(), proptest::option::of(uuid())),
            (
                proptest::collection::vec(process_spec, 0..3),
                plans(),
                any::<bool>(),
                proptest::option::of(seconds()),
            )
        )
            .prop_map(
                |(
                    (deployment_id, env_id, release_id, slug, rollback_of),
                    (processes, instances, surge, standby),
                )| {
                    EventData::DeploymentCreated {
                        deployment_id,
                        env_id,
                        release_id,
                        slug,
                        rollback_of,
                        processes,
                        instances,
                        surge,
                        standby,
                    }
                }
            ),
        (uuid(), uuid(), uuid(), proptest::option::of(seconds())).prop_map(
            |(deployment_id, env_id, rollback_of, standby)| EventData::DeploymentReactivated {
                deployment_id,
                env_id,
                rollback_of,
                standby,
            }
        ),
        (uuid(), uuid(), text()).prop_map(|(deployment_id, env_id, reason)| {
            EventData::StandbyEnded {
                deployment_id,
                env_id,
                reason,
            }
        }),
        (
            uuid(),
            text(),
            any::<u32>(),
            plans(),
            uuids(),
            proptest::option::of(text())
        )
            .prop_map(
                |(deployment_id, process, instances, started, stopped, reason)| {
                    EventData::ProcessScaled {
                        deployment_id,
                        process,
                        instances,
                        started,
                        stopped,
                        reason,
                    }
                }
            ),
        (uuid(), text(), time(), proptest::option::of(text())).prop_map(
            |(token_id, hash, expires_at, replaces)| EventData::NodeJoinTokenCreated {
                token_id,
                hash,
                expires_at,
                replaces
            }
        ),
        (
            (uuid(), text(), text(), proptest::option::of(text())),
            (
                any::<u32>(),
                any::<u64>(),
                texts(),
                proptest::option::of(text()),
                uuid(),
                text(),
                proptest::option::of((text(), any::<u16>()))
            )
        )
            .prop_map(
                |(
                    (node_id, name, region, zone),
                    (
                        millicpus,
                        memory_mb,
                        addresses,
                        instance_prefix,
                        join_token_id,
                        credential_hash,
                        overlay,
                    ),
                )| EventData::NodeEnrolled {
                    node_id,
                    name,
                    region,
                    zone,
                    millicpus,
                    memory_mb,
                    addresses,
                    instance_prefix,
                    join_token_id,
                    credential_hash,
                    overlay: overlay.map(|(public_key, port)| {
                        zeitwork_core::overlay::OverlayKey { public_key, port }
                    }),
                }
            ),
        (uuid(), node_state())
            .prop_map(|(node_id, state)| EventData::NodeStateChanged { node_id, state }),
        (uuid(), plans()).prop_map(|(deployment_id, instances)| EventData::InstancesPlaced {
            deployment_id,
            instances
        }),
        (
            uuid(),
            proptest::collection::vec((uuid(), plan()), 0..3),
            any::<bool>()
        )
            .prop_map(|(deployment_id, r, restart)| EventData::InstancesReplaced {
                deployment_id,
                replacements: r
                    .into_iter()
                    .map(|(replaces, instance)| Replacement { replaces, instance })
                    .collect(),
                restart,
            }),
        (uuid(), uuids(), text()).prop_map(|(deployment_id, instance_ids, reason)| {
            EventData::InstancesStopped {
                deployment_id,
                instance_ids,
                reason,
            }
        }),
        (
            uuid(),
            observed_state(),
            proptest::option::of(text()),
            proptest::option::of(text()),
            any::<u32>()
        )
            .prop_map(|(instance_id, state, reason, address, restarts)| {
                EventData::InstanceObserved {
                    instance_id,
                    state,
                    reason,
                    address,
                    restarts,
                }
            }),
        ((uuid(), texts(), time(), text()), (text(), source, uuids())).prop_map(
            |(
                (certificate_id, hostnames, not_after, chain_pem),
                (sealed_key, source, replaces),
            )| {
                EventData::CertificateStored {
                    certificate_id,
                    hostnames,
                    not_after,
                    chain_pem,
                    sealed_key,
                    source,
                    replaces,
                }
            }
        ),
        (uuid(), text()).prop_map(|(certificate_id, reason)| EventData::CertificateRemoved {
            certificate_id,
            reason
        }),
        (uuid(), text(), text()).prop_map(|(account_id, directory_url, sealed_credentials)| {
            EventData::AcmeAccountStored {
                account_id,
                directory_url,
                sealed_credentials,
            }
        }),
        (
            (uuid(), uuid(), uuid()),
            texts(),
            any::<bool>(),
            proptest::option::of(text()),
            text(),
            time()
        )
            .prop_map(
                |((grant_id, instance_id, node_id), command, tty, term, hash, expires_at)| {
                    EventData::ExecGranted {
                        grant_id,
                        instance_id,
                        node_id,
                        command,
                        tty,
                        term,
                        hash,
                        expires_at,
                    }
                }
            ),
        (uuid(), uuid(), uuid()).prop_map(|(grant_id, instance_id, node_id)| {
            EventData::ExecStarted {
                grant_id,
                instance_id,
                node_id,
            }
        }),
    ]
    .boxed()
}

/// Which payload type an event is; the match is exhaustive, so a new variant fails to
/// compile here until the generator above covers it (the coverage test checks that).
fn variant(data: &EventData) -> usize {
    match data {
        EventData::OrgCreated { .. } => 0,
        EventData::OrgDeleted { .. } => 1,
        EventData::UserAdded { .. } => 2,
        EventData::UserRemoved { .. } => 3,
        EventData::TokenCreated { .. } => 4,
        EventData::TokenRevoked { .. } => 5,
        EventData::AppCreated { .. } => 6,
        EventData::AppDeleted { .. } => 7,
        EventData::EnvCreated { .. } => 8,
        EventData::EnvDeleted { .. } => 9,
        EventData::RouteCreated { .. } => 10,
        EventData::RouteDeleted { .. } => 11,
        EventData::DomainAdded { .. } => 12,
        EventData::DomainRemoved { .. } => 13,
        EventData::DomainVerified { .. } => 14,
        EventData::SecretSet { .. } => 15,
        EventData::SecretUnset { .. } => 16,
        EventData::RegionCreated { .. } => 17,
        EventData::NodeRegistered { .. } => 18,
        EventData::ReleaseCreated { .. } => 19,
        EventData::DeploymentCreated { .. } => 20,
        EventData::ProcessScaled { .. } => 21,
        EventData::NodeJoinTokenCreated { .. } => 22,
        EventData::NodeEnrolled { .. } => 23,
        EventData::NodeStateChanged { .. } => 24,
        EventData::InstancesPlaced { .. } => 25,
        EventData::InstancesReplaced { .. } => 26,
        EventData::InstancesStopped { .. } => 27,
        EventData::InstanceObserved { .. } => 28,
        EventData::CertificateStored { .. } => 29,
        EventData::CertificateRemoved { .. } => 30,
        EventData::AcmeAccountStored { .. } => 31,
        EventData::OrgQuotasSet { .. } => 32,
        EventData::BuildQueued { .. } => 33,
        EventData::BuildStateChanged { .. } => 34,
        EventData::RepositoryConnected { .. } => 35,
        EventData::RepositoryDisconnected { .. } => 36,
        EventData::WebhookDelivered { .. } => 37,
        EventData::DeploymentReactivated { .. } => 38,
        EventData::StandbyEnded { .. } => 39,
        EventData::ExecGranted { .. } => 40,
        EventData::ExecStarted { .. } => 41,
        EventData::RegionAddressesSet { .. } => 42,
    }
}
const VARIANTS: usize = 43;

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    #[test]
    fn every_payload_round_trips(data in any_event_data()) {
        assert_round_trips(&data)?;
        let event = Event { seq: 1, at: DateTime::UNIX_EPOCH, org_id: None, actor: "t".into(), data };
        let text = serde_json::to_string(&event).unwrap();
        prop_assert_eq!(serde_json::from_str::<Event>(&text).unwrap(), event);
    }

    /// A policy the API accepts is written as-is and reads back as the same policy.
    #[test]
    fn accepted_route_policies_round_trip(input in policy_input()) {
        let Ok(policy) = serde_json::from_value::<RoutePolicy>(input) else { return Ok(()) };
        if policy.check().is_err() {
            return Ok(());
        }
        let text = serde_json::to_string(&policy).unwrap();
        let back: RoutePolicy = serde_json::from_str(&text)
            .map_err(|e| TestCaseError::fail(format!("{text}: {e}")))?;
        prop_assert!(back.check().is_ok());
        prop_assert_eq!(back, policy);
    }

    /// A manifest the API accepts is stored as JSON in `release_created` and read back
    /// by the agent and the operator with the same strictness, as the same manifest.
    #[test]
    fn accepted_manifests_round_trip(input in prop_oneof![manifest_input(), plausible_manifest_input()]) {
        let Ok(manifest) = Manifest::from_toml(&input) else { return Ok(()) };
        let value = serde_json::to_value(&manifest).unwrap();
        let text = serde_json::to_string(&value).unwrap();
        let back = Manifest::from_json(&serde_json::from_str(&text).unwrap())
            .map_err(|e| TestCaseError::fail(format!("{text}: {e}")))?;
        prop_assert_eq!(back.hash(), manifest.hash());
        prop_assert_eq!(back, manifest);
    }
}

/// The generator reaches every payload type, and the user-input generators are not
/// vacuous: they produce accepted values as well as rejected ones.
#[test]
fn generators_cover_every_payload_and_both_outcomes() {
    use proptest::strategy::ValueTree;
    use proptest::test_runner::TestRunner;
    let mut runner = TestRunner::deterministic();
    let strategy = any_event_data();
    let mut seen = HashSet::new();
    for _ in 0..5000 {
        seen.insert(variant(&strategy.new_tree(&mut runner).unwrap().current()));
    }
    assert_eq!(
        seen.len(),
        VARIANTS,
        "missing: {:?}",
        (0..VARIANTS)
            .filter(|v| !seen.contains(v))
            .collect::<Vec<_>>()
    );

    let mut outcomes = BTreeMap::new();
    let policies = policy_input();
    for _ in 0..5000 {
        let v = policies.new_tree(&mut runner).unwrap().current();
        let ok = serde_json::from_value::<RoutePolicy>(v).is_ok_and(|p| p.check().is_ok());
        *outcomes.entry(("policy", ok)).or_insert(0) += 1;
    }
    let manifests = prop_oneof![manifest_input(), plausible_manifest_input()];
    for _ in 0..5000 {
        let ok = Manifest::from_toml(&manifests.new_tree(&mut runner).unwrap().current()).is_ok();
        *outcomes.entry(("manifest", ok)).or_insert(0) += 1;
    }
    assert_eq!(outcomes.len(), 4, "{outcomes:?}");
}

/// The inputs that once reached the log as infinity are refused where they enter.
#[test]
fn non_finite_and_huge_durations_are_refused() {
    for bad in [
        "1e308m",
        "inf",
        "infs",
        "NaN",
        "1e-400s",
        "86400.001",
        "25h",
    ] {
        let policy = json!({ "cors": { "origins": ["*"], "max_age": bad } });
        assert!(
            serde_json::from_value::<RoutePolicy>(policy).is_err(),
            "{bad}"
        );
    }
    for cpus in ["inf", "nan", "-inf"] {
        let text = format!("version = 1\napp = \"a\"\n[processes.web]\ncpus = {cpus}\n");
        assert!(Manifest::from_toml(&text).is_err(), "cpus = {cpus}");
    }
}
