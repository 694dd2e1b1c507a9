//! Memory for a precompiled module's native code, made ready in bulk.
//!
//! `Module::deserialize` copies the artifact into a fresh anonymous mapping, and every 4 KiB
//! page of it is then faulted in, zeroed and written one fault at a time: for the retention
//! module (about 1.1 MB) that was most of a backend's module load. Here the mapping's pages
//! are populated in the `mmap` call itself (`MAP_POPULATE`), the artifact is copied in, and
//! wasmtime runs the module from that memory (`Module::deserialize_raw`), making its code
//! executable through [`PageProtection`].

use std::ptr::NonNull;
use std::sync::Arc;

use wasmtime::CustomCodeMemory;

/// The page protection changes wasmtime asks for when it publishes (or retires) native code:
/// the engine's [`CustomCodeMemory`]. Code is never writable and executable at once.
pub(crate) struct PageProtection {
    page: usize,
}

impl PageProtection {
    pub(crate) fn new() -> Arc<PageProtection> {
        Arc::new(PageProtection { page: page_size() })
    }

    fn protect(&self, ptr: *const u8, len: usize, prot: libc::c_int) -> wasmtime::Result<()> {
        if len == 0 {
            return Ok(());
        }
        // SAFETY: wasmtime passes a page-aligned range (`required_alignment`) inside code
        // memory it owns or was given (a `CodeImage`), which stays mapped while it is in use.
        let rc = unsafe { libc::mprotect(ptr as *mut libc::c_void, len, prot) };
        if rc != 0 {
            let err = std::io::Error::last_os_error();
            return Err(wasmtime::Error::msg(format!(
                "changing the protection of module code failed: {err}"
            )));
        }
        Ok(())
    }
}

impl CustomCodeMemory for PageProtection {
    fn required_alignment(&self) -> usize {
        self.page
    }

    fn publish_executable(&self, ptr: *const u8, len: usize) -> wasmtime::Result<()> {
        self.protect(ptr, len, libc::PROT_READ | libc::PROT_EXEC)
    }

    fn unpublish_executable(&self, ptr: *const u8, len: usize) -> wasmtime::Result<()> {
        self.protect(ptr, len, libc::PROT_READ | libc::PROT_WRITE)
    }
}

/// A private mapping holding one precompiled artifact (anonymous, or of its file), unmapped on
/// drop. Whoever runs code from it must be gone first (see `LoadedModule`, which drops its
/// module before its image).
pub(crate) struct CodeImage {
    ptr: NonNull<u8>,
    mapped: usize,
    len: usize,
}

// SAFETY: the image is plain memory that nothing writes after it is sealed; wasmtime shares the
// code in it between threads the same way it shares its own mappings.
unsafe impl Send for CodeImage {}
// SAFETY: as above, read-only once sealed.
unsafe impl Sync for CodeImage {}

impl CodeImage {
    /// A copy of `bytes` in freshly mapped, already populated pages.
    pub(crate) fn copy_of(bytes: &[u8]) -> std::io::Result<CodeImage> {
        CodeImage::filled(bytes.len(), |image| {
            image.copy_from_slice(bytes);
            Ok(())
        })
    }

    /// `len` bytes of `file` from `offset`, read straight into freshly mapped, already
    /// populated pages (one copy, out of the page cache).
    pub(crate) fn read_from(
        file: &std::fs::File,
        offset: u64,
        len: usize,
    ) -> std::io::Result<CodeImage> {
        use std::os::unix::fs::FileExt;
        CodeImage::filled(len, |image| file.read_exact_at(image, offset))
    }

    /// `len` bytes in freshly mapped, already populated pages, written by `fill`, then sealed.
    fn filled(
        len: usize,
        fill: impl FnOnce(&mut [u8]) -> std::io::Result<()>,
    ) -> std::io::Result<CodeImage> {
        let mut image = CodeImage::populated(len)?;
        fill(image.writable())?;
        image.seal()?;
        Ok(image)
    }

