//! Listing the keyspace: pages of keys, shard by shard in slot order.
//!
//! A scan's position ([`ScanCursor`]) is a slot and the last key listed there. The shard that
//! owns the slot now lists its keys after that one; when it has none left, the scan goes on
//! at the slot after the shard's last. So a position stays valid through shard splits and
//! moves: a key present for the whole scan is listed, perhaps twice if a shard split meanwhile.

use kvdb_core::SLOT_COUNT;
use kvdb_core::proto::v1 as pb;

/// Where a scan goes on. [`ScanCursor::default`] starts one.
#[derive(Debug, Clone, PartialEq, Eq, Default, Hash)]
pub struct ScanCursor {
    /// The slot the next page starts in.
    pub slot: u16,
    /// List keys after this one; `None`: from the slot's first.
    pub after: Option<Vec<u8>>,
}

impl ScanCursor {
    /// The request for a page from here, examining at most `limit` stored keys.
    pub fn request(&self, limit: u32) -> pb::ScanRequest {
        pb::ScanRequest {
            after: self.after.clone().unwrap_or_default().into(),
            limit,
            slot_start: u32::from(self.slot),
            slot_end: u32::from(SLOT_COUNT - 1),
        }
    }

    /// Where the scan goes on after `page`, the answer to [`request`](Self::request) from
    /// here; `None` when every slot is done.
    pub fn next(&self, page: &pb::ScanResponse) -> Option<ScanCursor> {
        match &page.resume_after {
            Some(after) => Some(ScanCursor {
                slot: self.slot,
                after: Some(after.to_vec()),
            }),
            None => ScanCursor::after_shard(page),
        }
    }

    /// The start of the shard after the one that answered `page`; `None` after the last slot.
    pub fn after_shard(page: &pb::ScanResponse) -> Option<ScanCursor> {
        let next = page.shard_slot_end + 1;
        (next < u32::from(SLOT_COUNT)).then_some(ScanCursor {
            slot: next as u16,
            after: None,
        })
    }
}

/// One page of a scan: the live keys listed, and where to go on (`None`: done).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScanPage {
    /// Keys in byte order within their shard.
    pub keys: Vec<Vec<u8>>,
    /// The position after this page; `None` when the whole keyspace was listed.
    pub next: Option<ScanCursor>,
}

impl ScanPage {
    /// The page `reply` answered for a request from `at`.
    pub(crate) fn of(at: &ScanCursor, reply: pb::ScanResponse) -> ScanPage {
        let next = at.next(&reply);
        ScanPage {
            keys: reply.keys.into_iter().map(|k| k.to_vec()).collect(),
            next,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_scan_resumes_in_its_shard_then_moves_past_it() {
        let start = ScanCursor::default();
        let more = pb::ScanResponse {
            keys: vec![b"a".to_vec().into()],
            resume_after: Some(b"b".to_vec().into()),
            shard_slot_end: 4095,
            stored_keys: 9,
            ..Default::default()
        };
        let resumed = start.next(&more).unwrap();
        assert_eq!(
            (resumed.slot, resumed.after.as_deref()),
            (0, Some(&b"b"[..]))
        );
        let done_here = pb::ScanResponse {
            resume_after: None,
            ..more.clone()
        };
        assert_eq!(
            resumed.next(&done_here),
            Some(ScanCursor {
                slot: 4096,
                after: None
            })
        );
        let last = pb::ScanResponse {
            resume_after: None,
            shard_slot_end: u32::from(SLOT_COUNT - 1),
            ..more
        };
        assert_eq!(resumed.next(&last), None);
        assert_eq!(ScanPage::of(&resumed, last).keys, vec![b"a".to_vec()]);
    }
}
