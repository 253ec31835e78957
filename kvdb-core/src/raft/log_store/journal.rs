//! How one commit of the writer reaches the disk: one record, one `fdatasync`, then the index.
//!
//! Every segment begins with a record holding every group's metadata, so that a segment and
//! those after it are a complete history: the oldest segment can be deleted as soon as no
//! entry in it is in use, and replay starts at whichever segment is oldest. A group that
//! stops writing (an idle shard) would keep its old segment in use forever; once more than
//! [`super::LogDbOptions::max_segments`] are on disk, the groups still in the oldest one have
//! their entries copied into the record that starts the next segment, which frees it.
//!
//! Out of scope: batching requests and answering them (see [`super::writer`]).

use std::io;
use std::sync::Arc;

use super::index::{self, Liveness, LogIndex};
use super::record::{self, Op, Span, WriteOp};
use super::segments::{DirLock, HEADER, Segments};
use super::{LogDbError, LogDbOptions};
use crate::raft::lock;

/// The writer thread's side of the log: the files, and which of them are in use.
pub(super) struct Journal {
    segments: Segments,
    index: Arc<LogIndex>,
    live: Liveness,
    max_segments: usize,
    /// Set by a failed write or sync: what reached the file is then unknown (a failed
    /// `fdatasync` may have dropped the dirty pages), so nothing more is written.
    failed: bool,
}

impl Journal {
    /// Opens the log in `dir`, replaying its segments into a fresh index.
    pub(super) fn open(
        dir: &std::path::Path,
        options: &LogDbOptions,
    ) -> Result<(Self, Arc<LogIndex>), LogDbError> {
        let lock = DirLock::acquire(dir)?.ok_or_else(|| LogDbError::InUse {
            dir: dir.to_path_buf(),
        })?;
        let index = Arc::new(LogIndex::default());
        let mut live = Liveness::default();
        let segments = Segments::open(
            dir,
            lock,
            options.segment_bytes,
            |segment, offset, bytes| -> Result<(), LogDbError> {
                for op in record::decode(bytes, HEADER)? {
                    index.apply(&op, segment, offset, &mut live);
                }
                Ok(())
            },
        )?;
        let mut journal = Self {
            segments,
            index: index.clone(),
            live,
            max_segments: options.max_segments,
            failed: false,
        };
        // The fresh segment needs its metadata record before older ones may go.
        journal.commit(&[])?;
        Ok((journal, index))
    }

    /// Writes `ops` durably in one record and applies them to the index.
    pub(super) fn commit(&mut self, ops: &[&WriteOp]) -> Result<(), LogDbError> {
        if self.failed {
            return Err(LogDbError::Io(io::Error::other(
                "an earlier raft log write failed",
            )));
        }
        let mut record = Segments::record_buffer();
        let encoded = ops
            .iter()
            .map(|op| record::encode(op, &mut record))
            .collect::<Result<Vec<_>, _>>()?;
        // A segment that cannot be created (a full disk) fails this commit only: nothing was
        // written, and the next commit tries again.
        if self.segments.is_full_for(record.len()) {
            self.segments.rotate()?;
        }
        let result = self.write(encoded, record);
        if result.is_err() {
            self.failed = true;
        }
        result
    }

    /// Appends `record` (after the head record if it starts a segment), syncs once, then
    /// applies both to the index.
    fn write(&mut self, encoded: Vec<Op<Span>>, mut record: Vec<u8>) -> Result<(), LogDbError> {
        let starts_segment = self.segments.is_fresh();
        let head = if starts_segment {
            let mut head = Segments::record_buffer();
            let copies = self.segment_head(&mut head)?;
            let (segment, offset) = self.segments.append(&mut head)?;
            Some((copies, segment, offset))
        } else {
            None
        };
        let (segment, offset) = self.segments.append(&mut record)?;
        self.segments.sync()?;
        if let Some((copies, head_segment, head_offset)) = &head {
            for op in copies {
                self.index
                    .apply(op, head_segment, *head_offset, &mut self.live);
            }
        }
        for op in &encoded {
            self.index.apply(op, &segment, offset, &mut self.live);
        }
        if starts_segment && let Err(e) = self.remove_unused() {
            // The file stays until the next start, which replays it as history and deletes
            // it once nothing in it is used.
            tracing::warn!(error = %e, "deleting an unused raft log segment failed");
        }
        Ok(())
    }

    /// Encodes into `record` what starts a segment, as its first record: the entries of groups
    /// to copy forward out of the oldest segment, then every group's metadata. Returns the
    /// copies as writes to apply once the record is durable.
    fn segment_head(&mut self, record: &mut Vec<u8>) -> Result<Vec<Op<Span>>, LogDbError> {
        let mut copies = Vec::new();
        if self.segments.count() > self.max_segments
            && let Some(oldest) = self.segments.older().next()
        {
            for group in self.live.groups_in(oldest.seq()) {
                let (first, locs) = lock(&self.index.group(group)).all();
                let mut entries = Vec::with_capacity(locs.len());
                index::read_each(&locs, |bytes| {
                    let index = first + entries.len() as u64;
                    entries.push((index, Arc::from(bytes)));
                    Ok::<_, io::Error>(())
                })?;
                let op = Op::Append { group, entries };
                copies.push(record::encode(&op, record)?);
            }
        }
        for (group, log) in self.index.groups() {
            let log = lock(&log);
            for (key, value) in log.metas() {
                let op = Op::PutMeta {
                    group,
                    key,
                    value: Some(value.to_vec()),
                };
                record::encode(&op, record)?;
            }
        }
        Ok(copies)
    }

    /// Deletes the oldest segments while nothing in them is in use.
    fn remove_unused(&mut self) -> io::Result<()> {
        loop {
            let oldest = self.segments.older().next().map(|s| s.seq());
            match oldest {
                Some(seq) if !self.live.in_use(seq) => self.segments.remove_oldest()?,
                _ => return Ok(()),
            }
        }
    }
}
