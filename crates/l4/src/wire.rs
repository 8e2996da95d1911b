//! A bounds-checked cursor over untrusted bytes: every read either succeeds or reports
//! that the input ended, so the parsers never index out of range.

/// The input ended before a field did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Short;

#[derive(Debug, Clone)]
pub(crate) struct Reader<'a> {
    rest: &'a [u8],
}

impl<'a> Reader<'a> {
    pub(crate) fn new(bytes: &'a [u8]) -> Reader<'a> {
        Reader { rest: bytes }
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.rest.is_empty()
    }

    pub(crate) fn take(&mut self, n: usize) -> Result<&'a [u8], Short> {
        if n > self.rest.len() {
            return Err(Short);
        }
        let (head, tail) = self.rest.split_at(n);
        self.rest = tail;
        Ok(head)
    }

    pub(crate) fn u8(&mut self) -> Result<u8, Short> {
        Ok(self.take(1)?[0])
    }

    pub(crate) fn u16(&mut self) -> Result<u16, Short> {
        let b = self.take(2)?;
        Ok(u16::from_be_bytes([b[0], b[1]]))
    }

    /// A vector with a one-byte length prefix, as a reader of its own.
    pub(crate) fn vec8(&mut self) -> Result<Reader<'a>, Short> {
        let n = self.u8()?;
        Ok(Reader::new(self.take(n.into())?))
    }

    /// A vector with a two-byte length prefix, as a reader of its own.
    pub(crate) fn vec16(&mut self) -> Result<Reader<'a>, Short> {
        let n = self.u16()?;
        Ok(Reader::new(self.take(n.into())?))
    }

    pub(crate) fn remaining(&self) -> &'a [u8] {
        self.rest
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_big_endian_fields_and_stops_at_the_end() {
        let mut r = Reader::new(&[1, 0, 2, 2, 9, 9, 7]);
        assert_eq!(r.u8(), Ok(1));
        assert_eq!(r.u16(), Ok(2));
        let mut v = r.vec8().unwrap();
        assert_eq!(v.take(2), Ok(&[9, 9][..]));
        assert!(v.is_empty());
        assert_eq!(r.remaining(), &[7]);
        assert_eq!(r.u16(), Err(Short));
        assert!(r.vec16().is_err());
        assert_eq!(r.remaining(), &[7], "a failed read consumes nothing");
    }
}
