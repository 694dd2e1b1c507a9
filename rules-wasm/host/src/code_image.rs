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

/// A private anonymous mapping holding one precompiled artifact, unmapped on drop. Whoever
/// runs code from it must be gone first (see `LoadedModule`, which drops its module before
/// its image).
pub(crate) struct CodeImage {
    ptr: NonNull<u8>,
    mapped: usize,
    len: usize,
}

// SAFETY: the image is plain memory that nothing writes after `copy_of`; wasmtime shares the
// code in it between threads the same way it shares its own mappings.
unsafe impl Send for CodeImage {}
// SAFETY: as above, read-only after construction.
unsafe impl Sync for CodeImage {}

impl CodeImage {
    /// A copy of `bytes` in freshly mapped, already populated pages.
    pub(crate) fn copy_of(bytes: &[u8]) -> std::io::Result<CodeImage> {
        let page = page_size();
        let mapped = bytes.len().max(1).div_ceil(page) * page;
        // SAFETY: a new private anonymous mapping; no existing memory is touched.
        let ptr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                mapped,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_POPULATE,
                -1,
                0,
            )
        };
        if ptr == libc::MAP_FAILED {
            return Err(std::io::Error::last_os_error());
        }
        let ptr = NonNull::new(ptr.cast::<u8>()).ok_or_else(std::io::Error::last_os_error)?;
        // SAFETY: the mapping is `mapped >= bytes.len()` bytes, writable, and new, so it does
        // not overlap `bytes`.
        unsafe { std::ptr::copy_nonoverlapping(bytes.as_ptr(), ptr.as_ptr(), bytes.len()) };
        let image = CodeImage {
            ptr,
            mapped,
            len: bytes.len(),
        };
        // Read-only from here on, as wasmtime makes its own images: only the code section is
        // then switched to read+execute when the module is published.
        // SAFETY: the whole mapping is ours and nothing refers to it yet.
        if unsafe { libc::mprotect(ptr.as_ptr().cast(), mapped, libc::PROT_READ) } != 0 {
            return Err(std::io::Error::last_os_error());
        }
        Ok(image)
    }

    /// The artifact's bytes, for `Module::deserialize_raw`.
    pub(crate) fn bytes(&self) -> NonNull<[u8]> {
        NonNull::slice_from_raw_parts(self.ptr, self.len)
    }
}

impl Drop for CodeImage {
    fn drop(&mut self) {
        // SAFETY: the mapping is ours (`copy_of`), and no code runs from it any more: its
        // module was dropped before it.
        unsafe { libc::munmap(self.ptr.as_ptr().cast(), self.mapped) };
    }
}

fn page_size() -> usize {
    // SAFETY: sysconf only reads a system constant.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    usize::try_from(page).unwrap_or(4096).max(4096)
}
