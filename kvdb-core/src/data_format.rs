//! The stamp in every data directory: which kind of server owns it and in which on-disk format
//! its files are written.
//!
//! A server claims its directory before it opens any database in it ([`claim`]). A directory
//! written by a newer KvDB (a format this build does not know), by the other kind of server, or
//! with a stamp that cannot be read is refused with an error that says so, and nothing in it is
//! touched: an upgrade or a mistyped `--data` must never half-convert or overwrite data. A new
//! directory is stamped with the current format; a directory from before stamps existed holds
//! format 1 and is stamped as such.
//!
//! When a format changes, its number goes up here, and the server that reads the old number
//! converts or refuses it explicitly in [`decide`]; a rolling upgrade is drilled the same way.

use std::io::Write;
use std::path::{Path, PathBuf};

/// The stamp's file name inside a data directory.
pub const FORMAT_FILE: &str = "KVDB_FORMAT";

/// The kind of server a data directory belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DirKind {
    /// A storage node: its Raft logs and shard data.
    Node,
    /// A coordinator member: the metadata group's log and state.
    Coordinator,
}

impl DirKind {
    /// The on-disk format this build writes and reads for this kind.
    pub const fn current(self) -> u32 {
        match self {
            // 2: records carry a value kind (strings, hashes) in their expiry word.
            // 3: the Raft log is in segment files beside `raft-log.redb`, not in its tables.
            // 4: a large hash keeps its fields in member rows, under a key row of kind 2.
            DirKind::Node => 4,
            // 2: the Raft log is in segment files, as for nodes.
            DirKind::Coordinator => 2,
        }
    }

    /// The oldest format this build reads, restamping it as [`current`](Self::current) on
    /// its first claim. Node format 1 is format 2 holding strings only: its records read
    /// unchanged. A Raft log kept in the database's tables (node formats 1 and 2, coordinator
    /// format 1) is moved into segment files when the log is first opened, which also happens
    /// again after a crash mid-way. Either way the restamp keeps an older build, which would
    /// misread a hash or find no log at all, from opening the directory again.
    pub const fn oldest_readable(self) -> u32 {
        match self {
            DirKind::Node => 1,
            DirKind::Coordinator => 1,
        }
    }

    fn name(self) -> &'static str {
        match self {
            DirKind::Node => "node",
            DirKind::Coordinator => "coordinator",
        }
    }

    fn parse(name: &str) -> Option<DirKind> {
        match name {
            "node" => Some(DirKind::Node),
            "coordinator" => Some(DirKind::Coordinator),
            _ => None,
        }
    }
}

impl std::fmt::Display for DirKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// What a stamp says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stamp {
    /// Who owns the directory.
    pub kind: DirKind,
    /// The format of its files.
    pub version: u32,
}

impl Stamp {
    /// The stamp's file contents.
    pub fn render(&self) -> String {
        format!("kvdb {} format {}\n", self.kind, self.version)
    }

    /// Reads a stamp's file contents; `None` when they are not a stamp.
    pub fn parse(text: &str) -> Option<Stamp> {
        let mut words = text.split_whitespace();
        let (Some("kvdb"), Some(kind), Some("format"), Some(version), None) = (
            words.next(),
            words.next(),
            words.next(),
            words.next(),
            words.next(),
        ) else {
            return None;
        };
        Some(Stamp {
            kind: DirKind::parse(kind)?,
            version: version.parse().ok()?,
        })
    }
}

