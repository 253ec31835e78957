//! The segment files of the Raft log: checksummed records appended to preallocated files.
//!
//! The log is a directory of files named by a sequence number, each written front to back
//! and never rewritten. A record is an 8-byte header (payload length, then a CRC-32C of the
//! segment's sequence number and the payload) followed by the payload. A file is created
//! full of zeros and synced before it is written, so that a commit's `fdatasync` writes only
//! the record's pages: the file's size and extents never change while it is in use. A zero
//! header ends a segment; so does a record whose checksum fails, which is how a write torn
//! by a crash is told from data (the sequence number in the checksum keeps a stale record of
//! another file from passing).
//!
//! The next file is prepared on a background thread while the current one fills. At open,
//! writing always continues in a fresh file, so nothing is ever written after a torn tail.
//!
//! Out of scope: what a payload means (see [`super::record`]) and which files may be deleted
//! (see [`super::journal`]).

use std::collections::BTreeMap;
use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::thread::JoinHandle;

/// Bytes before each record's payload: its length and checksum.
pub(super) const HEADER: usize = 8;

const CRC: crc::Crc<u32, crc::Table<16>> = crc::Crc::<u32, crc::Table<16>>::new(&crc::CRC_32_ISCSI);

/// One segment file, shared by the writer and every reader that holds a location in it. A
/// removed segment's file is unlinked, and its data stays readable through the open handle
/// until the last location into it is dropped.
#[derive(Debug)]
pub(super) struct Segment {
    seq: u64,
    file: File,
}

impl Segment {
    pub(super) fn seq(&self) -> u64 {
        self.seq
    }

    /// Reads `len` bytes at `offset`.
    pub(super) fn read(&self, offset: u64, len: usize) -> io::Result<Vec<u8>> {
        let mut bytes = vec![0; len];
        self.file.read_exact_at(&mut bytes, offset)?;
        Ok(bytes)
    }
}

/// The file whose lock marks a log directory as open.
const LOCK_FILE: &str = "LOCK";

/// The lock of an open log directory, released when dropped. Two logs open on one directory
/// (a second process, or a restart in this one while the old log's writer still runs) would
/// each write records the other never replays, and race on the files they create.
#[derive(Debug)]
pub(super) struct DirLock {
    _file: File,
}

impl DirLock {
    /// Creates `dir` if needed and locks it; `None` while another open log holds it.
    pub(super) fn acquire(dir: &Path) -> io::Result<Option<Self>> {
        fs::create_dir_all(dir)?;
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(dir.join(LOCK_FILE))?;
        match file.try_lock() {
            Ok(()) => Ok(Some(Self { _file: file })),
            Err(fs::TryLockError::WouldBlock) => Ok(None),
            Err(fs::TryLockError::Error(e)) => Err(e),
        }
    }
}

/// The segment files of one log directory, and where the next record goes.
pub(super) struct Segments {
    dir: PathBuf,
    /// The size files are created with; a segment takes no more records once past it.
    segment_bytes: u64,
    /// Every segment still on disk, oldest first; the last is the one being written.
    all: BTreeMap<u64, Arc<Segment>>,
    /// Where the next record starts in the current segment.
    position: u64,
    /// The next segment, being zero-filled in the background.
    next: Option<JoinHandle<io::Result<File>>>,
    /// Released after `Drop` has waited for `next`: nothing touches the directory after it.
    _lock: DirLock,
}

impl Segments {
    /// Opens the segments in `dir`, locked by `lock`, hands every intact record of the
    /// surviving segments, oldest first, to `on_record` as `(segment, record offset, record
    /// bytes)`, and starts a fresh segment for writing.
    pub(super) fn open<E: From<io::Error>>(
        dir: &Path,
        lock: DirLock,
        segment_bytes: u64,
        mut on_record: impl FnMut(&Arc<Segment>, u64, &[u8]) -> Result<(), E>,
    ) -> Result<Self, E> {
        let mut found = Vec::new();
        for entry in fs::read_dir(dir)? {
            let path = entry?.path();
            let name = path
                .file_name()
                .and_then(|n| n.to_str())
                .unwrap_or_default();
            if name.ends_with(".tmp") {
                // A segment whose preparation a crash interrupted; never written.
                fs::remove_file(&path)?;
            } else if let Some(seq) = name.strip_suffix(".log").and_then(|s| s.parse().ok()) {
                found.push(seq);
            }
        }
        found.sort_unstable();
        // Only an unbroken run of segments ending with the newest is one history: an older
        // segment cut off by a gap outlived the deletion of the ones after it in a crash.
        let mut start = found.len();
        while start > 0 && (start == found.len() || found[start - 1] + 1 == found[start]) {
            start -= 1;
        }
        for seq in &found[..start] {
            fs::remove_file(segment_path(dir, *seq))?;
        }
        let mut all = BTreeMap::new();
        for seq in &found[start..] {
            let path = segment_path(dir, *seq);
            let bytes = fs::read(&path)?;
            let file = OpenOptions::new().read(true).write(true).open(&path)?;
            let segment = Arc::new(Segment { seq: *seq, file });
            let mut at = 0;
            while let Some(len) = record_at(*seq, &bytes, at) {
                on_record(&segment, at as u64, &bytes[at..at + len])?;
                at += len;
            }
            all.insert(*seq, segment);
        }
        let mut segments = Self {
            dir: dir.to_path_buf(),
            segment_bytes,
            all,
            position: 0,
            next: None,
            _lock: lock,
        };
        segments.rotate()?;
        Ok(segments)
    }

