//! A Redis hash stored whole in its key's record ([`crate::storage::ValueKind::Hash`]): its
//! field-value pairs in insertion order, as Redis keeps a small hash (its listpack
//! encoding), so `HGETALL` and `HKEYS` answer in Redis's order.
//!
//! One record per small hash keeps every key-level mechanism (expiry, `DEL`, `RENAME`,
//! `SCAN`, splits, snapshots, backups) unchanged, at the price of rewriting the whole hash
//! on each change; past Redis's small-hash limits a hash moves to member rows
//! ([`crate::member_rows`]), and readers see it gathered back into this form.
//!
//! Encoding: the pair count, then each field and value, every length and the count a
//! little-endian `u32`.

use std::collections::{HashMap, HashSet};

/// A hash's pairs, in insertion order; fields are unique.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HashValue {
    pairs: Vec<(Vec<u8>, Vec<u8>)>,
}

/// Bytes that are not an encoded hash: a defect or corruption, never user input.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("stored hash is corrupt: {0}")]
pub struct HashDecodeError(&'static str);

impl HashValue {
    /// An empty hash.
    pub fn new() -> HashValue {
        HashValue::default()
    }

    /// Reads an encoded hash.
    pub fn decode(bytes: &[u8]) -> Result<HashValue, HashDecodeError> {
        let mut rest = bytes;
        let count = take_u32(&mut rest)? as usize;
        // Every pair needs at least its two lengths: a corrupt count cannot reserve much.
        let mut pairs = Vec::with_capacity(count.min(rest.len() / 8));
        for _ in 0..count {
            let field = take_bytes(&mut rest)?;
            let value = take_bytes(&mut rest)?;
            pairs.push((field.to_vec(), value.to_vec()));
        }
        if !rest.is_empty() {
            return Err(HashDecodeError("bytes after the last pair"));
        }
        Ok(HashValue { pairs })
    }

    /// The stored form.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.encoded_len());
        out.extend_from_slice(&(self.pairs.len() as u32).to_le_bytes());
        for (field, value) in &self.pairs {
            for part in [field, value] {
                out.extend_from_slice(&(part.len() as u32).to_le_bytes());
                out.extend_from_slice(part);
            }
        }
        out
    }

    /// The length of [`encode`](Self::encode)'s answer, which the value size limit bounds.
    pub fn encoded_len(&self) -> usize {
        4 + self
            .pairs
            .iter()
            .map(|(f, v)| 8 + f.len() + v.len())
            .sum::<usize>()
    }

    /// The value of `field`.
    pub fn get(&self, field: &[u8]) -> Option<&[u8]> {
        self.position(field).map(|i| self.pairs[i].1.as_slice())
    }

    /// Sets `field` to `value`, keeping an existing field's place; true when it is new.
    pub fn set(&mut self, field: &[u8], value: Vec<u8>) -> bool {
        match self.position(field) {
            Some(i) => {
                self.pairs[i].1 = value;
                false
            }
            None => {
                self.pairs.push((field.to_vec(), value));
                true
            }
        }
    }

    /// Sets each pair in order, as [`set`](Self::set) would (with `only_new`, only fields not
    /// there yet); answers how many fields are new. One pass over the hash however many pairs
    /// there are, so a large `HSET` costs linear time, not quadratic.
    pub fn set_many(&mut self, pairs: &[(Vec<u8>, Vec<u8>)], only_new: bool) -> usize {
        let mut at: HashMap<Vec<u8>, usize> = self
            .pairs
            .iter()
            .enumerate()
            .map(|(i, (field, _))| (field.clone(), i))
            .collect();
        let mut added = 0;
        for (field, value) in pairs {
            match at.get(field) {
                Some(&i) if !only_new => self.pairs[i].1 = value.clone(),
                Some(_) => {}
                None => {
                    at.insert(field.clone(), self.pairs.len());
                    self.pairs.push((field.clone(), value.clone()));
                    added += 1;
                }
            }
        }
        added
    }

    /// Removes these fields (repeats count once); answers how many were there. One pass over
    /// the hash.
    pub fn remove_many(&mut self, fields: &[Vec<u8>]) -> usize {
        let gone: HashSet<&[u8]> = fields.iter().map(Vec::as_slice).collect();
        let before = self.pairs.len();
        self.pairs
            .retain(|(field, _)| !gone.contains(field.as_slice()));
        before - self.pairs.len()
    }

    /// Removes `field`; true when it was there.
    pub fn remove(&mut self, field: &[u8]) -> bool {
        match self.position(field) {
            Some(i) => {
                self.pairs.remove(i);
                true
            }
            None => false,
        }
    }

    /// How many fields it has.
    pub fn len(&self) -> usize {
        self.pairs.len()
    }

    /// Whether it has no field (an empty hash is never stored: its key is removed).
    pub fn is_empty(&self) -> bool {
        self.pairs.is_empty()
    }

    /// The pairs, in insertion order.
    pub fn pairs(&self) -> impl ExactSizeIterator<Item = (&[u8], &[u8])> {
        self.pairs.iter().map(|(f, v)| (f.as_slice(), v.as_slice()))
    }

    /// The pairs, owned, in insertion order.
    pub fn into_pairs(self) -> Vec<(Vec<u8>, Vec<u8>)> {
        self.pairs
    }

    fn position(&self, field: &[u8]) -> Option<usize> {
        self.pairs.iter().position(|(f, _)| f == field)
    }
}

