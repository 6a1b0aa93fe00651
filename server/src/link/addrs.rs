//! Where the server's links are: no link may be pointed at a link.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

/// Every link's listen and upstream address on this server, so that no link can be
/// pointed at a link (its own listen address, or another's): a datagram would go round
/// for ever. Forbidding a link as a target forbids every cycle: the last link of a
/// cycle to be created would target one that exists.
#[derive(Debug, Default)]
pub struct LinkAddrs(Mutex<HashSet<SocketAddr>>);

impl LinkAddrs {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashSet<SocketAddr>> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Whether sending to `to` reaches a link's socket (a socket bound to the
    /// unspecified address receives on every address of its port).
    pub fn reaches_a_link(&self, to: SocketAddr) -> bool {
        self.lock()
            .iter()
            .any(|&a| socklab_analysis::routes::reaches(a, to))
    }

    pub(super) fn add(self: &Arc<Self>, addrs: [SocketAddr; 2]) -> Registered {
        self.lock().extend(addrs);
        Registered {
            all: self.clone(),
            addrs,
        }
    }
}

/// A link's two addresses in [`LinkAddrs`], until it is dropped.
#[derive(Debug)]
pub(super) struct Registered {
    all: Arc<LinkAddrs>,
    addrs: [SocketAddr; 2],
}

impl Drop for Registered {
    fn drop(&mut self) {
        let mut all = self.all.lock();
        for a in &self.addrs {
            all.remove(a);
        }
    }
}
