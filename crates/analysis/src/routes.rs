//! The one routing rule: which flow a datagram belongs to when it passes a link.
//!
//! A person thinks of a link as a wire between a client and a target, so a flow is
//! (source, destination) as the application sees them, not the link's own addresses.
//! The server's relay decides who the client is (the last address that sent to the
//! listen address) and logs every change as `link_client`; this type follows those
//! events and never guesses. The flow analysis (server) and the timeline (page) both use
//! it, fed the same events in log order, so they agree by construction.
//!
//! In log order the rule is never ahead of the relay: a `link_client` is logged before
//! the `link_packet` of the datagram that made the change, which is before any lab
//! socket's `in` for it and before any reply a lab target could send.

use std::net::SocketAddr;

use socklab_protocol::Endpoint;
use socklab_protocol::link::LinkId;

/// One link's addresses, and its client as last reported.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Route {
    link: LinkId,
    listen: SocketAddr,
    upstream: SocketAddr,
    target: SocketAddr,
    client: Option<SocketAddr>,
}

/// The links of a session, as routes from application addresses to link addresses.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Routes {
    /// Live links, oldest first (a session has few). Their listen and upstream addresses
    /// are distinct: the server never lets two live links share one.
    routes: Vec<Route>,
}

/// Where a datagram goes or comes from as the application sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct End<'a> {
    /// The application's address: a link's target or client, or the peer itself when no
    /// link is in between (links carry IP datagrams only; a Unix peer is always itself).
    pub addr: Endpoint,
    /// The link the datagram crosses.
    pub via: Option<&'a LinkId>,
}

/// Whether a datagram addressed to `to` reaches a socket bound at `bound` (a socket
/// bound to the unspecified address receives on every address of its port, of its
/// family). The server's registry of link addresses asks the same question.
pub fn reaches(bound: SocketAddr, to: SocketAddr) -> bool {
    bound == to
        || (bound.ip().is_unspecified()
            && bound.port() == to.port()
            && bound.is_ipv4() == to.is_ipv4())
}

impl Routes {
    /// A link was created.
    pub fn link_created(
        &mut self,
        link: &LinkId,
        listen: SocketAddr,
        upstream: SocketAddr,
        target: SocketAddr,
    ) {
        self.routes.push(Route {
            link: link.clone(),
            listen,
            upstream,
            target,
            client: None,
        });
    }

    /// A link was deleted.
    pub fn link_deleted(&mut self, link: &LinkId) {
        self.routes.retain(|r| &r.link != link);
    }

    /// A link's client changed (its `link_client` event).
    pub fn link_client(&mut self, link: &LinkId, client: SocketAddr) {
        if let Some(route) = self.routes.iter_mut().find(|r| &r.link == link) {
            route.client = Some(client);
        }
    }

