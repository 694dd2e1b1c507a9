//! Precompiled modules kept in files, so that a new backend loads a module without reading its
//! megabyte of native code out of TOAST (about 5 ms for the retention module, against well
//! under one to read a file out of the page cache).
//!
//! A file is a header (magic, the artifact's length, its [`checksum`]), zeros up to 64 KiB, and
//! the artifact, which thus starts on a page boundary and is mapped straight from the page
//! cache. It is written to a temporary name, flushed and renamed, so a reader finds a whole
//! file or none, and an existing file is never changed in place; the checksum catches a file
//! damaged since.

use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use crate::code_image::CodeImage;

const MAGIC: &[u8; 8] = b"PGERCW01";
const HEADER_LEN: usize = 24;
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

/// Writes `artifact` to `path` whole or not at all: a temporary file in the same directory,
/// flushed to disk, then renamed over `path`.
pub fn write(path: &Path, artifact: &[u8]) -> std::io::Result<()> {
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
        header[16..HEADER_LEN].copy_from_slice(&checksum(artifact).to_le_bytes());
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

/// The artifact in `path`, in memory code can run from, when the file is whole (its size is
/// the header's and the artifact's length) and the artifact matches its checksum.
pub(crate) fn read(path: &Path, placement: Placement) -> Result<CodeImage, String> {
    let fail = |what: &str, e: &dyn std::fmt::Display| format!("{}: {what}: {e}", path.display());
    let mut file = File::open(path).map_err(|e| fail("cannot open", &e))?;
    let mut header = [0u8; HEADER_LEN];
    file.read_exact(&mut header)
        .map_err(|e| fail("no header", &e))?;
    let field = |at: usize| u64::from_le_bytes(header[at..at + 8].try_into().expect("8 bytes"));
    let (len, sum) = (field(8), field(16));
    let file_len = file.metadata().map_err(|e| fail("cannot stat", &e))?.len();
    if &header[..8] != MAGIC || Some(file_len) != len.checked_add(ARTIFACT_OFFSET as u64) {
        return Err(fail(
            "not a whole artifact file",
            &format!("{file_len} bytes, the header says {len} after it"),
        ));
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
    Ok(image)
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
        write(&path, &artifact).unwrap();
        for placement in [Placement::Mapped, Placement::Copied] {
            let image = read(&path, placement).unwrap();
            assert_eq!(image.as_slice(), &artifact[..]);
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
        for at in [0, 9, 17, first, first + 4096, whole.len() - 1] {
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
