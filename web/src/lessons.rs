//! Learning mode: short lessons about what UDP really does, each a few steps the person
//! takes with the page's own forms against real sockets (and their own program). A
//! step is done when the session's events show it happened, never by a click on
//! "done"; once done, it says what the person just saw, with the figures of their own
//! run. Pure: the facts are read from the page's state, so the checks are unit-tested
//! without a browser.

use socklab_protocol::Endpoint;
use socklab_protocol::link::{DropReason, Loss};

use crate::model::{State, What};
use crate::timeline::{LossWhy, Mark};

/// How many of the newest arrows the facts are read from.
const ARROWS_READ: usize = 20_000;

/// What the session shows so far, as far as the lessons ask.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Facts {
    /// UDP sockets bound.
    pub udp_sockets: usize,
    /// Datagrams sent to an address that is not a lab socket's (a program outside).
    pub sent_outside: usize,
    /// The round trip of the newest request a program outside answered, ns.
    pub answered_rtt_ns: Option<u64>,
    /// A datagram was refused: nobody listened at its port (ICMP port unreachable).
    pub refused: bool,
    /// Links that lose datagrams at random (either way).
    pub lossy_links: usize,
    /// Where the newest link listens (what to send to, to go through it).
    pub link_listen: Option<std::net::SocketAddr>,
    /// Links that reorder datagrams.
    pub reordering_links: usize,
    /// Datagrams lab sockets sent through a link.
    pub sent_through_links: usize,
    /// Why the newest datagram a link dropped was dropped.
    pub dropped_by_link: Option<DropReason>,
    /// Datagrams a link dropped.
    pub lost_to_links: usize,
    /// How far out of place the newest reordered datagram was.
    pub reordered_by: Option<u64>,
    /// Datagrams received out of order.
    pub reordered: usize,
    /// Lab UDP sockets whose receive buffer is small (at most [`SMALL_BUFFER`] granted).
    pub small_buffers: usize,
    /// One of them is paused (it does not read).
    pub small_paused: bool,
    /// Datagrams lab sockets sent to one of them.
    pub sent_to_small: usize,
    /// Datagrams the kernel dropped at lab sockets, all together (as reported).
    pub kernel_dropped: u64,
    /// Datagrams lab sockets received from a program outside the lab that sent first
    /// (not an answer to the lab: it had sent nothing there).
    pub received_outside: usize,
    /// The newest program outside that sent first.
    pub outside_sender: Option<Endpoint>,
    /// Datagrams lab sockets sent back to a program outside that had sent to them.
    pub answered_outside: usize,
    /// TCP connections between lab sockets or with a program (each end that is a lab
    /// socket counts).
    pub tcp_connected: usize,
    /// One of them is paused.
    pub tcp_paused: bool,
    /// TCP writes (send calls on a connected socket).
    pub tcp_writes: usize,
    /// The most writes whose bytes one read returned together.
    pub writes_in_one_read: usize,
    /// The smallest read size a lab socket was bound with (recvfrom's bufsize).
    pub read_size: Option<u32>,
    /// The newest datagram a read cut: (bytes sent, bytes read).
    pub cut: Option<(usize, usize)>,
}

/// A receive buffer this small (as the kernel granted it, bytes) fills in a moment.
pub const SMALL_BUFFER: u64 = 64 * 1024;

impl Facts {
    /// Reads them from the page's state: its sockets, links, packet rows and the
    /// newest [`ARROWS_READ`] arrows.
    pub fn of(state: &State) -> Facts {
        Facts::since(state, 0)
    }