/// Why a server may not use a data directory.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FormatError {
    /// Written by a KvDB that knows a newer format.
    #[error(
        "data directory {dir} holds {kind} format {found}, newer than this build reads \
         ({supported}); run the KvDB version that wrote it"
    )]
    TooNew {
        /// The directory.
        dir: PathBuf,
        /// Its owner.
        kind: DirKind,
        /// The format it holds.
        found: u32,
        /// The newest this build reads.
        supported: u32,
    },
    /// Written in a format this build no longer reads.
    #[error(
        "data directory {dir} holds {kind} format {found}, older than this build reads \
         ({supported}); upgrade through a KvDB version that converts it"
    )]
    TooOld {
        /// The directory.
        dir: PathBuf,
        /// Its owner.
        kind: DirKind,
        /// The format it holds.
        found: u32,
        /// The oldest this build reads.
        supported: u32,
    },
    /// Owned by the other kind of server.
    #[error("data directory {dir} belongs to a {found}, not a {expected}: check --data")]
    WrongKind {
        /// The directory.
        dir: PathBuf,
        /// Its owner.
        found: DirKind,
        /// Who tried to open it.
        expected: DirKind,
    },
    /// The stamp file is not a stamp.
    #[error("{path} is not a KvDB format stamp (expected a line like {example:?})")]
    Unreadable {
        /// The stamp file.
        path: PathBuf,
        /// What a stamp looks like.
        example: String,
    },
    /// The directory or its stamp could not be read or written.
    #[error("{what} {path}: {source}")]
    Io {
        /// What was being done.
        what: &'static str,
        /// The file or directory.
        path: PathBuf,
        /// The failure.
        #[source]
        source: std::io::Error,
    },
}

/// What [`claim`] does with a directory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Claim {
    /// Stamped already with the current format: use it as it is.
    Use,
    /// No stamp (a new directory, or one from before stamps), or an older format this build
    /// reads as it is: write the current one.
    Stamp,
}

/// Whether a server of `kind` may use a directory whose stamp file holds `stamp` (`None`: no
/// stamp file); `dir` only names it in errors.
pub fn decide(dir: &Path, kind: DirKind, stamp: Option<&str>) -> Result<Claim, FormatError> {
    let Some(text) = stamp else {
        return Ok(Claim::Stamp);
    };
    let current = Stamp {
        kind,
        version: kind.current(),
    };
    let found = Stamp::parse(text).ok_or_else(|| FormatError::Unreadable {
        path: dir.join(FORMAT_FILE),
        example: current.render().trim_end().to_owned(),
    })?;
    if found.kind != kind {
        return Err(FormatError::WrongKind {
            dir: dir.to_owned(),
            found: found.kind,
            expected: kind,
        });
    }
    match found.version.cmp(&current.version) {
        std::cmp::Ordering::Equal => Ok(Claim::Use),
        std::cmp::Ordering::Greater => Err(FormatError::TooNew {
            dir: dir.to_owned(),
            kind,
            found: found.version,
            supported: current.version,
        }),
        std::cmp::Ordering::Less if found.version >= kind.oldest_readable() => Ok(Claim::Stamp),
        std::cmp::Ordering::Less => Err(FormatError::TooOld {
            dir: dir.to_owned(),
            kind,
            found: found.version,
            supported: kind.oldest_readable(),
        }),
    }
}