impl FromIterator<(Vec<u8>, Vec<u8>)> for HashValue {
    /// Later pairs win over earlier ones with the same field, in the first one's place.
    fn from_iter<I: IntoIterator<Item = (Vec<u8>, Vec<u8>)>>(pairs: I) -> HashValue {
        let mut hash = HashValue::new();
        for (field, value) in pairs {
            hash.set(&field, value);
        }
        hash
    }
}

fn take_u32(rest: &mut &[u8]) -> Result<u32, HashDecodeError> {
    let (n, tail) = rest
        .split_first_chunk::<4>()
        .ok_or(HashDecodeError("truncated length"))?;
    *rest = tail;
    Ok(u32::from_le_bytes(*n))
}

fn take_bytes<'a>(rest: &mut &'a [u8]) -> Result<&'a [u8], HashDecodeError> {
    let len = take_u32(rest)? as usize;
    if rest.len() < len {
        return Err(HashDecodeError("truncated field or value"));
    }
    let (bytes, tail) = rest.split_at(len);
    *rest = tail;
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(hash: &HashValue) -> Vec<(&[u8], &[u8])> {
        hash.pairs().collect()
    }

    #[test]
    fn keeps_insertion_order_and_places_of_overwritten_fields() {
        let mut hash = HashValue::new();
        assert!(hash.set(b"b", b"1".to_vec()));
        assert!(hash.set(b"a", b"2".to_vec()));
        assert!(!hash.set(b"b", b"3".to_vec()));
        assert_eq!(pairs(&hash), [(&b"b"[..], &b"3"[..]), (b"a", b"2")]);
        assert!(hash.remove(b"b"));
        assert!(!hash.remove(b"b"));
        assert!(hash.set(b"b", Vec::new()));
        assert_eq!(pairs(&hash), [(&b"a"[..], &b"2"[..]), (b"b", b"")]);
        assert_eq!(hash.get(b"b"), Some(&b""[..]));
        assert_eq!(hash.get(b"c"), None);
    }

    #[test]
    fn many_pairs_at_once_act_as_one_at_a_time() {
        let pair = |f: &str, v: &str| (f.as_bytes().to_vec(), v.as_bytes().to_vec());
        let mut one = HashValue::from_iter([pair("a", "1"), pair("b", "2")]);
        let mut many = one.clone();
        let pairs = [
            pair("b", "3"),
            pair("c", "4"),
            pair("c", "5"),
            pair("d", "6"),
        ];
        let added = pairs.iter().filter(|(f, v)| one.set(f, v.clone())).count();
        assert_eq!(many.set_many(&pairs, false), added);
        assert_eq!(many, one);
        assert_eq!(many.set_many(&[pair("a", "9"), pair("e", "7")], true), 1);
        assert_eq!(many.get(b"a"), Some(&b"1"[..]));
        let gone = [b"a".to_vec(), b"zz".to_vec(), b"a".to_vec(), b"d".to_vec()];
        assert_eq!(many.remove_many(&gone), 2);
        let fields: Vec<&[u8]> = many.pairs().map(|(f, _)| f).collect();
        assert_eq!(fields, [&b"b"[..], b"c", b"e"]);
    }

    #[test]
    fn round_trips_through_its_encoding() {
        let hash: HashValue = [
            (b"f".to_vec(), b"v".to_vec()),
            (Vec::new(), vec![0, 255]),
            (b"f".to_vec(), b"w".to_vec()),
        ]
        .into_iter()
        .collect();
        assert_eq!(hash.len(), 2);
        let bytes = hash.encode();
        assert_eq!(bytes.len(), hash.encoded_len());
        assert_eq!(HashValue::decode(&bytes).unwrap(), hash);
        assert_eq!(
            HashValue::decode(&HashValue::new().encode()).unwrap().len(),
            0
        );
    }

    #[test]
    fn refuses_bytes_that_are_not_a_hash() {
        let bytes = HashValue::from_iter([(b"f".to_vec(), b"v".to_vec())]).encode();
        for cut in 0..bytes.len() {
            assert!(HashValue::decode(&bytes[..cut]).is_err(), "cut at {cut}");
        }
        let mut long = bytes.clone();
        long.push(0);
        assert!(HashValue::decode(&long).is_err());
        // A huge count with no pairs behind it fails without reserving for it.
        assert!(HashValue::decode(&u32::MAX.to_le_bytes()).is_err());
    }
}