    /// [`Facts::of`], counting only the datagrams, writes and drops of events after
    /// `since` (a lesson started over); the sockets and links there are count whenever
    /// they were made.
    pub fn since(state: &State, since: u64) -> Facts {
        let mut facts = Facts {
            udp_sockets: state
                .sockets
                .iter()
                .filter(|s| s.proto == socklab_protocol::Proto::Udp)
                .count(),
            ..Facts::default()
        };
        facts.link_listen = state.links.last().map(|l| l.listen);
        for link in state.links.iter() {
            let (c2t, t2c) = (&link.settings.c2t, &link.settings.t2c);
            if c2t.loss != Loss::None || t2c.loss != Loss::None {
                facts.lossy_links += 1;
            }
            if c2t.reorder_pct > 0.0 || t2c.reorder_pct > 0.0 {
                facts.reordering_links += 1;
            }
        }
        let lab: std::collections::HashSet<&Endpoint> =
            state.sockets.iter().map(|s| &s.local).collect();
        let small: Vec<&Endpoint> = state
            .sockets
            .iter()
            .filter(|s| {
                s.proto == socklab_protocol::Proto::Udp
                    && s.recv_buffer_bytes.is_some_and(|b| b <= SMALL_BUFFER)
            })
            .map(|s| &s.local)
            .collect();
        facts.small_buffers = small.len();
        facts.small_paused = state
            .sockets
            .iter()
            .any(|s| s.paused && small.contains(&&s.local));

        let links: Vec<Endpoint> = state.links.iter().map(|l| Endpoint::Ip(l.listen)).collect();
        facts.read_size = state.sockets.iter().filter_map(|s| s.recv_size).min();
        for s in state.sockets.iter() {
            if s.proto == socklab_protocol::Proto::Tcp && s.peer.is_some() {
                facts.tcp_connected += 1;
                facts.tcp_paused |= s.paused;
            }
        }
        {
            use socklab_protocol::Direction::{In, Out};
            let packets = state.packets.borrow();
            // Programs that sent first (not a reply to the lab), and where the lab sent.
            let mut senders: std::collections::HashSet<&Endpoint> =
                std::collections::HashSet::new();
            let mut sent_to: std::collections::HashSet<&Endpoint> =
                std::collections::HashSet::new();
            for i in 0..packets.len() {
                let Some(p) = packets.nth(i).filter(|p| p.id > since) else {
                    continue;
                };
                match &p.what {
                    What::Socket { dir: Out, peer, .. } => {
                        if small.contains(&peer) {
                            facts.sent_to_small += 1;
                        }
                        if !lab.contains(peer) && !links.contains(peer) {
                            facts.sent_outside += 1;
                        }
                        if senders.contains(peer) {
                            facts.answered_outside += 1;
                        }
                        sent_to.insert(peer);
                    }
                    What::Socket { dir: In, peer, .. }
                        if !lab.contains(peer)
                            && !links.contains(peer)
                            && !sent_to.contains(peer) =>
                    {
                        facts.received_outside += 1;
                        facts.outside_sender = Some(peer.clone());
                        senders.insert(peer);
                    }
                    What::Stream { dir: Out, .. } => facts.tcp_writes += 1,
                    What::KernelDrops { dropped, .. } => facts.kernel_dropped += dropped,
                    What::Socket {
                        dir: In,
                        truncated_from: Some(len),
                        ..
                    } => facts.cut = Some((*len, p.payload.len())),
                    _ => {}
                }
            }
        }
        let timeline = state.timeline.borrow();
        let from = timeline.arrows.len().saturating_sub(ARROWS_READ);
        let arrows = || {
            timeline.arrows[from..]
                .iter()
                .filter(|a| a.send.max(a.recv) > since)
        };
        // The writes each read returned (a write's arrow ends at the read that
        // returned its last byte).
        let mut reads: std::collections::HashMap<u64, usize> = std::collections::HashMap::new();
        for a in arrows() {
            if a.mark == Mark::Bytes && a.send != 0 && a.recv != 0 {
                *reads.entry(a.recv).or_default() += 1;
            }
        }
        facts.writes_in_one_read = reads.values().copied().max().unwrap_or(0);
        for a in arrows() {
            if a.send != 0 && a.via.is_some() && a.mark != Mark::Duplicate {
                facts.sent_through_links += 1;
            }
            match a.mark {
                // The arrow ends halfway through the round trip (at the program).
                Mark::Request(_) => {
                    facts.answered_rtt_ns = Some(a.t1.saturating_sub(a.t0).saturating_mul(2));
                }
                Mark::Lost(why) | Mark::Unanswered(why) => match why {
                    LossWhy::Link(reason) => {
                        facts.lost_to_links += 1;
                        facts.dropped_by_link = Some(reason);
                    }
                    LossWhy::Refused | LossWhy::NoListener => facts.refused = true,
                    _ => {}
                },
                Mark::Reordered(n) => {
                    facts.reordered += 1;
                    facts.reordered_by = Some(n);
                }
                _ => {}
            }
        }
        facts
    }
}

