//! The server-wide limit on open sockets. Every socket a session opens takes a slot
//! (a link takes three: its two sockets and its timer's descriptor); the limit leaves enough of the process's open files for HTTP
//! connections and WebSockets, so that however many sockets the sessions open, the page
//! and new sessions are still served.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use socklab_protocol::ErrorCode;

use crate::error::CommandError;

/// Open files kept back for everything that is not a lab socket: the listener, HTTP
/// connections, WebSockets, the web app's files being served, /proc reads.
pub const RESERVED_FILES: usize = 128;

/// The most sockets all sessions may open, derived from the process's open-file limit
/// (`RLIMIT_NOFILE`): what is left after [`RESERVED_FILES`] and one file per viewer
/// the server may have (`viewers`), and at least 1.
pub fn default_max_sockets(viewers: usize) -> usize {
    let files = nix::sys::resource::getrlimit(nix::sys::resource::Resource::RLIMIT_NOFILE)
        .map(|(soft, _)| usize::try_from(soft).unwrap_or(usize::MAX))
        .unwrap_or(1024);
    from_file_limit(files, viewers)
}

fn from_file_limit(files: usize, viewers: usize) -> usize {
    files
        .saturating_sub(RESERVED_FILES)
        .saturating_sub(viewers)
        .max(1)
}

/// Raises the soft open-file limit to the hard one (the binary does this at start, as
/// servers commonly do: the default soft limit of 1024 is there for old programs).
pub fn raise_file_limit() {
    use nix::sys::resource::{Resource, getrlimit, setrlimit};
    if let Ok((soft, hard)) = getrlimit(Resource::RLIMIT_NOFILE)
        && soft < hard
        && let Err(e) = setrlimit(Resource::RLIMIT_NOFILE, hard, hard)
    {
        tracing::debug!(error = %e, "cannot raise the open-file limit");
    }
}

/// Slots for sockets, shared by every session.
#[derive(Debug)]
pub struct SocketSlots {
    max: usize,
    used: AtomicUsize,
}

impl SocketSlots {
    /// Room for `max` sockets.
    pub fn new(max: usize) -> Arc<Self> {
        Arc::new(SocketSlots {
            max,
            used: AtomicUsize::new(0),
        })
    }

    /// Sockets open now.
    pub fn used(&self) -> usize {
        self.used.load(Ordering::Relaxed)
    }

    /// Takes `n` slots until the returned guard is dropped, or refuses.
    pub fn take(self: &Arc<Self>, n: usize) -> Result<Slot, CommandError> {
        let taken = self
            .used
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |used| {
                used.checked_add(n).filter(|&total| total <= self.max)
            });
        match taken {
            Ok(_) => Ok(Slot {
                slots: self.clone(),
                n,
            }),
            Err(used) => Err(CommandError::new(
                ErrorCode::LimitExceeded,
                format!(
                    "the server already has {used} sockets open across all sessions, the most it allows (--max-sockets {}, from its open-file limit); close some, here or in another session",
                    self.max
                ),
            )),
        }
    }
}

/// Sockets counted in until dropped.
#[derive(Debug)]
pub struct Slot {
    slots: Arc<SocketSlots>,
    n: usize,
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.slots.used.fetch_sub(self.n, Ordering::AcqRel);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_are_counted_and_given_back() {
        let slots = SocketSlots::new(3);
        let a = slots.take(2).unwrap();
        let err = slots.take(2).unwrap_err();
        assert_eq!(err.code, ErrorCode::LimitExceeded);
        assert!(err.message.contains("--max-sockets 3"), "{}", err.message);
        let b = slots.take(1).unwrap();
        assert_eq!(slots.used(), 3);
        drop(a);
        drop(b);
        assert_eq!(slots.used(), 0);
        assert!(slots.take(usize::MAX).is_err(), "no overflow");
    }

    #[test]
    fn the_default_leaves_room_for_connections() {
        assert_eq!(from_file_limit(1024, 512), 384);
        assert_eq!(from_file_limit(100, 512), 1);
        assert_eq!(from_file_limit(1 << 20, 512), (1 << 20) - 640);
        assert!(default_max_sockets(0) >= 1);
    }
}
