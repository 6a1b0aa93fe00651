//! The live packet list and the inspector for the selected packet.

use socklab_protocol::Direction;
use socklab_protocol::link::{LinkDir, LinkFate};
use web_sys::HtmlElement;
use yew::prelude::*;

use super::use_ctx;
use crate::hexdump::preview;
use crate::model::{Action, LinkDecision, What};

/// How many of the newest packets the list draws; the rest stay in the store.
const ROWS_DRAWN: usize = 1_000;
/// Characters of payload shown in a row.
const PREVIEW_CHARS: usize = 40;
/// How close to the bottom (in pixels) still counts as "at the bottom".
const BOTTOM_SLACK_PX: i32 = 24;

pub(super) fn seconds(t_ns: u64) -> String {
    format!("{:.6}", t_ns as f64 / 1e9)
}

/// The packet list with auto-follow, and the inspector.
#[component]
pub fn PacketsPanel() -> Html {
    let ctx = use_ctx();
    let follow = use_state(|| true);
    let scroller = use_node_ref();
    let state = &ctx.state;

    // Keep the newest row in view while following.
    {
        let scroller = scroller.clone();
        let following = *follow;
        use_effect_with((state.packets_version, following), move |_| {
            if following && let Some(el) = scroller.cast::<HtmlElement>() {
                el.set_scroll_top(el.scroll_height());
            }
        });
    }
    let on_scroll = {
        let follow = follow.clone();
        let scroller = scroller.clone();
        Callback::from(move |_: Event| {
            if let Some(el) = scroller.cast::<HtmlElement>() {
                let at_bottom =
                    el.scroll_top() + el.client_height() >= el.scroll_height() - BOTTOM_SLACK_PX;
                if at_bottom != *follow {
                    follow.set(at_bottom);
                }
            }
        })
    };
    let on_follow = {
        let follow = follow.clone();
        Callback::from(move |_| follow.set(!*follow))
    };
    let on_clear = {
        let dispatch = state.dispatcher();
        Callback::from(move |_| dispatch.dispatch(Action::ClearPackets))
    };

    let store = state.packets.borrow();
    let total = store.len();
    let selected = state.selected;
    let name = |addr: &socklab_protocol::Endpoint| state.name_of(addr);
    let ip_name = |addr: std::net::SocketAddr| state.name_of(&addr.into());
    let rows = store.newest_numbered(ROWS_DRAWN).map(|(row, p)| {
        let dispatch = state.dispatcher();
        let id = p.id;
        let onclick = Callback::from(move |_| {
            dispatch.dispatch(Action::Select(if selected == Some(id) { None } else { Some(id) }))
        });
        let selected_class = (selected == Some(id)).then_some("selected");
        let time = seconds(p.t_ns);
        let preview = preview(&p.payload, PREVIEW_CHARS);
        match &p.what {
            What::Socket { socket, dir, peer, truncated_from, .. } => {
                let (dir_class, label, title) = match dir {
                    Direction::Out => ("out", "↑ out", "sent by the socket"),
                    Direction::In => ("in", "↓ in", "received by the socket"),
                };
                html! {
                    <tr class={classes!("packet-row", dir_class, selected_class)} {onclick} key={id}
                        data-id={id.to_string()} data-dir={if *dir == Direction::Out { "out" } else { "in" }}>
                        <td class="num">{ row }</td>
                        <td class="num">{ time }</td>
                        <td class="dir" {title}>{ label }</td>
                        <td>{ socket.to_string() }</td>
                        <td class="mono" title={peer.to_string()}>{ name(peer) }</td>
                        <td class="num">{ p.payload.len() }</td>
                        <td class="mono preview">{ preview }</td>
                        if let Some(len) = truncated_from {
                            <td class="note truncated" title="The datagram was longer than this socket reads at a time (its read size, the bufsize of recvfrom): the kernel cut it (MSG_TRUNC) and the rest is gone. UDP keeps no remainder for a next read.">
                                { format!("cut: {len} bytes sent, {} read", p.payload.len()) }</td>
                        } else {
                            <td></td>
                        }
                    </tr>
                }
            }
            What::Link(d) => {
                let dropped = d.fate == LinkFate::Dropped;
                let (class, label) = if dropped { ("link dropped", "✕ drop") } else { ("link", "⇢ link") };
                html! {
                    <tr class={classes!("packet-row", class, selected_class)} {onclick} key={id}
                        data-id={id.to_string()} data-dir="link" data-fate={if dropped { "dropped" } else { "forwarded" }}>
                        <td class="num">{ row }</td>
                        <td class="num">{ time }</td>
                        <td class="dir" title="the link's decision on a datagram crossing it">{ label }</td>
                        <td title={dir_arrow(d.dir)}>{ format!("{} {}", d.link, toward(d.dir)) }</td>
                        <td class="mono" title={route(d)}>{ format!("{} → {}", ip_name(d.from), d.to.map_or_else(|| "nobody".to_string(), ip_name)) }</td>
                        <td class="num">{ p.payload.len() }</td>
                        <td class="mono preview">{ preview }</td>
                        <td class="note">{ d.summary() }</td>
                    </tr>
                }
            }
            What::KernelDrops { socket, local, dropped, total } => html! {
                <tr class={classes!("packet-row", "kernel", selected_class)} {onclick} key={id}
                    data-id={id.to_string()} data-dir="kernel">
                    <td class="num">{ row }</td>
                    <td class="num">{ time }</td>
                    <td class="dir" title="the kernel dropped datagrams addressed to this socket: its receive buffer was full">{ "✕ kernel" }</td>
                    <td>{ socket.to_string() }</td>
                    <td class="mono">{ "—" }</td>
                    <td class="num">{ "" }</td>
                    <td></td>
                    <td class="note" title={format!("{total} dropped at {socket}{} since it was bound", local.as_ref().map(|l| format!(" ({l})")).unwrap_or_default())}>
                        { format!("kernel dropped {dropped}: receive buffer full") }</td>
                </tr>
            },
            What::Stream { socket, dir, peer, offset, .. } => {
                let (dir_class, label, title) = match dir {
                    Direction::Out => ("out", "↑ write", "written by the socket: what one write call handed the kernel"),
                    Direction::In => ("in", "↓ read", "read by the socket: what one read call returned"),
                };
                let end = offset + p.payload.len() as u64;
                html! {
                    <tr class={classes!("packet-row", dir_class, "stream", selected_class)} {onclick} key={id}
                        data-id={id.to_string()} data-dir={if *dir == Direction::Out { "write" } else { "read" }}>
                        <td class="num">{ row }</td>
                        <td class="num">{ time }</td>
                        <td class="dir" {title}>{ label }</td>
                        <td>{ socket.to_string() }</td>
                        <td class="mono" title={peer.to_string()}>{ ip_name(*peer) }</td>
                        <td class="num">{ p.payload.len() }</td>
                        <td class="mono preview">{ preview }</td>
                        <td class="note" title="Where these bytes sit in this direction of the TCP stream: a stream has no messages, only bytes in order">
                            { format!("TCP bytes {offset}–{}", end.saturating_sub(1)) }</td>
                    </tr>
                }
            }
            What::TcpLink { link, what } => html! {
                <tr class={classes!("packet-row", "link", selected_class)} {onclick} key={id}
                    data-id={id.to_string()} data-dir="tcp-link">
                    <td class="num">{ row }</td>
                    <td class="num">{ time }</td>
                    <td class="dir" title="a TCP link's decision about a connection it carries">{ "⇢ tcp link" }</td>
                    <td>{ link.to_string() }</td>
                    <td class="mono">{ "—" }</td>
                    <td class="num">{ "" }</td>
                    <td></td>
                    <td class="note">{ what.clone() }</td>
                </tr>
            },
            What::Tcp { socket, peer, what } => html! {
                <tr class={classes!("packet-row", "tcp", selected_class)} {onclick} key={id}
                    data-id={id.to_string()} data-dir="tcp">
                    <td class="num">{ row }</td>
                    <td class="num">{ time }</td>
                    <td class="dir" title="something happened to the TCP connection (no bytes)">{ "⇄ tcp" }</td>
                    <td>{ socket.to_string() }</td>
                    <td class="mono">{ peer.as_ref().map_or_else(|| "—".to_string(), name) }</td>
                    <td class="num">{ "" }</td>
                    <td></td>
                    <td class="note">{ what.note() }</td>
                </tr>
            },
            What::Unreachable { socket, to, reason, error, .. } => html! {
                <tr class={classes!("packet-row", "kernel", selected_class)} {onclick} key={id}
                    data-id={id.to_string()} data-dir="icmp">
                    <td class="num">{ row }</td>
                    <td class="num">{ time }</td>
                    <td class="dir" title="an ICMP error came back about a datagram this socket sent">{ "✕ icmp" }</td>
                    <td>{ socket.to_string() }</td>
                    <td class="mono" title={to.to_string()}>{ ip_name(*to) }</td>
                    <td class="num">{ p.payload.len() }</td>
                    <td class="mono preview">{ preview }</td>
                    <td class="note" title={format!("{}. The OS calls it \"{error}\"; a connected socket's next send or receive would fail with it.", reason.describe())}>
                        { reason.short() }</td>
                </tr>
            },
        }
    });
    let evicted = store.evicted;

    html! {
        <section class="panel packets" aria-labelledby="packets-title">
            <div class="panel-head">
                <h2 id="packets-title">{ "Packets" }</h2>
                <span class="count">{ format!("{total} rows") }</span>
                if total > ROWS_DRAWN || evicted > 0 {
                    <span class="hint">{ format!("showing the newest {}", total.min(ROWS_DRAWN)) }</span>
                }
                <label class="check" title="Keep the newest packet in view">
                    <input id="follow" type="checkbox" checked={*follow} onclick={on_follow} />{ "follow" }
                </label>
                <button class="small" onclick={on_clear}>{ "clear" }</button>
            </div>
            <div class="table-scroll" ref={scroller} onscroll={on_scroll}>
                <table id="packet-table">
                    <thead>
                        <tr>
                            <th title="Row number, in the order the list got them (the inspector shows each one's event id)">{ "#" }</th>
                            <th title="Seconds since the session began">{ "time (s)" }</th>
                            <th>{ "dir" }</th>
                            <th title="The lab socket, or the link and direction">{ "where" }</th>
                            <th title="The other end: destination of an out, source of an in (hover for its address)">{ "peer" }</th>
                            <th title="Payload bytes">{ "len" }</th>
                            <th>{ "payload" }</th>
                            <th title="What happened to it on the way: a link's decision, a cut made by the socket's read size, an ICMP error that came back, the kernel's drops">{ "what happened" }</th>
                        </tr>
                    </thead>
                    <tbody>{ for rows }</tbody>
                </table>
                if total == 0 {
                    <p class="empty">{ "Every datagram your sockets send or receive appears here, newest at the bottom." }</p>
                }
            </div>
        </section>
    }
}

pub(super) fn dir_arrow(dir: LinkDir) -> &'static str {
    match dir {
        LinkDir::C2t => "client→target",
        LinkDir::T2c => "target→client",
    }
}

/// Where a link sends a datagram, in a few words.
fn toward(dir: LinkDir) -> &'static str {
    match dir {
        LinkDir::C2t => "to target",
        LinkDir::T2c => "to client",
    }
}

pub(super) fn route(d: &LinkDecision) -> String {
    match d.to {
        Some(to) => format!("{} → {to}", d.from),
        None => format!("{} → (no client)", d.from),
    }
}