/// One step of a lesson.
#[derive(Debug)]
pub struct Step {
    /// What to do, in a few words.
    pub title: &'static str,
    /// How, with the page's forms.
    pub how: &'static str,
    /// The part of the page it is done with (a CSS selector; empty: none), for "show
    /// me".
    pub look: &'static str,
    /// Whether the session shows it done.
    pub done: fn(&Facts) -> bool,
    /// What the person saw, once it is done (with their own figures).
    pub saw: fn(&Facts) -> String,
    /// While not done: what may have gone wrong, if the facts show it.
    pub hint: fn(&Facts) -> Option<String>,
}

/// A lesson: a question about UDP and the steps that answer it.
#[derive(Debug)]
pub struct Lesson {
    /// Its id (for the page's controls and the tests).
    pub id: &'static str,
    /// Its name (the page numbers it).
    pub name: &'static str,
    /// What it shows.
    pub intro: &'static str,
    /// Its steps, in order.
    pub steps: &'static [Step],
}

impl Lesson {
    /// Which of its steps the session shows done.
    pub fn progress(&self, facts: &Facts) -> Vec<bool> {
        self.steps.iter().map(|s| (s.done)(facts)).collect()
    }
}

/// A Python UDP echo server, as the first lesson has the person run it.
pub const ECHO_PY: &str = "import socket

