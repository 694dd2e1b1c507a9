//! Precompiled modules kept in files, so that a new backend loads a module without reading its
//! megabyte of native code out of TOAST (about 5 ms for the retention module, against well
//! under one to read a file out of the page cache).
//!
//! A file is a header (magic, the artifact's length and [`checksum`], a note's length and
//! checksum), the note, zeros up to 64 KiB, and the artifact, which thus starts on a page
//! boundary and is mapped straight from the page cache. The note is the caller's: what else a
//! backend needs of the installation, so that it need not ask the database. It is written to a
//! temporary name, flushed and renamed, so a reader finds a whole file or none, and an existing
//! file is never changed in place; the checksums catch a file damaged since.

use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use crate::code_image::CodeImage;

/// `02`: the header has a note (`01` files, without one, are refused and written again).
const MAGIC: &[u8; 8] = b"PGERCW02";
const HEADER_LEN: usize = 40;
/// Where the artifact starts: a multiple of every page size Linux uses.
const ARTIFACT_OFFSET: usize = 64 << 10;

/// A checksum against accidental damage, not a proof of origin (whoever can write the file can
/// write the database's own files too). Four lanes of xor-multiply-rotate over 8-byte words:
/// each step is a bijection of the word and of the lane, so a change within one word always
/// changes the result.
pub fn checksum(bytes: &[u8]) -> u64 {
    const K: u64 = 0x9E37_79B9_7F4A_7C15;
    let step = |lane: u64, word: u64| (lane ^ word).wrapping_mul(K).rotate_left(29);
    let word = |w: &[u8]| u64::from_le_bytes(w.try_into().expect("8 bytes"));
    let mut lanes = [1u64, 2, 3, 4];
    let mut blocks = bytes.chunks_exact(32);
    for block in &mut blocks {
        for (lane, w) in lanes.iter_mut().zip(block.chunks_exact(8)) {
            *lane = step(*lane, word(w));
        }
    }
    let mut tail = [0u8; 32];
    tail[..blocks.remainder().len()].copy_from_slice(blocks.remainder());
    for (lane, w) in lanes.iter_mut().zip(tail.chunks_exact(8)) {
        *lane = step(*lane, word(w));
    }
    lanes
        .iter()
        .fold(bytes.len() as u64, |h, lane| step(h, *lane))
}

/// The longest note a file keeps: what fits between the header and the artifact.
pub const NOTE_MAX: usize = ARTIFACT_OFFSET - HEADER_LEN;

/// Writes `artifact` and `note` to `path` whole or not at all: a temporary file in the same
/// directory, flushed to disk, then renamed over `path`. A note longer than [`NOTE_MAX`] is
/// not kept (the file's note is empty then).
pub fn write(path: &Path, artifact: &[u8], note: &[u8]) -> std::io::Result<()> {
    let note = if note.len() <= NOTE_MAX { note } else { &[] };
    let mut name = path.as_os_str().to_owned();
    name.push(format!(".tmp{}", std::process::id()));
    let tmp = std::path::PathBuf::from(name);
    let written = (|| {
        // A leftover of a crashed process that had the same pid.
        let _ = std::fs::remove_file(&tmp);
        let mut file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)?;
        let mut header = vec![0u8; ARTIFACT_OFFSET];
        header[..8].copy_from_slice(MAGIC);
        header[8..16].copy_from_slice(&(artifact.len() as u64).to_le_bytes());
        header[16..24].copy_from_slice(&checksum(artifact).to_le_bytes());
        header[24..32].copy_from_slice(&(note.len() as u64).to_le_bytes());
        header[32..HEADER_LEN].copy_from_slice(&checksum(note).to_le_bytes());
        header[HEADER_LEN..HEADER_LEN + note.len()].copy_from_slice(note);
        file.write_all(&header)?;
        file.write_all(artifact)?;
        file.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    if written.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    written
}

/// How [`read`] brings the artifact into memory.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Placement {
    /// Mapped from the file (the page cache's pages); its code runs only where the file
    /// system allows executing mapped files.
    Mapped,
    /// Copied into anonymous memory.
    Copied,
}

