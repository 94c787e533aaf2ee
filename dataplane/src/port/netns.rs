//! Network namespaces: enter one on the current thread, or run a closure in one.
//!
//! A socket stays in the namespace it was created in, so a port opened inside a
//! namespace may then be used from any thread. Only this thread's namespace changes
//! (`setns(CLONE_NEWNET)`), which is why [`run_in`] uses a fresh thread.

// Port I/O module: `setns` is a raw syscall on a file descriptor we own.
#![allow(unsafe_code)]

use std::io;
use std::os::fd::AsRawFd;
use std::path::Path;

/// Move the calling thread into the network namespace at `path`
/// (e.g. `/run/netns/NAME` as made by `ip netns add`, or `/proc/PID/ns/net`).
pub fn enter(path: &Path) -> io::Result<()> {
    let f = std::fs::File::open(path)?;
    // SAFETY: `f` is an open namespace file for the duration of the call.
    let r = unsafe { libc::setns(f.as_raw_fd(), libc::CLONE_NEWNET) };
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

/// Run `f` on a new thread inside the named namespace (`/run/netns/<name>`) and return
/// its result.
pub fn run_in<T: Send + 'static>(
    name: &str,
    f: impl FnOnce() -> T + Send + 'static,
) -> io::Result<T> {
    let path = Path::new("/run/netns").join(name);
    std::thread::spawn(move || -> io::Result<T> {
        enter(&path)?;
        Ok(f())
    })
    .join()
    .map_err(|_| io::Error::other("thread in netns panicked"))?
}