s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind((\"127.0.0.1\", 9000))
while True:
    data, addr = s.recvfrom(2048)   # waits for one datagram
    s.sendto(data, addr)            # and sends it back where it came from";

fn ms(ns: u64) -> String {
    format!("{:.3} ms", ns as f64 / 1e6)
}

fn no_hint(_: &Facts) -> Option<String> {
    None
}

fn bound(f: &Facts) -> bool {
    f.udp_sockets > 0
}

fn bound_saw(_: &Facts) -> String {
    "Your lab socket is a real UDP socket on this machine: bind() gave it an address (the OS picked the port), and it reads whatever datagram arrives there.".into()
}

fn sent_outside(f: &Facts) -> bool {
    f.sent_outside > 0
}

fn sent_outside_saw(f: &Facts) -> String {
    format!(
        "{} datagram(s) left your socket for your program: each send is one datagram, and it goes whether or not anyone listens there.",
        f.sent_outside
    )
}

fn answered(f: &Facts) -> bool {
    f.answered_rtt_ns.is_some()
}

fn answered_saw(f: &Facts) -> String {
    format!(
        "Your program's recvfrom() returned the bytes and your lab socket's address; sendto() sent them back there. The round trip took {}. Click the arrow on the timeline to see both datagrams.",
        f.answered_rtt_ns.map_or_else(String::new, ms)
    )
}

fn answered_hint(f: &Facts) -> Option<String> {
    f.refused.then(|| {
        "Nobody listened at that port: the kernel answered with an ICMP \"port unreachable\" (the ✕ icmp row). Start your program, then send again.".to_string()
    })
}

fn lossy_link(f: &Facts) -> bool {
    f.lossy_links > 0
}

fn lossy_link_saw(_: &Facts) -> String {
    "The link is a real UDP relay: it listens on its own port and forwards to your program, losing some datagrams on purpose, as a bad network would.".into()
}

fn through_link(f: &Facts) -> bool {
    f.sent_through_links >= 20
}

fn through_link_saw(f: &Facts) -> String {
    format!(
        "{} datagrams went through the link. Nothing told your socket which ones arrived: a send succeeds as soon as the datagram leaves the socket.",
        f.sent_through_links
    )
}

fn through_link_hint(f: &Facts) -> Option<String> {
    more_through_links(f, 20)
}

fn through_link_100(f: &Facts) -> bool {
    f.sent_through_links >= 100
}

fn through_link_100_hint(f: &Facts) -> Option<String> {
    more_through_links(f, 100)
}

/// How many more to send through a link to make `want`, and where.
fn more_through_links(f: &Facts, want: usize) -> Option<String> {
    let to = f.link_listen.map_or_else(
        || "the link's listen address".to_string(),
        |a| a.to_string(),
    );
    match f.sent_through_links {
        0 => f.link_listen.map(|_| {
            format!("Send to {to}: the link listens there and passes what it receives on.")
        }),
        sent => Some(format!(
            "{sent} so far: send {} more to {to}.",
            want.saturating_sub(sent)
        )),
    }
}

fn lost(f: &Facts) -> bool {
    f.lost_to_links > 0
}

fn lost_saw(f: &Facts) -> String {
    format!(
        "{} datagram(s) never reached your program: the link dropped them ({}). Your program simply never saw them, and your socket got no error: UDP has no acknowledgement and sends nothing again. A protocol that must not lose data numbers its datagrams and asks again itself.",
        f.lost_to_links,
        f.dropped_by_link.map_or("", DropReason::describe)
    )
}

fn reordering_link(f: &Facts) -> bool {
    f.reordering_links > 0
}

fn reordering_link_saw(_: &Facts) -> String {
    "This link holds some datagrams back and sends later ones first, as a network with several paths may.".into()
}

fn reordered(f: &Facts) -> bool {
    f.reordered > 0
}

fn reordered_hint(f: &Facts) -> Option<String> {
    (f.reordering_links > 0 && f.sent_through_links >= 100).then(|| {
        "None yet: a link that reorders a few percent may need more. Send another 100, or raise reorder in the link's settings.".to_string()
    })
}

fn reordered_saw(f: &Facts) -> String {
    format!(
        "{} datagram(s) arrived after one that was sent later (the newest by {}). recvfrom() hands them over in the order they arrive: UDP keeps no order. A program that needs order numbers its datagrams and sorts them (the generator's sequence header does).",
        f.reordered,
        f.reordered_by.unwrap_or(0)
    )
}

fn refused(f: &Facts) -> bool {
    f.refused
}

fn refused_saw(_: &Facts) -> String {
    "Your send() succeeded, yet nobody had that port: the kernel there answered with an ICMP \"port unreachable\" (the ✕ icmp row). A socket that only sends never hears of it; a connected one (connect(), then send()) gets ECONNREFUSED on its next call. UDP itself tells the sender nothing.".into()
}

fn small_buffer(f: &Facts) -> bool {
    f.small_buffers > 0
}

fn small_buffer_saw(_: &Facts) -> String {
    "The kernel granted a small receive buffer (it doubles what you ask, for its own bookkeeping): that is all the room datagrams have while your socket is not reading.".into()
}

fn small_paused(f: &Facts) -> bool {
    f.small_paused || f.kernel_dropped > 0
}

fn small_paused_saw(_: &Facts) -> String {
    "Paused, the socket reads nothing, as a program busy elsewhere (or sleeping between recvfrom() calls) would.".into()
}

fn sent_to_small(f: &Facts) -> bool {
    f.sent_to_small >= 200
}

fn sent_to_small_saw(f: &Facts) -> String {
    format!(
        "{} datagrams were sent to it while it was not reading; every send succeeded.",
        f.sent_to_small
    )
}

fn sent_to_small_hint(f: &Facts) -> Option<String> {
    (f.sent_to_small > 0).then(|| {
        format!(
            "{} so far: send {} more to the paused socket.",
            f.sent_to_small,
            200usize.saturating_sub(f.sent_to_small)
        )
    })
}

fn kernel_dropped(f: &Facts) -> bool {
    f.kernel_dropped > 0
}

fn kernel_dropped_saw(f: &Facts) -> String {
    format!(
        "The kernel kept what fit in the buffer and dropped the rest: {} datagram(s), counted on the socket and in the ✕ kernel row. recvfrom() now returns the ones kept, one by one; the others are gone, and nobody was told. A program that reads too slowly loses datagrams this way even on one machine.",
        f.kernel_dropped
    )
}

fn kernel_dropped_hint(f: &Facts) -> Option<String> {
    (f.small_paused && f.sent_to_small >= 200).then(|| {
        "Now press resume on the paused socket: the kernel says what it dropped once the socket reads again.".to_string()
    })
}

/// A Python UDP client, as the second lesson has the person run it.
pub const CLIENT_PY: &str = "import socket

s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.sendto(b\"hello from python\", (\"127.0.0.1\", 9001))   # the OS picks this socket's port
data, addr = s.recvfrom(2048)                            # waits for the answer
print(\"got\", data, \"from\", addr)";

fn received_outside(f: &Facts) -> bool {
    f.received_outside > 0
}

fn received_outside_saw(f: &Facts) -> String {
    format!(
        "A datagram from your program, at {}: its socket never called bind(), so the OS gave it a port when it first sent. That address is the only way to answer it.",
        f.outside_sender
            .as_ref()
            .map_or_else(String::new, ToString::to_string)
    )
}

fn answered_outside(f: &Facts) -> bool {
    f.answered_outside > 0
}

fn answered_outside_saw(_: &Facts) -> String {
    "Your reply went to the address the datagram came from, and your program's recvfrom() returned it with the lab socket's address: that is all a UDP server does, recvfrom() then sendto() the same address.".into()
}

fn answered_outside_hint(f: &Facts) -> Option<String> {
    f.outside_sender.as_ref().map(|from| {
        format!("In Send, pick your socket, give {from} as the destination (its chip is there), type an answer and send.")
    })
}

fn tcp_connected(f: &Facts) -> bool {
    f.tcp_connected >= 2
}

fn tcp_connected_saw(_: &Facts) -> String {
    "The listener accepted the connection as a socket of its own (s1.1, …): a TCP connection joins exactly two sockets, unlike a UDP socket, which takes datagrams from anyone.".into()
}

fn tcp_paused(f: &Facts) -> bool {
    f.tcp_paused || f.writes_in_one_read > 1
}

fn tcp_paused_saw(_: &Facts) -> String {
    "Paused, the accepted socket does not read: what arrives waits in the kernel.".into()
}

fn tcp_writes(f: &Facts) -> bool {
    f.tcp_writes >= 3
}

fn tcp_writes_saw(f: &Facts) -> String {
    format!(
        "{} send() calls went into the connection, each its own write.",
        f.tcp_writes
    )
}

fn one_read(f: &Facts) -> bool {
    f.writes_in_one_read > 1
}

fn one_read_saw(f: &Facts) -> String {
    format!(
        "One recv() returned the bytes of {} writes together: TCP is a stream of bytes and keeps no boundaries between sends. UDP would have given one datagram per send, each its own recvfrom(). A program on TCP marks where its messages end itself (a length first, or a newline).",
        f.writes_in_one_read
    )
}

fn one_read_hint(f: &Facts) -> Option<String> {
    (f.tcp_paused && f.tcp_writes >= 3)
        .then(|| "Now press resume on the paused socket: it reads what waited.".to_string())
}

fn read_size(f: &Facts) -> bool {
    f.read_size.is_some()
}

fn read_size_saw(f: &Facts) -> String {
    format!(
        "This socket reads at most {} bytes at a time: what recvfrom({}) asks the kernel for.",
        f.read_size.unwrap_or(0),
        f.read_size.unwrap_or(0)
    )
}

fn cut(f: &Facts) -> bool {
    f.cut.is_some()
}

fn cut_saw(f: &Facts) -> String {
    let (sent, read) = f.cut.unwrap_or_default();
    format!(
        "The datagram had {sent} bytes; the read returned {read} and the kernel threw the other {} away (MSG_TRUNC). UDP keeps no remainder for a next read, unlike TCP: give recvfrom a buffer as big as the largest datagram you expect (at most 65,507 bytes over IPv4).",
        sent.saturating_sub(read)
    )
}

/// The lessons, in the order they build on each other.
pub const LESSONS: [Lesson; 8] = [
    Lesson {
        id: "echo",
        name: "Talk to your own UDP program",
        intro: "Run a small UDP echo server of your own and talk to it from the lab: what one send and one recvfrom really are.",
        steps: &[
            Step {
                title: "Bind a UDP socket",
                look: "#bind-button",
                how: "In Sockets, keep UDP and 127.0.0.1, port 0 (the OS picks one), and press bind UDP.",
                done: bound,
                saw: bound_saw,
                hint: no_hint,
            },
            Step {
                title: "Send a datagram to your program",
                look: "#send-to",
                how: "Run the echo server below (python3 echo.py), then in Send write 127.0.0.1:9000 as the destination, type hello and press send.",
                done: sent_outside,
                saw: sent_outside_saw,
                hint: no_hint,
            },
            Step {
                title: "See its reply",
                look: "#timeline-canvas",
                how: "Wait for the reply: on the timeline, an arrow to your program and one back.",
                done: answered,
                saw: answered_saw,
                hint: answered_hint,
            },
        ],
    },
    Lesson {
        id: "client",
        name: "Your program as the client",
        intro: "Now your program sends first and the lab answers: where does a UDP server send its reply?",
        steps: &[
            Step {
                title: "Bind a socket on the port your program sends to",
                look: "#bind-port",
                how: "In Sockets, give port 9001 and press bind UDP.",
                done: bound,
                saw: bound_saw,
                hint: no_hint,
            },
            Step {
                title: "Run a client that sends to it",
                look: "",
                how: "Run the client below (python3 client.py): it sends one datagram and waits for an answer.",
                done: received_outside,
                saw: received_outside_saw,
                hint: no_hint,
            },
            Step {
                title: "Answer it",
                look: "#send-to",
                how: "In Send, send an answer to the address it came from; your program prints it.",
                done: answered_outside,
                saw: answered_outside_saw,
                hint: answered_outside_hint,
            },
        ],
    },
    Lesson {
        id: "loss",
        name: "UDP loses datagrams, and says nothing",
        intro: "Put a lossy link between your socket and your program, send a few, and find the ones that never arrived.",
        steps: &[
            Step {
                title: "Put a lossy link in front of your program",
                look: "#link-preset",
                how: "In Links, choose the preset very lossy (it loses 30 %), give your program's address (127.0.0.1:9000) as the target, and press create link.",
                done: lossy_link,
                saw: lossy_link_saw,
                hint: no_hint,
            },
            Step {
                title: "Send 20 datagrams through it",
                look: "#gen-to",
                how: "In the generator (under Send), send 20 datagrams to the link's listen address (its card shows it).",
                done: through_link,
                saw: through_link_saw,
                hint: through_link_hint,
            },
            Step {
                title: "Find one that was lost",
                look: "#tl-next-loss",
                how: "On the timeline, press loss ↓ (or the n key): it selects the next datagram that never arrived, and the inspector says why.",
                done: lost,
                saw: lost_saw,
                hint: no_hint,
            },
        ],
    },
    Lesson {
        id: "order",
        name: "Order is not guaranteed",
        intro: "Let a link reorder datagrams between two lab sockets (both ends seen, so the page knows the order they were sent in) and see one arrive before another that was sent first.",
        steps: &[
            Step {
                title: "Put a reordering link in front of a lab socket",
                look: "#link-preset",
                how: "Bind two UDP sockets. In Links, pick the preset very lossy (it reorders 5 %; for more, open its settings and raise reorder), give the second socket's address as the target, and create it.",
                done: reordering_link,
                saw: reordering_link_saw,
                hint: no_hint,
            },
            Step {
                title: "Send 100 datagrams through it",
                look: "#gen-to",
                how: "With the generator, from the first socket, send 100 datagrams to the link's listen address.",
                done: through_link_100,
                saw: through_link_saw,
                hint: through_link_100_hint,
            },
            Step {
                title: "Find one that came out of order",
                look: "#tl-show-delivered",
                how: "On the timeline, untick delivered and lost: the arrows left arrived out of order (click one: the inspector says by how many).",
                done: reordered,
                saw: reordered_saw,
                hint: reordered_hint,
            },
        ],
    },
    Lesson {
        id: "nobody",
        name: "Nobody listening",
        intro: "Send to a port where no program listens: what does the sender learn?",
        steps: &[
            Step {
                title: "Bind a UDP socket",
                look: "#bind-button",
                how: "In Sockets, press bind UDP (or keep the socket you have).",
                done: bound,
                saw: bound_saw,
                hint: no_hint,
            },
            Step {
                title: "Send to a port nobody listens on",
                look: "#send-to",
                how: "Stop your program (Ctrl+C) and send to 127.0.0.1:9000 again, or send to a port nobody uses, such as 127.0.0.1:9999.",
                done: refused,
                saw: refused_saw,
                hint: no_hint,
            },
        ],
    },
    Lesson {
        id: "buffer",
        name: "A slow reader loses datagrams",
        intro: "A socket that does not read in time: its receive buffer fills, and the kernel drops the rest.",
        steps: &[
            Step {
                title: "Bind a socket with a tiny receive buffer",
                look: "#bind-rcvbuf",
                how: "In Sockets, write 4k as the receive buffer and press bind UDP.",
                done: small_buffer,
                saw: small_buffer_saw,
                hint: no_hint,
            },
            Step {
                title: "Pause it",
                look: "#socket-list",
                how: "Press pause on its row: it stops reading.",
                done: small_paused,
                saw: small_paused_saw,
                hint: no_hint,
            },
            Step {
                title: "Send it 200 datagrams",
                look: "#gen-to",
                how: "From another socket, with the generator, send 200 datagrams to the paused socket's address.",
                done: sent_to_small,
                saw: sent_to_small_saw,
                hint: sent_to_small_hint,
            },
            Step {
                title: "Resume it, and count what was dropped",
                look: "#socket-list",
                how: "Press resume on its row.",
                done: kernel_dropped,
                saw: kernel_dropped_saw,
                hint: kernel_dropped_hint,
            },
        ],
    },
    Lesson {
        id: "cut",
        name: "recvfrom's size cuts a datagram",
        intro: "recvfrom(1024) is in every tutorial: what happens to a datagram longer than that?",
        steps: &[
            Step {
                title: "Bind a socket that reads 4 bytes at a time",
                look: "#bind-read-size",
                how: "In Sockets, write 4 as the read size and press bind UDP.",
                done: read_size,
                saw: read_size_saw,
                hint: no_hint,
            },
            Step {
                title: "Send it a longer datagram",
                look: "#send-payload",
                how: "From another socket, send hello world to its address.",
                done: cut,
                saw: cut_saw,
                hint: no_hint,
            },
        ],
    },
    Lesson {
        id: "stream",
        name: "TCP keeps no message boundaries",
        intro: "Three sends over TCP to a socket that is not reading: how many reads come out?",
        steps: &[
            Step {
                title: "Make a TCP connection",
                look: "#bind-kind",
                how: "In Sockets, choose TCP and listen, bind; then bind a TCP socket without listen and connect it to the listener's address (Send, connect).",
                done: tcp_connected,
                saw: tcp_connected_saw,
                hint: no_hint,
            },
            Step {
                title: "Pause the accepted socket",
                look: "#socket-list",
                how: "Press pause on the accepted socket's row (s1.1 or the like).",
                done: tcp_paused,
                saw: tcp_paused_saw,
                hint: no_hint,
            },
            Step {
                title: "Send three messages",
                look: "#send-payload",
                how: "From the connecting socket, send hello, then world, then !, each with its own send.",
                done: tcp_writes,
                saw: tcp_writes_saw,
                hint: no_hint,
            },
            Step {
                title: "Resume it, and count the reads",
                look: "#socket-list",
                how: "Press resume on the accepted socket.",
                done: one_read,
                saw: one_read_saw,
                hint: one_read_hint,
            },
        ],
    },
];

#[cfg(test)]
mod tests;