/// The artifact in `path`, in memory code can run from, and the file's note, when the file
/// is whole (its size is the header's and the artifact's length) and both match their
/// checksums.
pub(crate) fn read(path: &Path, placement: Placement) -> Result<(CodeImage, Vec<u8>), String> {
    let fail = |what: &str, e: &dyn std::fmt::Display| format!("{}: {what}: {e}", path.display());
    let mut file = File::open(path).map_err(|e| fail("cannot open", &e))?;
    let mut header = [0u8; HEADER_LEN];
    file.read_exact(&mut header)
        .map_err(|e| fail("no header", &e))?;
    let field = |at: usize| u64::from_le_bytes(header[at..at + 8].try_into().expect("8 bytes"));
    let (len, sum, note_len, note_sum) = (field(8), field(16), field(24), field(32));
    let file_len = file.metadata().map_err(|e| fail("cannot stat", &e))?.len();
    if &header[..8] != MAGIC
        || Some(file_len) != len.checked_add(ARTIFACT_OFFSET as u64)
        || note_len > NOTE_MAX as u64
    {
        return Err(fail(
            "not a whole artifact file",
            &format!("{file_len} bytes, the header says {len} after it"),
        ));
    }
    let mut note = vec![0u8; note_len as usize];
    file.read_exact(&mut note)
        .map_err(|e| fail("no note", &e))?;
    if checksum(&note) != note_sum {
        return Err(fail("damaged", &"its note's checksum does not match"));
    }
    let len = usize::try_from(len).map_err(|e| fail("too large", &e))?;
    let offset = ARTIFACT_OFFSET as u64;
    let image = match placement {
        Placement::Mapped => CodeImage::map_file(&file, offset, len),
        Placement::Copied => CodeImage::read_from(&file, offset, len),
    }
    .map_err(|e| fail("cannot read", &e))?;
    if checksum(image.as_slice()) != sum {
        return Err(fail("damaged", &"its checksum does not match"));
    }
    Ok((image, note))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp_dir() -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!(
            "erasure-artifact-{}-{:?}",
            std::process::id(),
            std::thread::current().id()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn a_written_file_reads_back_and_any_damage_is_refused() {
        let dir = temp_dir();
        let path = dir.join("a.cwasm");
        let artifact: Vec<u8> = (0..70_001u32).map(|i| (i * 7 + i / 251) as u8).collect();
        let note = b"{\"slot\": \"retention\"}";
        write(&path, &artifact, note).unwrap();
        for placement in [Placement::Mapped, Placement::Copied] {
            let (image, read_note) = read(&path, placement).unwrap();
            assert_eq!(image.as_slice(), &artifact[..]);
            assert_eq!(read_note, note);
        }
        // No temporary file is left behind.
        assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 1);
        let whole = std::fs::read(&path).unwrap();
        // One changed byte anywhere (header or artifact), a truncated file, a longer one.
        let refused = |path: &Path| {
            [Placement::Mapped, Placement::Copied]
                .iter()
                .all(|p| read(path, *p).is_err())
        };
        let first = ARTIFACT_OFFSET;
        let in_note = HEADER_LEN + 3;
        for at in [
            0,
            9,
            17,
            25,
            33,
            in_note,
            first,
            first + 4096,
            whole.len() - 1,
        ] {
            let mut damaged = whole.clone();
            damaged[at] ^= 0x10;
            std::fs::write(&path, &damaged).unwrap();
            assert!(refused(&path), "byte {at}");
        }
        std::fs::write(&path, &whole[..whole.len() - 1]).unwrap();
        assert!(refused(&path));
        std::fs::write(&path, [&whole[..], b"x"].concat()).unwrap();
        assert!(refused(&path));
        assert!(refused(&dir.join("missing.cwasm")));
        // A file of the format before notes is refused, to be written again.
        let mut old = whole.clone();
        old[..8].copy_from_slice(b"PGERCW01");
        std::fs::write(&path, &old).unwrap();
        assert!(refused(&path));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_note_too_long_is_not_kept_and_the_artifact_is() {
        let dir = temp_dir();
        let path = dir.join("long-note.cwasm");
        let artifact = vec![7u8; 5000];
        for (note, kept) in [
            (vec![1u8; NOTE_MAX], true),
            (vec![1u8; NOTE_MAX + 1], false),
        ] {
            write(&path, &artifact, &note).unwrap();
            let (image, read_note) = read(&path, Placement::Copied).unwrap();
            assert_eq!(image.as_slice(), &artifact[..]);
            assert_eq!(read_note, if kept { note } else { Vec::new() });
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn checksum_changes_with_any_word_and_with_length() {
        let base = vec![0u8; 100];
        let sum = checksum(&base);
        for at in 0..base.len() {
            let mut other = base.clone();
            other[at] = 1;
            assert_ne!(checksum(&other), sum, "byte {at}");
        }
        assert_ne!(checksum(&base[..99]), sum);
        assert_ne!(checksum(&[]), checksum(&[0]));
    }
}