    /// The application-level destination of a datagram sent to `peer`: a link's target
    /// for its listen address, its client for its upstream address (the upstream address
    /// itself while no client is known: the link will drop it, `no_client`).
    pub fn destination(&self, peer: &Endpoint) -> End<'_> {
        if let Some(ip) = peer.socket_addr() {
            for r in &self.routes {
                if reaches(r.listen, ip) {
                    return End {
                        addr: Endpoint::Ip(r.target),
                        via: Some(&r.link),
                    };
                }
                if r.upstream == ip {
                    return End {
                        addr: Endpoint::Ip(r.client.unwrap_or(ip)),
                        via: Some(&r.link),
                    };
                }
            }
        }
        End {
            addr: peer.clone(),
            via: None,
        }
    }

    /// The application-level source of a datagram received from `peer`: a link's
    /// target for its listen address (a reply relayed to the client), its client for
    /// its upstream address.
    pub fn source(&self, peer: &Endpoint) -> End<'_> {
        // Sends from the link's sockets come from their real addresses, so the same
        // matching serves both ways.
        self.destination(peer)
    }

    /// Where a link sends its target's replies now.
    pub fn client(&self, link: &LinkId) -> Option<SocketAddr> {
        self.route(link)?.client
    }

    /// A link's upstream address.
    pub fn upstream(&self, link: &LinkId) -> Option<SocketAddr> {
        Some(self.route(link)?.upstream)
    }

    /// A link's target.
    pub fn target(&self, link: &LinkId) -> Option<SocketAddr> {
        Some(self.route(link)?.target)
    }

    /// The live links, oldest first.
    pub fn links(&self) -> impl Iterator<Item = &LinkId> {
        self.routes.iter().map(|r| &r.link)
    }

    fn route(&self, link: &LinkId) -> Option<&Route> {
        self.routes.iter().find(|r| &r.link == link)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    fn end(addr: SocketAddr, via: Option<&LinkId>) -> End<'_> {
        End {
            addr: addr.into(),
            via,
        }
    }

    fn ip(addr: SocketAddr) -> Endpoint {
        addr.into()
    }

    #[test]
    fn a_link_is_seen_through_both_ways_and_follows_its_reported_client() {
        let mut routes = Routes::default();
        let l1 = LinkId::new("l1");
        let (listen, upstream, target) = (
            addr("127.0.0.1:3000"),
            addr("127.0.0.1:3001"),
            addr("127.0.0.1:4000"),
        );
        routes.link_created(&l1, listen, upstream, target);
        // To the listen address: the target. From it: the target's reply.
        assert_eq!(routes.destination(&ip(listen)), end(target, Some(&l1)));
        assert_eq!(routes.source(&ip(listen)), end(target, Some(&l1)));
        // No client yet: the upstream address stands for the one to come.
        assert_eq!(routes.destination(&ip(upstream)), end(upstream, Some(&l1)));
        // An outside program became the client, then a lab socket did.
        for client in [addr("127.0.0.1:5555"), addr("127.0.0.1:6666")] {
            routes.link_client(&l1, client);
            assert_eq!(routes.source(&ip(upstream)), end(client, Some(&l1)));
            assert_eq!(routes.destination(&ip(upstream)), end(client, Some(&l1)));
            assert_eq!(routes.client(&l1), Some(client));
        }
        // Anything else is its own end.
        let other = addr("127.0.0.1:9");
        assert_eq!(routes.destination(&ip(other)), end(other, None));
        routes.link_deleted(&l1);
        assert_eq!(routes.destination(&ip(listen)), end(listen, None));
        assert_eq!(routes.links().count(), 0);
    }

    #[test]
    fn a_link_listening_on_every_address_is_reached_on_any() {
        let mut routes = Routes::default();
        let l1 = LinkId::new("l1");
        let target = addr("127.0.0.1:4000");
        routes.link_created(&l1, addr("0.0.0.0:3000"), addr("127.0.0.1:3001"), target);
        assert_eq!(
            routes.destination(&ip(addr("127.0.0.1:3000"))).addr,
            ip(target)
        );
        assert_eq!(
            routes.destination(&ip(addr("127.0.0.2:3000"))).addr,
            ip(target)
        );
        assert_eq!(
            routes.destination(&ip(addr("[::1]:3000"))).via,
            None,
            "another family is another socket"
        );
    }

    #[test]
    fn a_new_link_on_a_deleted_links_address_routes_to_its_own_target() {
        let mut routes = Routes::default();
        let (l1, l2) = (LinkId::new("l1"), LinkId::new("l2"));
        let (listen, upstream) = (addr("127.0.0.1:3000"), addr("127.0.0.1:3001"));
        routes.link_created(&l1, listen, upstream, addr("127.0.0.1:4000"));
        routes.link_deleted(&l1);
        routes.link_created(&l2, listen, upstream, addr("127.0.0.1:5000"));
        assert_eq!(
            routes.destination(&ip(listen)),
            End {
                addr: ip(addr("127.0.0.1:5000")),
                via: Some(&l2)
            }
        );
    }
}

#[cfg(test)]
mod unix_tests {
    use super::*;

    #[test]
    fn a_unix_peer_is_its_own_end() {
        let mut routes = Routes::default();
        let l1 = LinkId::new("l1");
        let a = |s: &str| s.parse::<SocketAddr>().unwrap();
        routes.link_created(
            &l1,
            a("127.0.0.1:3000"),
            a("127.0.0.1:3001"),
            a("127.0.0.1:4000"),
        );
        let peer = Endpoint::unix("@echo");
        assert_eq!(
            routes.destination(&peer),
            End {
                addr: peer.clone(),
                via: None
            }
        );
    }
}
