use super::*;

fn cert(names: &[&str], days_left: i64, source: CertificateSource) -> Stored {
    Stored {
        id: Uuid::now_v7(),
        hostnames: names.iter().map(|n| (*n).to_owned()).collect(),
        not_after: Utc::now() + Duration::days(days_left),
        source: source.as_str().into(),
    }
}

fn wanted(names: &[&str]) -> Vec<String> {
    names.iter().map(|n| (*n).to_owned()).collect()
}

const ACME: CertificateSource = CertificateSource::Acme;
const OPERATOR: CertificateSource = CertificateSource::Operator;

fn run(wanted: &[String], stored: &[Stored]) -> Plan {
    plan(wanted, stored, Utc::now(), Duration::days(30))
}

#[test]
fn names_without_a_certificate_are_ordered() {
    let p = run(&wanted(&["a.example.com", "b.example.com"]), &[]);
    let hosts: Vec<&str> = p.issue.iter().map(|n| n.hostname.as_str()).collect();
    assert_eq!(hosts, ["a.example.com", "b.example.com"]);
    assert!(p.issue.iter().all(|n| n.replaces.is_empty()));
}

#[test]
fn certificates_inside_the_renewal_window_are_renewed_and_replaced() {
    let fresh = cert(&["a.example.com"], 80, ACME);
    let old = cert(&["b.example.com"], 10, ACME);
    let p = run(
        &wanted(&["a.example.com", "b.example.com"]),
        &[fresh, old.clone()],
    );
    assert_eq!(
        p.issue,
        [Need {
            hostname: "b.example.com".into(),
            replaces: vec![old.id]
        }]
    );
    assert!(p.remove.is_empty());
}

#[test]
fn a_current_wildcard_spares_the_platform_names_until_it_expires() {
    let wild = cert(&["*.zeitwork.io"], 5, OPERATOR);
    let names = wanted(&[
        "web-acme.zeitwork.io",
        "shop.example.com",
        "a.b.zeitwork.io",
    ]);
    let p = run(&names, std::slice::from_ref(&wild));
    let hosts: Vec<&str> = p.issue.iter().map(|n| n.hostname.as_str()).collect();
    assert_eq!(
        hosts,
        ["shop.example.com", "a.b.zeitwork.io"],
        "one label deep only"
    );
    assert_eq!(p.expiring, [wild.id], "the operator is told to renew it");
    let expired = cert(&["*.zeitwork.io"], -1, OPERATOR);
    let p = run(&names, &[expired]);
    assert_eq!(p.issue.len(), 3, "an expired wildcard covers nothing");
}

#[test]
fn an_operator_certificate_is_never_replaced_by_acme_while_valid() {
    let own = cert(&["shop.example.com"], 3, OPERATOR);
    let p = run(&wanted(&["shop.example.com"]), &[own]);
    assert!(p.issue.is_empty());
}

#[test]
fn platform_certificates_for_names_no_longer_served_go() {
    let gone = cert(&["gone.example.com"], 60, ACME);
    let imported = cert(&["legacy.example.com"], 60, OPERATOR);
    let p = run(&wanted(&[]), &[gone.clone(), imported]);
    assert_eq!(p.remove.len(), 1);
    assert_eq!(p.remove[0].0, gone.id);
}

#[test]
fn an_expired_platform_certificate_goes_once_something_else_serves_its_name() {
    let stale = cert(&["web-acme.zeitwork.io"], -2, ACME);
    let wild = cert(&["*.zeitwork.io"], 60, OPERATOR);
    let p = run(&wanted(&["web-acme.zeitwork.io"]), &[stale.clone(), wild]);
    assert!(p.issue.is_empty());
    assert_eq!(p.remove.len(), 1);
    assert_eq!(p.remove[0].0, stale.id);
    // Alone, it is renewed instead (and replaced once that works).
    let p = run(
        &wanted(&["web-acme.zeitwork.io"]),
        std::slice::from_ref(&stale),
    );
    assert_eq!(p.issue[0].replaces, [stale.id]);
    assert!(p.remove.is_empty());
}
