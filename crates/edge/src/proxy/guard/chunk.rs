//! A chunked body, followed byte by byte with hyper's own rules (`proto/h1/decode.rs`),
//! so the guard and hyper agree on where it ends: what hyper accepts ends here at the
//! same byte, and what hyper rejects is an error here too.

/// Where in a chunked body the next byte falls.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(in crate::proxy) enum Chunk {
    /// Before the first digit of a chunk size.
    #[default]
    Start,
    Size(u64),
    /// Whitespace after the size.
    SizeLws(u64),
    Extension(u64),
    SizeLf(u64),
    /// This many data bytes left.
    Data(u64),
    DataCr,
    DataLf,
    /// At the start of a trailer line (or of the final empty line).
    EndCr,
    Trailer,
    TrailerLf,
    EndLf,
}

impl Chunk {
    /// Follows `input`: how many bytes belong to the body, and whether it ended there.
    /// `Err` where hyper would fail.
    pub(in crate::proxy) fn advance(&mut self, input: &[u8]) -> Result<(usize, bool), ()> {
        let mut i = 0;
        while i < input.len() {
            if let Chunk::Data(left) = self {
                let n = usize::try_from(*left).map_or(input.len() - i, |l| l.min(input.len() - i));
                *left -= n as u64;
                i += n;
                if *left == 0 {
                    *self = Chunk::DataCr;
                }
                continue;
            }
            let b = input[i];
            i += 1;
            *self = match (*self, b) {
                (Chunk::Start, b) => Chunk::Size(digit(0, b)?),
                (Chunk::Size(n), b' ' | b'\t') | (Chunk::SizeLws(n), b' ' | b'\t') => {
                    Chunk::SizeLws(n)
                }
                (Chunk::Size(n) | Chunk::SizeLws(n), b';') => Chunk::Extension(n),
                (Chunk::Size(n) | Chunk::SizeLws(n) | Chunk::Extension(n), b'\r') => {
                    Chunk::SizeLf(n)
                }
                (Chunk::Size(n), b) => Chunk::Size(digit(n, b)?),
                (Chunk::Extension(_), b'\n') => return Err(()),
                (Chunk::Extension(n), _) => Chunk::Extension(n),
                (Chunk::SizeLf(0), b'\n') => Chunk::EndCr,
                (Chunk::SizeLf(n), b'\n') => Chunk::Data(n),
                (Chunk::DataCr, b'\r') => Chunk::DataLf,
                (Chunk::DataLf, b'\n') => Chunk::Start,
                (Chunk::EndCr, b'\r') => Chunk::EndLf,
                (Chunk::Trailer, b'\r') => Chunk::TrailerLf,
                (Chunk::EndCr | Chunk::Trailer, _) => Chunk::Trailer,
                (Chunk::TrailerLf, b'\n') => Chunk::EndCr,
                (Chunk::EndLf, b'\n') => return Ok((i, true)),
                _ => return Err(()),
            };
        }
        Ok((i, false))
    }
}

/// `size` with one more hex digit, as hyper reads it (overflow is an error).
fn digit(size: u64, b: u8) -> Result<u64, ()> {
    let d = (b as char).to_digit(16).ok_or(())?;
    size.checked_mul(16)
        .and_then(|s| s.checked_add(u64::from(d)))
        .ok_or(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(body: &[u8]) -> Result<(usize, bool), ()> {
        Chunk::default().advance(body)
    }

    #[test]
    fn bodies_end_exactly_after_the_last_chunk_and_trailers() {
        let body = b"A\r\n0123456789\r\n0\r\n\r\n";
        assert_eq!(run(&[&body[..], b"GET"].concat()), Ok((body.len(), true)));
        let trailers = b"1;a=b\r\nx\r\n0\r\nExpires: never\r\nX: y\r\n\r\n";
        assert_eq!(run(trailers), Ok((trailers.len(), true)));
        assert_eq!(run(b"5\r\nhel"), Ok((6, false)));
    }

    #[test]
    fn what_hyper_rejects_is_rejected() {
        for bad in [
            &b"\r\n"[..],
            b"g\r\n",
            b"5\n",
            b"1;ext\n",
            b"1 2\r\n",
            b"1\r\nxy",
            b"10000000000000000\r\n",
        ] {
            assert_eq!(run(bad), Err(()), "{}", String::from_utf8_lossy(bad));
        }
    }

    #[test]
    fn state_carries_across_pieces() {
        let mut c = Chunk::default();
        assert_eq!(c.advance(b"3\r"), Ok((2, false)));
        assert_eq!(c.advance(b"\nab"), Ok((3, false)));
        assert_eq!(c, Chunk::Data(1));
        assert_eq!(c.advance(b"c\r\n0\r\n\r\nrest"), Ok((8, true)));
    }
}
