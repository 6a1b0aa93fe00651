//! The inspector: everything about the selected datagram, its fate, and its bytes.

use socklab_protocol::Direction;
use yew::prelude::*;

use super::packets::{dir_arrow, route, seconds};
use super::use_ctx;
use crate::hexdump::hexdump;
use crate::model::What;
use crate::timeline::{LossWhy, Mark, Pairing};

/// The selected datagram: metadata, what became of it, hex + ASCII.
#[component]
pub fn Inspector() -> Html {
    let ctx = use_ctx();
    let state = &ctx.state;
    let Some(id) = state.selected else {
        return html! {
            <aside id="inspector" class="inspector empty" aria-label="Inspector">
                <h3>{ "Inspector" }</h3>
                <p class="hint inspector-empty">{ "Click an arrow in the timeline or a row of the packet list: its fate, the link's decision and its whole payload as hex and ASCII appear here." }</p>
            </aside>
        };
    };
    let close = {
        let dispatch = state.dispatcher();
        Callback::from(move |_| dispatch.dispatch(crate::model::Action::Select(None)))
    };
    let reveal = |place: crate::model::Place| {
        let dispatch = state.dispatcher();
        Callback::from(move |_: MouseEvent| {
            dispatch.dispatch(crate::model::Action::Reveal(id, place))
        })
    };
    let on_timeline = state.timeline.borrow().arrow_of(id).is_some();
    let in_list = state.packets.borrow().get(id).is_some();
    let fetched = state.window_packets.borrow();
    // A row the packet list fetched from the server itself, and its arrow.
    let listed = state.list_window.as_ref().map(|w| w.rows.borrow());
    let arrow = state.timeline.borrow().arrow_of(id).copied().or_else(|| {
        state
            .list_window
            .as_ref()
            .and_then(|w| w.timeline.borrow().arrow_of(id).copied())
    });
    let heading = |title: String| {
        html! {
            <div class="inspector-head">
                <h3>{ title }</h3>
                <span class="row">
                    if in_list {
                        <button id="inspector-to-list" class="small" onclick={reveal(crate::model::Place::List)} title="Its row in the packet list">{ "⇣ in the list" }</button>
                    }
                    if on_timeline {
                        <button id="inspector-to-timeline" class="small" onclick={reveal(crate::model::Place::Timeline)} title="Its arrow on the timeline, in the middle">{ "⇢ on the timeline" }</button>
                    }
                    <button id="inspector-close" class="small" onclick={close.clone()} title="Deselect">{ "close" }</button>
                </span>
            </div>
        }
    };
    let store = state.packets.borrow();
    // A datagram of a window fetched from the server is not in the list, but its
    // bytes and the link's account of it came with the window.
    let packet = store
        .get(id)
        .or_else(|| fetched.get(id))
        .or_else(|| listed.as_ref().and_then(|l| l.get(id)))
        .cloned();
    // The link's own account of this datagram, when it crossed a link.
    let decision = arrow
        .filter(|a| a.decision != 0)
        .and_then(|a| {
            store
                .get(a.decision)
                .or_else(|| fetched.get(a.decision))
                .or_else(|| listed.as_ref().and_then(|l| l.get(a.decision)))
        })
        .and_then(|row| match &row.what {
            What::Link(d) => Some(format!(
                "link {} ({}, datagram {} of that direction, event #{}): {}",
                d.link,
                dir_arrow(d.dir),
                d.seq,
                row.id,
                d.summary()
            )),
            What::Socket { .. }
            | What::KernelDrops { .. }
            | What::Unreachable { .. }
            | What::Stream { .. }
            | What::Tcp { .. }
            | What::TcpLink { .. } => None,
        });
    let fate = arrow.map(|a| match a.mark {
        // Only the link saw it: neither end is a lab socket.
        Mark::Pending if a.send == 0 && a.recv == 0 => "in the link (not sent on yet)".to_string(),
        Mark::Delivered | Mark::Reordered(_) if a.send == 0 && a.recv == 0 => format!(
            "sent on by the link after {:.3} ms{} (neither end is a lab socket: the link's account is all socklab sees)",
            (a.t1 - a.t0) as f64 / 1e6,
            match a.mark {
                Mark::Reordered(n) => format!(", out of order: {n} later arrival(s) at the link left first"),
                _ => String::new(),
            }
        ),
        Mark::Pending => "in flight (not received yet)".to_string(),
        Mark::Untracked => "not followed to the end: the analysis had too many datagrams in flight, or retired this flow to make room (--max-in-flight, --max-flows)".to_string(),
        Mark::Delivered => format!(
            "delivered in order after {:.3} ms",
            (a.t1 - a.t0) as f64 / 1e6
        ),
        Mark::Reordered(n) => format!(
            "delivered out of order after {:.3} ms: {n} datagram(s) sent later arrived first",
            (a.t1 - a.t0) as f64 / 1e6
        ),
        Mark::Late => format!(
            "delivered late, after {:.3} ms (it had been counted lost)",
            (a.t1 - a.t0) as f64 / 1e6
        ),
        Mark::Duplicate => "a duplicate copy".to_string(),
        Mark::Lost(why) => format!("lost: {}", why.words()),
        Mark::Request(pairing) => format!(
            "answered after {:.3} ms (round trip){}",
            (a.t1 - a.t0) as f64 * 2.0 / 1e6,
            match pairing {
                Pairing::Bytes => "; the reply has the same bytes",
                Pairing::Field => "; the reply's bytes differ from the request's, but the match field (Flows tab) is equal",
                Pairing::Order => "; the reply's bytes differ from the request's, so it was paired by order: the oldest request still open (name a match field in the Flows tab to pair by a sequence number instead)",
            }
        ),
        Mark::Reply => "a reply to an earlier request".to_string(),
        Mark::Unanswered(LossWhy::Timeout) => "no reply within the loss timeout".to_string(),
        Mark::Unanswered(why) => format!("no reply: {}", why.words()),
        Mark::Incoming => "received from outside the lab".to_string(),
        Mark::Bytes if a.send == 0 => "TCP bytes read from a program outside the lab".to_string(),
        Mark::Bytes => format!(
            "TCP bytes: written, and in the reader's receive buffer {:.3} ms later (the kernel's arrival time of the newest bytes of the read that returned their last byte; writes ending at the same read came out of it together)",
            (a.t1 - a.t0) as f64 / 1e6
        ),
        Mark::Tcp(crate::timeline::TcpMark::Handshake) => "the TCP handshake: connected and accepted".to_string(),
        Mark::Tcp(crate::timeline::TcpMark::Fin) => "the end of the stream (the peer's FIN) reached this socket: a read returned 0".to_string(),
        Mark::Tcp(crate::timeline::TcpMark::Reset) => "the connection was reset (RST)".to_string(),
    });
    let Some(p) = packet else {
        return html! {
            <aside id="inspector" class="inspector" aria-label="Inspector">
                { heading(format!("Inspector: event #{id}")) }
                <p class="meta">{ format!("event #{id} is no longer in the packet list") }{ fate.map(|f| format!(" · fate: {f}")).unwrap_or_default() }</p>
            </aside>
        };
    };
    let row = store.row_of(id);
    let what = match &p.what {
        What::Socket {
            dir: Direction::Out,
            ..
        } => "datagram sent",
        What::Socket {
            dir: Direction::In, ..
        } => "datagram received",
        What::KernelDrops { .. } => "kernel drops",
        What::Unreachable { .. } => "ICMP error",
        What::Stream {
            dir: Direction::Out,
            ..
        } => "TCP write",
        What::Stream {
            dir: Direction::In, ..
        } => "TCP read",
        What::Tcp { .. } => "TCP connection",
        What::TcpLink { .. } => "TCP link decision",
        What::Link(_) => "link decision",
    };
    let title = match row {
        Some(row) => format!("Inspector: {what}, row {row} (event #{id})"),
        None => format!("Inspector: {what} (event #{id})"),
    };
    let meta = match &p.what {
        What::Socket {
            socket,
            dir,
            local,
            peer,
            truncated_from,
        } => {
            let (verb, from, to) = match dir {
                Direction::Out => ("sent", local, peer),
                Direction::In => ("received", peer, local),
            };
            let cut = truncated_from.map(|len| {
                format!(
                    " · cut from {len} bytes: the socket reads {} bytes at a time and the kernel discarded the rest (MSG_TRUNC)",
                    p.payload.len()
                )
            });
            let unix = if peer.is_unnamed() {
                " · a Unix datagram from a socket that never bound a name (unix:): it can send, but nothing can answer it, as recvfrom shows an empty address"
            } else if local.is_unix() {
                " · a Unix datagram: it never leaves this machine and is never dropped (a receiver that does not read makes its sender wait)"
            } else {
                ""
            };
            format!(
                "#{} · {verb} · socket {socket} · {from} → {to} · {} bytes{}{unix} · t = {} s",
                p.id,
                p.payload.len(),
                cut.unwrap_or_default(),
                seconds(p.t_ns)
            )
        }
        What::KernelDrops {
            socket,
            local,
            dropped,
            total,
        } => format!(
            "#{} · the kernel dropped {dropped} datagram(s) addressed to socket {socket}{} before socklab could read them: its receive buffer was full ({total} since it was bound; counted when it next received one) · t = {} s",
            p.id,
            local.clone().map(|l| format!(" ({l})")).unwrap_or_default(),
            seconds(p.t_ns)
        ),
        What::Stream {
            socket,
            dir,
            local,
            peer,
            offset,
        } => {
            let (verb, from, to) = match dir {
                Direction::Out => ("wrote", local, peer),
                Direction::In => ("read", peer, local),
            };
            let n = p.payload.len() as u64;
            let sources = store.writes_into(&p);
            let origin = if sources.is_empty() {
                String::new()
            } else {
                let parts: Vec<String> = sources
                    .iter()
                    .map(|(write, a, b)| {
                        format!(
                            "bytes {a}–{} from write #{write}{}",
                            b - 1,
                            store
                                .row_of(*write)
                                .map(|r| format!(" (row {r})"))
                                .unwrap_or_default()
                        )
                    })
                    .collect();
                format!(
                    " · {} write(s) in this one read: {}",
                    sources.len(),
                    parts.join(", ")
                )
            };
            format!(
                "#{} · socket {socket} {verb} {n} bytes · {from} → {to} · stream bytes {offset}–{}{origin} · t = {} s",
                p.id,
                (offset + n).saturating_sub(1),
                seconds(p.t_ns)
            )
        }
        What::TcpLink { link, what } => format!(
            "#{} · TCP link {link} · {what} · t = {} s",
            p.id,
            seconds(p.t_ns)
        ),
        What::Tcp { socket, peer, what } => format!(
            "#{} · socket {socket}{} · {} · t = {} s",
            p.id,
            peer.clone()
                .map(|p| format!(" (peer {p})"))
                .unwrap_or_default(),
            what.note(),
            seconds(p.t_ns)
        ),
        What::Unreachable {
            socket,
            local,
            to,
            reason,
            icmp,
            error,
        } => format!(
            "#{} · socket {socket} ({local}) sent a datagram to {to}: {} (ICMP type {}, code {}; the OS says \"{error}\": a connected socket's next send or receive fails with it, an unconnected one hears nothing unless it asks, as socklab does with IP_RECVERR) · the error quotes {} bytes of it · t = {} s",
            p.id,
            reason.describe(),
            icmp.0,
            icmp.1,
            p.payload.len(),
            seconds(p.t_ns)
        ),
        What::Link(d) => format!(
            "#{} · link {} {} datagram {} · {} · {} bytes · t = {} s · decision: {}",
            p.id,
            d.link,
            dir_arrow(d.dir),
            d.seq,
            route(d),
            p.payload.len(),
            seconds(p.t_ns),
            d.summary()
        ),
    };
    html! {
        <aside id="inspector" class="inspector" aria-label="Inspector">
            { heading(title) }
            <p class="meta">{ meta }</p>
            if let Some(fate) = fate {
                <p id="inspector-fate" class="meta fate">{ format!("fate: {fate}") }</p>
            }
            if let Some(decision) = decision {
                <p id="inspector-decision" class="meta fate">{ format!("decision: {decision}") }</p>
            }
            if !matches!(p.what, What::KernelDrops { .. }) {
                <pre id="hexdump" class="mono">{ if p.payload.is_empty() { "(empty datagram)".to_string() } else { hexdump(&p.payload) } }</pre>
            }
        </aside>
    }
}