    /// Whether a record of `len` bytes should go to a new segment: the current one has taken
    /// records and would pass its size.
    pub(super) fn is_full_for(&self, len: usize) -> bool {
        self.position > 0 && self.position + len as u64 > self.segment_bytes
    }

    /// Whether the current segment has no record yet.
    pub(super) fn is_fresh(&self) -> bool {
        self.position == 0
    }

    /// Makes a fresh segment the current one. The segments before it stay until removed.
    pub(super) fn rotate(&mut self) -> io::Result<()> {
        let seq = self.all.last_key_value().map_or(1, |(seq, _)| seq + 1);
        let file = match self.next.take() {
            Some(preparing) => preparing
                .join()
                .map_err(|_| io::Error::other("segment preparation panicked"))??,
            None => prepare(&self.dir, seq, self.segment_bytes)?,
        };
        self.all.insert(seq, Arc::new(Segment { seq, file }));
        self.position = 0;
        let (dir, bytes) = (self.dir.clone(), self.segment_bytes);
        self.next = Some(
            std::thread::Builder::new()
                .name("kvdb-raft-log-segment".to_owned())
                .spawn(move || prepare(&dir, seq + 1, bytes))?,
        );
        Ok(())
    }

    /// A buffer for the next record: header room, then the payload is appended to it.
    pub(super) fn record_buffer() -> Vec<u8> {
        vec![0; HEADER]
    }

    /// Writes `record` (a [`Segments::record_buffer`] with its payload) at the end of the
    /// current segment, not yet durably; returns the segment and the record's offset in it.
    pub(super) fn append(&mut self, record: &mut [u8]) -> io::Result<(Arc<Segment>, u64)> {
        let segment = self.current().clone();
        let len = u32::try_from(record.len() - HEADER)
            .map_err(|_| io::Error::other("raft log record over 4 GiB"))?;
        let crc = checksum(segment.seq, &record[HEADER..]);
        record[..4].copy_from_slice(&len.to_le_bytes());
        record[4..HEADER].copy_from_slice(&crc.to_le_bytes());
        let offset = self.position;
        segment.file.write_all_at(record, offset)?;
        self.position += record.len() as u64;
        Ok((segment, offset))
    }

    /// Makes every record appended so far durable.
    pub(super) fn sync(&self) -> io::Result<()> {
        self.current().file.sync_data()
    }

    /// The segment being written.
    pub(super) fn current(&self) -> &Arc<Segment> {
        self.all
            .last_key_value()
            .map(|(_, segment)| segment)
            .expect("a current segment exists once open")
    }

    /// The segments before the current one, oldest first.
    pub(super) fn older(&self) -> impl Iterator<Item = &Arc<Segment>> {
        let current = self.current().seq;
        self.all.values().take_while(move |s| s.seq < current)
    }

    /// Deletes the oldest segment, which must not be the current one.
    pub(super) fn remove_oldest(&mut self) -> io::Result<()> {
        let Some((&seq, _)) = self.all.first_key_value() else {
            return Ok(());
        };
        assert!(seq < self.current().seq, "removing the current segment");
        self.all.remove(&seq);
        fs::remove_file(segment_path(&self.dir, seq))
    }

    /// How many segments are on disk, the current one included.
    pub(super) fn count(&self) -> usize {
        self.all.len()
    }
}

impl Drop for Segments {
    fn drop(&mut self) {
        // The next file must be complete (or absent) before anyone reopens the directory.
        if let Some(preparing) = self.next.take() {
            let _ = preparing.join();
        }
    }
}

fn segment_path(dir: &Path, seq: u64) -> PathBuf {
    dir.join(format!("{seq:020}.log"))
}

fn checksum(seq: u64, payload: &[u8]) -> u32 {
    let mut digest = CRC.digest();
    digest.update(&seq.to_le_bytes());
    digest.update(payload);
    digest.finalize()
}