/// Creates `dir` if needed and checks or writes its stamp for a server of `kind`; call it
/// before opening anything in the directory. Blocking.
pub fn claim(dir: &Path, kind: DirKind) -> Result<(), FormatError> {
    let io = |what, path: &Path| {
        let path = path.to_owned();
        move |source| FormatError::Io { what, path, source }
    };
    std::fs::create_dir_all(dir).map_err(io("create data directory", dir))?;
    let path = dir.join(FORMAT_FILE);
    let stamp = match std::fs::read_to_string(&path) {
        Ok(text) => Some(text),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => return Err(io("read", &path)(e)),
    };
    if decide(dir, kind, stamp.as_deref())? == Claim::Use {
        return Ok(());
    }
    // Written whole or not at all: a crash mid-write must not leave a torn stamp.
    let text = Stamp {
        kind,
        version: kind.current(),
    }
    .render();
    let partial = dir.join(format!("{FORMAT_FILE}.new"));
    let mut file = std::fs::File::create(&partial).map_err(io("create", &partial))?;
    file.write_all(text.as_bytes())
        .and_then(|()| file.sync_all())
        .map_err(io("write", &partial))?;
    std::fs::rename(&partial, &path).map_err(io("rename into place", &path))?;
    if let Ok(handle) = std::fs::File::open(dir) {
        // Makes the rename durable; not every platform can sync a directory.
        let _ = handle.sync_all();
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dir() -> &'static Path {
        Path::new("/data/kvdb")
    }

    #[test]
    fn a_stamp_reads_back_as_written() {
        for kind in [DirKind::Node, DirKind::Coordinator] {
            let stamp = Stamp { kind, version: 7 };
            assert_eq!(Stamp::parse(&stamp.render()), Some(stamp));
        }
        assert_eq!(Stamp::parse("kvdb node format"), None);
        assert_eq!(Stamp::parse("kvdb gateway format 1"), None);
        assert_eq!(Stamp::parse("kvdb node format 1 extra"), None);
        assert_eq!(Stamp::parse("kvdb node format -1"), None);
    }

    #[test]
    fn an_unstamped_directory_is_stamped_and_a_current_one_used() {
        assert_eq!(decide(dir(), DirKind::Node, None).unwrap(), Claim::Stamp);
        let current = Stamp {
            kind: DirKind::Node,
            version: DirKind::Node.current(),
        }
        .render();
        assert_eq!(
            decide(dir(), DirKind::Node, Some(&current)).unwrap(),
            Claim::Use
        );
    }

    #[test]
    fn newer_older_foreign_and_garbled_stamps_are_refused() {
        let newer = decide(dir(), DirKind::Node, Some("kvdb node format 99\n")).unwrap_err();
        assert!(
            matches!(newer, FormatError::TooNew { found: 99, .. }),
            "{newer}"
        );
        assert!(newer.to_string().contains("format 99"), "{newer}");
        let older = decide(dir(), DirKind::Node, Some("kvdb node format 0\n")).unwrap_err();
        assert!(
            matches!(older, FormatError::TooOld { found: 0, .. }),
            "{older}"
        );
        let foreign = decide(dir(), DirKind::Node, Some("kvdb coordinator format 1\n"));
        assert!(
            matches!(
                foreign,
                Err(FormatError::WrongKind {
                    found: DirKind::Coordinator,
                    expected: DirKind::Node,
                    ..
                })
            ),
            "{foreign:?}"
        );
        let garbled = decide(dir(), DirKind::Coordinator, Some("\u{0}\u{1}")).unwrap_err();
        assert!(
            matches!(garbled, FormatError::Unreadable { .. }),
            "{garbled}"
        );
    }

    #[test]
    fn a_node_directory_of_format_1_is_read_and_restamped() {
        let root = tempfile::tempdir().unwrap();
        std::fs::write(root.path().join(FORMAT_FILE), "kvdb node format 1\n").unwrap();
        claim(root.path(), DirKind::Node).unwrap();
        let written = std::fs::read_to_string(root.path().join(FORMAT_FILE)).unwrap();
        assert_eq!(written, "kvdb node format 4\n");
    }

    #[test]
    fn claim_stamps_a_new_directory_and_refuses_a_newer_one_untouched() {
        let root = tempfile::tempdir().unwrap();
        let new = root.path().join("new");
        claim(&new, DirKind::Node).unwrap();
        let written = std::fs::read_to_string(new.join(FORMAT_FILE)).unwrap();
        assert_eq!(written, "kvdb node format 4\n");
        claim(&new, DirKind::Node).unwrap();
        assert!(matches!(
            claim(&new, DirKind::Coordinator),
            Err(FormatError::WrongKind { .. })
        ));

        let newer = root.path().join("newer");
        std::fs::create_dir(&newer).unwrap();
        let stamp = format!("kvdb node format {}\n", DirKind::Node.current() + 1);
        std::fs::write(newer.join(FORMAT_FILE), stamp).unwrap();
        assert!(matches!(
            claim(&newer, DirKind::Node),
            Err(FormatError::TooNew { .. })
        ));
        let left: Vec<_> = std::fs::read_dir(&newer).unwrap().collect();
        assert_eq!(left.len(), 1, "a refused directory is left as it was");
    }
}
