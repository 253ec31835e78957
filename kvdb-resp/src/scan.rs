//! `SCAN`, `KEYS`, `DBSIZE` and `RANDOMKEY` over a sharded keyspace.
//!
//! A scan's position is the client library's [`kvdb_client::ScanCursor`]: a slot and the last
//! key listed there, which survives splits and moves between calls (a shard split meanwhile
//! may list a few keys twice, which `SCAN` allows); a key present for the whole scan is always
//! listed.
//!
//! A Redis cursor is an integer, too small for a key: the server keeps each position under a
//! cursor number ([`Cursors`]), as Kvrocks does. A cursor therefore works on the gateway that
//! issued it, for the last [`MAX_CURSORS`] scans.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;

pub(crate) use kvdb_client::ScanCursor as Position;

/// How many scan positions a server remembers; the oldest is forgotten first.
pub const MAX_CURSORS: usize = 65_536;

/// Scan positions by cursor number: of `SCAN` by default, or of another scan (`HSCAN`'s
/// last field).
#[derive(Debug)]
pub struct Cursors<T = Position>(Mutex<Table<T>>);

#[derive(Debug)]
struct Table<T> {
    next: u64,
    positions: HashMap<u64, T>,
    order: VecDeque<u64>,
}

impl<T> Default for Cursors<T> {
    fn default() -> Self {
        // Numbers start somewhere new in each process, so a cursor kept across a gateway
        // restart is unknown rather than someone else's scan.
        let seed = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(1, |d| d.as_nanos() as u64);
        Cursors(Mutex::new(Table {
            next: seed >> 16 | 1,
            positions: HashMap::new(),
            order: VecDeque::new(),
        }))
    }
}

impl<T: Clone + Default> Cursors<T> {
    /// Remembers `position` under a new cursor number (never 0, which starts a scan).
    pub fn save(&self, position: T) -> u64 {
        let mut table = self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let id = table.next;
        table.next = table.next.wrapping_add(1).max(1);
        if table.order.len() >= MAX_CURSORS
            && let Some(oldest) = table.order.pop_front()
        {
            table.positions.remove(&oldest);
        }
        table.positions.insert(id, position);
        table.order.push_back(id);
        id
    }

    /// The position of cursor `id`: the start for 0, `None` for a number this server did not
    /// give out (or forgot).
    pub fn position(&self, id: u64) -> Option<T> {
        if id == 0 {
            return Some(T::default());
        }
        let table = self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        table.positions.get(&id).cloned()
    }
}

/// Whether `text` matches the glob `pattern` as Redis matches `KEYS` and `SCAN ... MATCH`
/// patterns, byte by byte: `*` any run, `?` one byte, `[abc]`, `[^abc]`, `[a-z]`, and `\`
/// quoting the next byte.
pub fn glob_matches(pattern: &[u8], text: &[u8]) -> bool {
    let (mut p, mut t) = (0, 0);
    // Where to resume after the last `*`: the pattern after it, and the text it covers to.
    let mut star: Option<(usize, usize)> = None;
    while t < text.len() {
        if p < pattern.len() {
            match pattern[p] {
                b'*' => {
                    star = Some((p + 1, t));
                    p += 1;
                    continue;
                }
                b'?' => {
                    p += 1;
                    t += 1;
                    continue;
                }
                b'[' => {
                    if let Some((matched, next)) = class(pattern, p, text[t])
                        && matched
                    {
                        p = next;
                        t += 1;
                        continue;
                    }
                }
                b'\\' if p + 1 < pattern.len() => {
                    if pattern[p + 1] == text[t] {
                        p += 2;
                        t += 1;
                        continue;
                    }
                }
                byte => {
                    if byte == text[t] {
                        p += 1;
                        t += 1;
                        continue;
                    }
                }
            }
        }
        // A mismatch: let the last `*` cover one more byte, or fail.
        match star {
            Some((after_star, covered)) => {
                p = after_star;
                t = covered + 1;
                star = Some((after_star, covered + 1));
            }
            None => return false,
        }
    }
    pattern[p..].iter().all(|&b| b == b'*')
}

/// Matches `byte` against the class opening at `pattern[open]`: whether it matched, and the
/// pattern index after the class. An unclosed class runs to the pattern's end, as in Redis.
fn class(pattern: &[u8], open: usize, byte: u8) -> Option<(bool, usize)> {
    let mut i = open + 1;
    let negate = pattern.get(i) == Some(&b'^');
    if negate {
        i += 1;
    }
    let mut matched = false;
    while i < pattern.len() && pattern[i] != b']' {
        if pattern[i] == b'\\' && i + 1 < pattern.len() {
            matched |= pattern[i + 1] == byte;
            i += 2;
        } else if i + 2 < pattern.len() && pattern[i + 1] == b'-' && pattern[i + 2] != b']' {
            let (lo, hi) = (
                pattern[i].min(pattern[i + 2]),
                pattern[i].max(pattern[i + 2]),
            );
            matched |= (lo..=hi).contains(&byte);
            i += 3;
        } else {
            matched |= pattern[i] == byte;
            i += 1;
        }
    }
    let next = (i + 1).min(pattern.len());
    Some((matched != negate, next))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs_match_as_redis_matches_them() {
        let cases: &[(&[u8], &[u8], bool)] = &[
            (b"*", b"", true),
            (b"*", b"anything", true),
            (b"user:*", b"user:7", true),
            (b"user:*", b"users", false),
            (b"h?llo", b"hello", true),
            (b"h?llo", b"hllo", false),
            (b"h*llo", b"heeeello", true),
            (b"h[ae]llo", b"hallo", true),
            (b"h[ae]llo", b"hillo", false),
            (b"h[^e]llo", b"hallo", true),
            (b"h[^e]llo", b"hello", false),
            (b"h[a-b]llo", b"hbllo", true),
            (b"h[a-b]llo", b"hcllo", false),
            (b"h\\*llo", b"h*llo", true),
            (b"h\\*llo", b"hello", false),
            (b"*a*b", b"xaxxb", true),
            (b"*a*b", b"xaxxbc", false),
            (b"a*", b"b", false),
            (b"", b"", true),
            (b"", b"a", false),
        ];
        for (pattern, text, expected) in cases {
            assert_eq!(
                glob_matches(pattern, text),
                *expected,
                "{:?} ~ {:?}",
                String::from_utf8_lossy(pattern),
                String::from_utf8_lossy(text)
            );
        }
    }

    #[test]
    fn cursors_are_remembered_and_the_oldest_forgotten() {
        let cursors = Cursors::default();
        assert_eq!(cursors.position(0), Some(Position::default()));
        let at = Position {
            slot: 7,
            after: Some(b"k".to_vec()),
        };
        let id = cursors.save(at.clone());
        assert_ne!(id, 0);
        assert_eq!(cursors.position(id), Some(at));
        assert_eq!(cursors.position(id + 1), None);
        for _ in 0..MAX_CURSORS {
            cursors.save(Position::default());
        }
        assert_eq!(cursors.position(id), None, "the oldest cursor is forgotten");
    }
}