/// The length of the intact record at `at` in segment `seq`'s `bytes`, if there is one.
fn record_at(seq: u64, bytes: &[u8], at: usize) -> Option<usize> {
    let header = bytes.get(at..at.checked_add(HEADER)?)?;
    let len = u32::from_le_bytes(header[..4].try_into().ok()?) as usize;
    let crc = u32::from_le_bytes(header[4..].try_into().ok()?);
    if len == 0 && crc == 0 {
        return None;
    }
    let payload = bytes.get(at + HEADER..(at + HEADER).checked_add(len)?)?;
    (checksum(seq, payload) == crc).then_some(HEADER + len)
}

/// Creates segment `seq` full of zeros, durably, under its final name.
fn prepare(dir: &Path, seq: u64, bytes: u64) -> io::Result<File> {
    let tmp = dir.join(format!("{seq:020}.log.tmp"));
    let mut file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .open(&tmp)?;
    let zeros = vec![0u8; 1 << 20];
    let mut left = bytes;
    while left > 0 {
        let n = left.min(zeros.len() as u64) as usize;
        io::Write::write_all(&mut file, &zeros[..n])?;
        left -= n as u64;
    }
    file.sync_all()?;
    fs::rename(&tmp, segment_path(dir, seq))?;
    File::open(dir)?.sync_all()?;
    Ok(file)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(payload: &[u8]) -> Vec<u8> {
        let mut record = Segments::record_buffer();
        record.extend_from_slice(payload);
        record
    }

    fn replay(dir: &Path) -> (Segments, Vec<(u64, Vec<u8>)>) {
        let mut seen = Vec::new();
        let lock = DirLock::acquire(dir).unwrap().expect("not locked");
        let segments = Segments::open(dir, lock, 64, |segment, _, bytes| {
            seen.push((segment.seq(), bytes[HEADER..].to_vec()));
            Ok::<_, io::Error>(())
        })
        .unwrap();
        (segments, seen)
    }

    #[test]
    fn records_survive_reopening_and_writing_resumes_in_a_new_segment() {
        let dir = tempfile::tempdir().unwrap();
        let (mut segments, seen) = replay(dir.path());
        assert!(seen.is_empty());
        assert_eq!(segments.current().seq(), 1);
        let (segment, offset) = segments.append(&mut record(b"one")).unwrap();
        assert_eq!(segment.read(offset + HEADER as u64, 3).unwrap(), b"one");
        assert!(!segments.is_full_for(10));
        assert!(segments.is_full_for(100));
        segments.rotate().unwrap();
        segments.append(&mut record(b"two")).unwrap();
        segments.append(&mut record(b"")).unwrap();
        segments.sync().unwrap();
        drop(segments);

        let (segments, seen) = replay(dir.path());
        let expected = vec![(1, b"one".to_vec()), (2, b"two".to_vec()), (2, Vec::new())];
        assert_eq!(seen, expected);
        assert_eq!(
            segments.current().seq(),
            4,
            "segment 3 was prepared, never used"
        );
        assert_eq!(segments.count(), 4);
    }

    #[test]
    fn a_torn_record_ends_its_segment_and_a_gap_drops_what_precedes_it() {
        let dir = tempfile::tempdir().unwrap();
        let (mut segments, _) = replay(dir.path());
        segments.append(&mut record(b"kept")).unwrap();
        let (segment, offset) = segments.append(&mut record(b"torn")).unwrap();
        segments.append(&mut record(b"after")).unwrap();
        segment.file.write_all_at(b"X", offset + 9).unwrap();
        segments.rotate().unwrap();
        segments.rotate().unwrap();
        segments.append(&mut record(b"three")).unwrap();
        drop(segments);
        let (_, seen) = replay(dir.path());
        assert_eq!(seen, vec![(1, b"kept".to_vec()), (3, b"three".to_vec())]);

        // Segment 2 goes missing (its deletion survived a crash, segment 1's did not).
        fs::remove_file(segment_path(dir.path(), 2)).unwrap();
        let (segments, seen) = replay(dir.path());
        assert_eq!(seen, vec![(3, b"three".to_vec())]);
        assert!(!segment_path(dir.path(), 1).exists());
        let older: Vec<u64> = segments.older().map(|s| s.seq()).collect();
        assert_eq!(older, [3, 4, 5, 6]);
    }

    #[test]
    fn a_directory_opens_once_at_a_time() {
        let dir = tempfile::tempdir().unwrap();
        let (segments, _) = replay(dir.path());
        assert!(DirLock::acquire(dir.path()).unwrap().is_none());
        drop(segments);
        assert!(DirLock::acquire(dir.path()).unwrap().is_some());
    }
}
