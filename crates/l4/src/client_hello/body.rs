//! The ClientHello message itself (RFC 8446, 4.1.2): the fixed fields are checked for
//! shape and skipped, the extensions the edge routes on are read.

use super::{ClientHello, HelloError, sni};
use crate::wire::{Reader, Short};

const EXT_SERVER_NAME: u16 = 0;
const EXT_ALPN: u16 = 16;
const EXT_SUPPORTED_VERSIONS: u16 = 43;

/// Parses the hello `body` (without its handshake header); `len` is how many input bytes
/// its records took.
pub(super) fn parse(body: &[u8], len: usize) -> Result<ClientHello, HelloError> {
    let mut r = Reader::new(body);
    let legacy_version = r.u16().map_err(short("it ends inside its version"))?;
    if legacy_version >> 8 != 3 {
        return Err(HelloError::Malformed("its version is not TLS 1.x"));
    }
    r.take(32).map_err(short("it ends inside its random"))?;
    let session_id = r.vec8().map_err(short("it ends inside its session id"))?;
    if session_id.remaining().len() > 32 {
        return Err(HelloError::Malformed(
            "its session id is longer than 32 bytes",
        ));
    }
    let suites = r
        .vec16()
        .map_err(short("it ends inside its cipher suites"))?
        .remaining();
    if suites.is_empty() || suites.len() % 2 != 0 {
        return Err(HelloError::Malformed(
            "its cipher suite list is empty or odd",
        ));
    }
    if r.vec8()
        .map_err(short("it ends inside its compression methods"))?
        .is_empty()
    {
        return Err(HelloError::Malformed("it lists no compression method"));
    }
    let mut hello = ClientHello {
        server_name: None,
        alpn: Vec::new(),
        legacy_version,
        supported_versions: Vec::new(),
        len,
    };
    // TLS 1.0 to 1.2 allow a hello without extensions at all.
    if r.is_empty() {
        return Ok(hello);
    }
    let mut extensions = r.vec16().map_err(short("it ends inside its extensions"))?;
    if !r.is_empty() {
        return Err(HelloError::Malformed("bytes follow its extensions"));
    }
    let mut seen = Vec::new();
    while !extensions.is_empty() {
        let kind = extensions
            .u16()
            .map_err(short("an extension is cut short"))?;
        let data = extensions
            .vec16()
            .map_err(short("an extension is longer than the extension list"))?;
        // A repeated extension could be read one way here and another by the app.
        if seen.contains(&kind) {
            return Err(HelloError::DuplicateExtension(kind));
        }
        seen.push(kind);
        match kind {
            EXT_SERVER_NAME => hello.server_name = sni::parse(data)?,
            EXT_ALPN => hello.alpn = alpn(data)?,
            EXT_SUPPORTED_VERSIONS => hello.supported_versions = versions(data)?,
            _ => {}
        }
    }
    Ok(hello)
}

/// Maps a read past the end to the error naming what was cut.
fn short(what: &'static str) -> impl Fn(Short) -> HelloError {
    move |Short| HelloError::Malformed(what)
}

/// ProtocolNameList (RFC 7301, 3.1): one or more non-empty names.
fn alpn(mut data: Reader<'_>) -> Result<Vec<Vec<u8>>, HelloError> {
    const BAD: HelloError = HelloError::Malformed("its ALPN extension is malformed");
    let mut list = data.vec16().map_err(|Short| BAD)?;
    if !data.is_empty() || list.is_empty() {
        return Err(BAD);
    }
    let mut protocols = Vec::new();
    while !list.is_empty() {
        let name = list.vec8().map_err(|Short| BAD)?.remaining();
        if name.is_empty() {
            return Err(BAD);
        }
        protocols.push(name.to_vec());
    }
    Ok(protocols)
}

/// The client's `supported_versions` (RFC 8446, 4.2.1): one or more two-byte versions.
fn versions(mut data: Reader<'_>) -> Result<Vec<u16>, HelloError> {
    const BAD: HelloError = HelloError::Malformed("its supported_versions extension is malformed");
    let mut list = data.vec8().map_err(|Short| BAD)?;
    if !data.is_empty() || list.is_empty() || list.remaining().len() % 2 != 0 {
        return Err(BAD);
    }
    let mut versions = Vec::new();
    while !list.is_empty() {
        versions.push(list.u16().map_err(|Short| BAD)?);
    }
    Ok(versions)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A minimal TLS 1.2 hello body with the given extensions block (if any).
    fn body(extensions: Option<&[u8]>) -> Vec<u8> {
        let mut b = vec![3, 3];
        b.extend([0; 32]);
        b.extend([0, 0, 2, 0x13, 0x01, 1, 0]);
        if let Some(ext) = extensions {
            b.extend((ext.len() as u16).to_be_bytes());
            b.extend(ext);
        }
        b
    }

    fn ext(kind: u16, data: &[u8]) -> Vec<u8> {
        let mut e = kind.to_be_bytes().to_vec();
        e.extend((data.len() as u16).to_be_bytes());
        e.extend(data);
        e
    }

    #[test]
    fn a_hello_without_extensions_has_no_name() {
        let hello = parse(&body(None), 99).unwrap();
        assert_eq!(
            (hello.server_name, hello.alpn.len(), hello.len),
            (None, 0, 99)
        );
    }

    #[test]
    fn alpn_and_versions_are_read() {
        let mut exts = ext(
            EXT_ALPN,
            &[
                0, 12, 2, b'h', b'2', 8, b'h', b't', b't', b'p', b'/', b'1', b'.', b'1',
            ],
        );
        exts.extend(ext(EXT_SUPPORTED_VERSIONS, &[4, 3, 4, 3, 3]));
        exts.extend(ext(0xfafa, &[])); // GREASE: ignored
        let hello = parse(&body(Some(&exts)), 0).unwrap();
        assert_eq!(hello.alpn, [b"h2".to_vec(), b"http/1.1".to_vec()]);
        assert_eq!(hello.supported_versions, [0x0304, 0x0303]);
        assert!(hello.offers_alpn(b"h2") && !hello.is_acme_tls_alpn());
    }

    #[test]
    fn malformed_bodies_are_refused() {
        let mut dup = ext(EXT_ALPN, &[0, 3, 2, b'h', b'2']);
        dup.extend(dup.clone());
        assert!(matches!(
            parse(&body(Some(&dup)), 0),
            Err(HelloError::DuplicateExtension(EXT_ALPN))
        ));
        for bad in [
            ext(EXT_ALPN, &[0, 1, 0]),
            ext(EXT_ALPN, &[0, 0]),
            ext(EXT_ALPN, &[0, 3, 2, b'h', b'2', 9]),
            ext(EXT_SUPPORTED_VERSIONS, &[3, 3, 4, 3]),
            ext(EXT_SUPPORTED_VERSIONS, &[0]),
            vec![0, 16, 0, 9, 0],
        ] {
            assert!(
                matches!(parse(&body(Some(&bad)), 0), Err(HelloError::Malformed(_))),
                "{bad:?}"
            );
        }
        let full = body(Some(&ext(EXT_ALPN, &[0, 3, 2, b'h', b'2'])));
        for cut in 0..full.len() {
            if cut == body(None).len() {
                continue; // a hello that ends before its extensions is valid
            }
            assert!(
                matches!(parse(&full[..cut], 0), Err(HelloError::Malformed(_))),
                "{cut}"
            );
        }
        let mut trailing = full.clone();
        trailing.push(0);
        assert!(parse(&trailing, 0).is_err());
    }
}