    /// `len` bytes of `file` from `offset` (a multiple of the page size), mapped privately
    /// and read-only, its pages populated in the `mmap` call: the page cache's own pages, with
    /// no copy and no zeroing. Whoever writes the file must replace it (a new file renamed over
    /// it), never change it in place, for the mapping to keep the bytes read.
    pub(crate) fn map_file(
        file: &std::fs::File,
        offset: u64,
        len: usize,
    ) -> std::io::Result<CodeImage> {
        use std::os::fd::AsRawFd;
        let offset = libc::off_t::try_from(offset)
            .map_err(|_| std::io::Error::from(std::io::ErrorKind::InvalidInput))?;
        // Pages past the end of the file would fault on access: the caller checked its length.
        CodeImage::mapped(len, libc::PROT_READ, 0, file.as_raw_fd(), offset)
    }

    /// A new private anonymous mapping of at least `len` bytes, its pages populated in the
    /// `mmap` call.
    fn populated(len: usize) -> std::io::Result<CodeImage> {
        let prot = libc::PROT_READ | libc::PROT_WRITE;
        CodeImage::mapped(len, prot, libc::MAP_ANONYMOUS, -1, 0)
    }

    /// A new private mapping of `len` bytes (rounded up to whole pages), populated in the
    /// `mmap` call: anonymous, or of the open file `fd` from `offset`.
    fn mapped(
        len: usize,
        prot: libc::c_int,
        flags: libc::c_int,
        fd: libc::c_int,
        offset: libc::off_t,
    ) -> std::io::Result<CodeImage> {
        let page = page_size();
        let mapped = len.max(1).div_ceil(page) * page;
        // SAFETY: a new private mapping (of nothing, or of an open file); no existing memory
        // is touched.
        let ptr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                mapped,
                prot,
                libc::MAP_PRIVATE | libc::MAP_POPULATE | flags,
                fd,
                offset,
            )
        };
        if ptr == libc::MAP_FAILED {
            return Err(std::io::Error::last_os_error());
        }
        let ptr = NonNull::new(ptr.cast::<u8>()).ok_or_else(std::io::Error::last_os_error)?;
        Ok(CodeImage { ptr, mapped, len })
    }

    /// The image's bytes, to fill before [`seal`](Self::seal).
    fn writable(&mut self) -> &mut [u8] {
        // SAFETY: the mapping is `mapped >= len` bytes, readable and writable until `seal`,
        // and only this image refers to it (`&mut self`).
        unsafe { std::slice::from_raw_parts_mut(self.ptr.as_ptr(), self.len) }
    }

    /// Read-only from here on, as wasmtime makes its own images: only the code section is
    /// then switched to read+execute when the module is published.
    fn seal(&self) -> std::io::Result<()> {
        // SAFETY: the whole mapping is ours and nothing else refers to it yet.
        if unsafe { libc::mprotect(self.ptr.as_ptr().cast(), self.mapped, libc::PROT_READ) } != 0 {
            return Err(std::io::Error::last_os_error());
        }
        Ok(())
    }

    /// The artifact's bytes, for `Module::deserialize_raw`.
    pub(crate) fn bytes(&self) -> NonNull<[u8]> {
        NonNull::slice_from_raw_parts(self.ptr, self.len)
    }

    /// The artifact's bytes, to check them before use.
    pub(crate) fn as_slice(&self) -> &[u8] {
        // SAFETY: `len` readable bytes, never written after `seal`.
        unsafe { std::slice::from_raw_parts(self.ptr.as_ptr(), self.len) }
    }
}

impl Drop for CodeImage {
    fn drop(&mut self) {
        // SAFETY: the mapping is ours (`mapped`, anonymous or of a file), and no code runs
        // from it any more: its module was dropped before it.
        unsafe { libc::munmap(self.ptr.as_ptr().cast(), self.mapped) };
    }
}

fn page_size() -> usize {
    // SAFETY: sysconf only reads a system constant.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    usize::try_from(page).unwrap_or(4096).max(4096)
}
