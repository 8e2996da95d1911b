//! The server_name extension (RFC 6066, 3). The name it carries picks the tenant a
//! passthrough connection goes to, so it is normalised exactly like the Host header the
//! HTTP side routes on (lowercase, no trailing dot) and anything ambiguous is refused.

use std::net::{Ipv4Addr, Ipv6Addr};

use super::HelloError;
use crate::wire::{Reader, Short};

const HOST_NAME: u8 = 0;
const MAX_NAME_LEN: usize = 253;
const MAX_LABEL_LEN: usize = 63;

/// The host name in a ServerNameList, if it names one that is not an IP literal.
pub(super) fn parse(mut data: Reader<'_>) -> Result<Option<String>, HelloError> {
    const BAD: HelloError = HelloError::Malformed("its server_name extension is malformed");
    let mut list = data.vec16().map_err(|Short| BAD)?;
    if !data.is_empty() || list.is_empty() {
        return Err(BAD);
    }
    let mut found = None;
    while !list.is_empty() {
        let kind = list.u8().map_err(|Short| BAD)?;
        let name = list.vec16().map_err(|Short| BAD)?.remaining();
        if kind != HOST_NAME {
            continue;
        }
        if found.is_some() {
            return Err(HelloError::BadServerName("the client sent more than one"));
        }
        found = Some(host_name(name).map_err(HelloError::BadServerName)?);
    }
    Ok(found.flatten())
}

/// Validates and normalises one host name; IP literals, which some clients send despite
/// RFC 6066, count as no name.
fn host_name(name: &[u8]) -> Result<Option<String>, &'static str> {
    if name.is_empty() {
        return Err("it is empty");
    }
    let Ok(name) = std::str::from_utf8(name) else {
        return Err("it is not ASCII (send internationalised names as xn-- punycode)");
    };
    if !name.is_ascii() {
        return Err("it is not ASCII (send internationalised names as xn-- punycode)");
    }
    let name = name.strip_suffix('.').unwrap_or(name);
    if name.parse::<Ipv4Addr>().is_ok() || name.parse::<Ipv6Addr>().is_ok() {
        return Ok(None);
    }
    if name.len() > MAX_NAME_LEN {
        return Err("it is longer than 253 characters");
    }
    for label in name.split('.') {
        if label.is_empty() {
            return Err("it has an empty label");
        }
        if label.len() > MAX_LABEL_LEN {
            return Err("it has a label longer than 63 characters");
        }
        if !label
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        {
            return Err("it has characters other than letters, digits, '-', '_' and '.'");
        }
    }
    Ok(Some(name.to_ascii_lowercase()))
}

/// Whether `name` is what [`host_name`] returns: for invariants in tests and fuzzing.
pub fn is_normalised_host_name(name: &str) -> bool {
    host_name(name.as_bytes()).ok().flatten().as_deref() == Some(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn list(entries: &[(u8, &[u8])]) -> Vec<u8> {
        let mut inner = Vec::new();
        for (kind, name) in entries {
            inner.push(*kind);
            inner.extend((name.len() as u16).to_be_bytes());
            inner.extend(*name);
        }
        let mut data = (inner.len() as u16).to_be_bytes().to_vec();
        data.extend(inner);
        data
    }

    fn sni(entries: &[(u8, &[u8])]) -> Result<Option<String>, HelloError> {
        parse(Reader::new(&list(entries)))
    }

    #[test]
    fn names_are_lowercased_and_lose_one_trailing_dot() {
        assert_eq!(
            sni(&[(0, b"Shop.Example.COM.")]).unwrap().unwrap(),
            "shop.example.com"
        );
        assert_eq!(
            sni(&[(0, b"_acme-x.a-b.test")]).unwrap().unwrap(),
            "_acme-x.a-b.test"
        );
        let longest = [
            "a".repeat(63),
            "b".repeat(63),
            "c".repeat(63),
            "d".repeat(61),
        ]
        .join(".");
        assert_eq!(sni(&[(0, longest.as_bytes())]).unwrap().unwrap(), longest);
        assert!(is_normalised_host_name(&longest) && !is_normalised_host_name("A.test"));
    }

    #[test]
    fn ip_literals_and_other_name_types_are_no_name() {
        assert_eq!(sni(&[(0, b"192.0.2.1")]).unwrap(), None);
        assert_eq!(sni(&[(0, b"2001:db8::1")]).unwrap(), None);
        assert_eq!(sni(&[(7, b"whatever")]).unwrap(), None);
        assert_eq!(
            sni(&[(7, b"x"), (0, b"a.test")]).unwrap().unwrap(),
            "a.test"
        );
    }

    #[test]
    fn invalid_names_are_refused() {
        let long_label = format!("{}.test", "a".repeat(64));
        let long_name = [
            "a".repeat(63),
            "b".repeat(63),
            "c".repeat(63),
            "d".repeat(63),
        ]
        .join(".");
        for bad in [
            &b""[..],
            b".",
            b"a..b",
            b".a",
            b"a.b..",
            b"exa mple.com",
            b"a/b",
            b"a:b",
            b"ex\xc3\xa4mple.com",
            b"\xff",
            b"a\0b",
            long_label.as_bytes(),
            long_name.as_bytes(),
        ] {
            let got = sni(&[(0, bad)]);
            assert!(
                matches!(got, Err(HelloError::BadServerName(_))),
                "{bad:?}: {got:?}"
            );
        }
        assert!(matches!(
            sni(&[(0, b"a.test"), (0, b"b.test")]),
            Err(HelloError::BadServerName(_))
        ));
    }

    #[test]
    fn malformed_lists_are_refused() {
        for bad in [
            &[][..],
            &[0, 0],
            &[0, 3, 0, 0, 5],
            &[0, 4, 0, 0, 1, b'a', 9],
        ] {
            assert!(
                matches!(parse(Reader::new(bad)), Err(HelloError::Malformed(_))),
                "{bad:?}"
            );
        }
    }
}
