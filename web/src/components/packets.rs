//! The live packet list and the inspector for the selected packet.

use std::rc::Rc;

use socklab_protocol::Direction;
use socklab_protocol::link::{LinkDir, LinkFate};
use wasm_bindgen::JsCast as _;
use web_sys::{HtmlElement, HtmlInputElement, HtmlSelectElement};
use yew::prelude::*;

use super::{FormError, use_ctx};
use crate::hexdump::preview;
use crate::model::{
    Action, FateKind, LinkDecision, Origin, Place, RowFilter, RowKind, What, fate_words,
    search_bytes,
};

/// Characters of payload shown in a row.
const PREVIEW_CHARS: usize = 40;
/// Rows drawn above and below the screenful in view, so a quick scroll finds them.
const OVERSCAN: usize = 40;
/// Up to this many rows pass the filters, all are drawn (as cheap as a screenful).
const DRAW_ALL: usize = 1_000;
/// A row's height before the page has measured one, pixels.
const ROW_PX: f64 = 25.0;
/// How often the rows a fate or flow filter shows are counted again while fates come,
/// ms.
const ARROWS_EVERY_MS: u32 = 250;
/// How close to the bottom (in pixels) still counts as "at the bottom".
const BOTTOM_SLACK_PX: i32 = 24;

pub(super) fn seconds(t_ns: u64) -> String {
    format!("{:.6}", t_ns as f64 / 1e9)
}

/// Where the list is scrolled, as the last scroll left it.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Scrolled {
    /// Pixels from the top.
    top: f64,
    /// The height in view.
    height: f64,
}

/// Which rows the list shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Source {
    /// The rows the page holds.
    Page,
    /// The rows of the window the timeline fetched from the server.
    Timeline,
    /// The rows the list fetched from the server itself, by time.
    Server,
}

/// How many events one of the list's own fetches takes at most.
const LIST_PAGE: u32 = 3_000;

/// The packet list: every row the page holds (20,000 at most), drawn a screenful at a
/// time, with filters, a search by bytes, and auto-follow.
#[derive(Properties, PartialEq)]
pub struct PacketsProps {
    /// Whether its tab is shown: hidden, the list draws no rows (at a high rate, rows
    /// nobody sees cost the page much of its time).
    pub visible: bool,
}

#[component]
pub fn PacketsPanel(props: &PacketsProps) -> Html {
    let ctx = use_ctx();
    let visible = props.visible;
    let follow = use_state(|| true);
    let scroller = use_node_ref();
    let state = &ctx.state;
    // Which rows: those the page holds, those of the window the timeline fetched from
    // the server (where the page was spared datagrams), or those the list fetched
    // itself (any time of the session). With each, the timeline whose arrows say what
    // became of them, and the rows' version (a new store for each window).
    let source_kind = use_state(|| Source::Page);
    let (source, version, arrows) = match (*source_kind, &state.list_window) {
        (Source::Page, _) => (
            state.packets.clone(),
            state.packets_version,
            state.timeline.clone(),
        ),
        (Source::Timeline, _) => (
            state.window_packets.clone(),
            Rc::as_ptr(&state.window_packets) as usize as u64,
            state.timeline.clone(),
        ),
        (Source::Server, Some(w)) => (
            w.rows.clone(),
            Rc::as_ptr(w) as usize as u64,
            w.timeline.clone(),
        ),
        (Source::Server, None) => (Rc::default(), 0, state.timeline.clone()),
    };
    let fetched = *source_kind != Source::Page;
    let filter = use_state(RowFilter::default);
    let search = use_state(String::new);
    let search_error = use_state(|| None::<String>);
    let scrolled = use_state(|| Scrolled {
        top: 0.0,
        height: 600.0,
    });
    // The rows' height as measured (rows with a long note wrap), pixels.
    let row_px = use_mut_ref(|| ROW_PX);
    // A row to bring into view once drawn (a reveal from the timeline).
    let bring = use_mut_ref(|| None::<usize>);
    // What became of each datagram changes as fates come: counted again at most every
    // ARROWS_EVERY_MS while a fate or flow filter is chosen.
    let arrows_version = super::use_settled(state.timeline_version, ARROWS_EVERY_MS);
    let matching = {
        let packets = source.clone();
        let timeline = arrows.clone();
        let arrows_version = if filter.needs_arrows() {
            arrows_version
        } else {
            0
        };
        use_memo(
            (version, fetched, (*filter).clone(), arrows_version),
            move |(_, _, filter, _)| packets.borrow().matching(filter, &timeline.borrow()),
        )
    };

    // Keep the newest row in view while following.
    {
        let scroller = scroller.clone();
        let following = *follow;
        use_effect_with((version, following, matching.len(), visible), move |_| {
            if following
                && visible
                && let Some(el) = scroller.cast::<HtmlElement>()
            {
                el.set_scroll_top(el.scroll_height());
            }
        });
    }
    // A stretch fetched from the server shows from its first row.
    {
        let (scroller, scrolled, follow) = (scroller.clone(), scrolled.clone(), follow.clone());
        let server = *source_kind == Source::Server;
        use_effect_with((server, version), move |&(server, _)| {
            if server && let Some(el) = scroller.cast::<HtmlElement>() {
                follow.set(false);
                el.set_scroll_top(0);
                scrolled.set(Scrolled {
                    top: 0.0,
                    height: f64::from(el.client_height()),
                });
            }
        });
    }
    // Shown from the timeline or the inspector: its row, in view (every row shows
    // again if the filters hid it).
    {
        let (packets, filter, follow, bring) = (
            source.clone(),
            filter.clone(),
            follow.clone(),
            bring.clone(),
        );
        let matching = matching.clone();
        use_effect_with(state.reveal, move |reveal| {
            if let Some(r) = reveal.filter(|r| r.place == Place::List)
                && let Some(position) = packets.borrow().position_of(r.id)
            {
                follow.set(false);
                match matching.binary_search(&(position as u32)) {
                    Ok(index) => *bring.borrow_mut() = Some(index),
                    Err(_) => {
                        filter.set(RowFilter::default());
                        *bring.borrow_mut() = Some(position);
                    }
                }
            }
        });
    }
    // After each drawing: spacers sized, and a revealed row brought into view.
    {
        let (scroller, row_px, bring, scrolled) = (
            scroller.clone(),
            row_px.clone(),
            bring.clone(),
            scrolled.clone(),
        );
        use_effect(move || {
            let Some(el) = scroller.cast::<HtmlElement>() else {
                return;
            };
            if let Ok(spacers) = el.query_selector_all("tr.spacer td") {
                for i in 0..spacers.length() {
                    if let Some(td) = spacers
                        .item(i)
                        .and_then(|n| n.dyn_into::<HtmlElement>().ok())
                        && let Some(px) = td.get_attribute("data-px")
                    {
                        let _ = td.style().set_property("height", &format!("{px}px"));
                    }
                }
            }
            // Hidden, the list has no rows and no height: the row is brought into view
            // once its tab shows.
            if !visible {
                return;
            }
            if let Some(index) = bring.borrow_mut().take() {
                let height = f64::from(el.client_height());
                let top = (index as f64 * *row_px.borrow() - height / 2.0).max(0.0);
                el.set_scroll_top(top as i32);
                scrolled.set(Scrolled { top, height });
            }
        });
    }
    let on_scroll = {
        let (follow, scroller, scrolled) = (follow.clone(), scroller.clone(), scrolled.clone());
        let row_px = row_px.clone();
        Callback::from(move |_: Event| {
            if let Some(el) = scroller.cast::<HtmlElement>() {
                // The rows' height, measured where scrolling has laid them out anyway
                // (measuring after every drawing forced a layout of the whole page).
                if let Ok(rows) = el.query_selector_all("tr.packet-row") {
                    let n = rows.length();
                    let first = rows
                        .item(0)
                        .and_then(|r| r.dyn_into::<web_sys::Element>().ok());
                    let last = n
                        .checked_sub(1)
                        .and_then(|i| rows.item(i))
                        .and_then(|r| r.dyn_into::<web_sys::Element>().ok());
                    if let (Some(first), Some(last)) = (first, last)
                        && n > 1
                    {
                        let span = last.get_bounding_client_rect().bottom()
                            - first.get_bounding_client_rect().top();
                        let measured = span / f64::from(n);
                        if measured > 4.0 {
                            *row_px.borrow_mut() = measured;
                        }
                    }
                }

                let at_bottom =
                    el.scroll_top() + el.client_height() >= el.scroll_height() - BOTTOM_SLACK_PX;
                if at_bottom != *follow {
                    follow.set(at_bottom);
                }
                let now = Scrolled {
                    top: f64::from(el.scroll_top()),
                    height: f64::from(el.client_height()),
                };
                // Following, the newest rows are drawn wherever the list is scrolled: the
                // scroll it makes itself to follow them (one per update) draws nothing
                // new, and drawing again for it doubled the page's work at high rates.
                let changed = if at_bottom && *follow {
                    now.height != scrolled.height
                } else {
                    now != *scrolled
                };
                if changed {
                    scrolled.set(now);
                }
            }
        })
    };
    let on_kind = {
        let filter = filter.clone();
        Callback::from(move |e: Event| {
            let value = e.target_unchecked_into::<HtmlSelectElement>().value();
            let kind = RowKind::ALL
                .iter()
                .find(|(_, words)| *words == value)
                .map_or(RowKind::All, |(k, _)| *k);
            filter.set(RowFilter {
                kind,
                ..(*filter).clone()
            });
        })
    };
    let on_fate = {
        let filter = filter.clone();
        Callback::from(move |e: Event| {
            let value = e.target_unchecked_into::<HtmlSelectElement>().value();
            let fate = FateKind::ALL
                .iter()
                .find(|(_, words)| *words == value)
                .map_or(FateKind::Any, |(k, _)| *k);
            filter.set(RowFilter {
                fate,
                ..(*filter).clone()
            });
        })
    };
    let on_flow = {
        let filter = filter.clone();
        Callback::from(move |e: Event| {
            let value = e.target_unchecked_into::<HtmlSelectElement>().value();
            filter.set(RowFilter {
                flow: value.parse().ok(),
                ..(*filter).clone()
            });
        })
    };
    let on_place = {
        let filter = filter.clone();
        Callback::from(move |e: Event| {
            let value = e.target_unchecked_into::<HtmlSelectElement>().value();
            filter.set(RowFilter {
                place: (!value.is_empty()).then_some(value),
                ..(*filter).clone()
            });
        })
    };
    let on_search = {
        let (filter, search, search_error) = (filter.clone(), search.clone(), search_error.clone());
        Callback::from(move |e: InputEvent| {
            let text = e.target_unchecked_into::<HtmlInputElement>().value();
            match search_bytes(&text) {
                Ok(bytes) => {
                    search_error.set(None);
                    filter.set(RowFilter {
                        bytes,
                        ..(*filter).clone()
                    });
                }
                Err(message) => search_error.set(Some(message)),
            }
            search.set(text);
        })
    };
    let on_follow = {
        let follow = follow.clone();
        Callback::from(move |_| follow.set(!*follow))
    };
    let on_source = {
        let source_kind = source_kind.clone();
        Callback::from(move |e: Event| {
            let value = e.target_unchecked_into::<HtmlSelectElement>().value();
            source_kind.set(match value.as_str() {
                "timeline" => Source::Timeline,
                "server" => Source::Server,
                _ => Source::Page,
            });
        })
    };
    // Asks the server for the rows of `from..=to` (ns), up to LIST_PAGE events: the
    // live session's log (and its recording), or the recording being replayed.
    let fetch = {
        let ctx = ctx.clone();
        move |from_ns: u64, to_ns: u64| {
            let command = socklab_protocol::Command::Window {
                from_ns,
                to_ns: to_ns.max(from_ns),
                limit: Some(LIST_PAGE),
            };
            match &*ctx.replay {
                Some(replay) => {
                    super::replay::ask_into(
                        replay.id,
                        &command,
                        ctx.state.dispatcher(),
                        |e| match e {
                            socklab_protocol::Event::Window(w) => Action::ListWindow(Box::new(w)),
                            other => Action::Received(Box::new(other)),
                        },
                    );
                }
                None => {
                    ctx.commands
                        .send(&ctx.live.dispatcher(), Origin::Packets, command);
                }
            }
        }
    };
    let at = use_state(String::new);
    let on_at = {
        let at = at.clone();
        Callback::from(move |e: InputEvent| {
            at.set(e.target_unchecked_into::<HtmlInputElement>().value())
        })
    };
    // The rows fetched last: the times of the first and last, ns.
    let fetched_span = state.list_window.as_ref().and_then(|w| {
        let rows = w.rows.borrow();
        let first = rows.nth(0)?.t_ns;
        let last = rows.nth(rows.len().checked_sub(1)?)?.t_ns;
        Some((first, last))
    });
    let on_go = {
        let (fetch, at, dispatch) = (fetch.clone(), at.clone(), state.dispatcher());
        Callback::from(move |e: SubmitEvent| {
            e.prevent_default();
            match at.trim().parse::<f64>() {
                Ok(s) if s.is_finite() && s >= 0.0 => {
                    dispatch.dispatch(Action::LocalError {
                        origin: Origin::Packets,
                        message: None,
                    });
                    fetch((s * 1e9) as u64, u64::MAX);
                }
                _ => dispatch.dispatch(Action::LocalError {
                    origin: Origin::Packets,
                    message: Some(format!(
                        "“{}” is not a time: give the seconds since the session began, such as 2.5",
                        at.trim()
                    )),
                }),
            }
        })
    };
    let on_later = {
        let fetch = fetch.clone();
        Callback::from(move |_: MouseEvent| {
            if let Some((_, last)) = fetched_span {
                fetch(last.saturating_add(1), u64::MAX);
            }
        })
    };
    let on_earlier = {
        let fetch = fetch.clone();
        Callback::from(move |_: MouseEvent| {
            if let Some((first, last)) = fetched_span {
                // Back by the span shown (at least a millisecond).
                let span = last.saturating_sub(first).max(1_000_000);
                let to = first.saturating_sub(1);
                fetch(to.saturating_sub(span), to);
            }
        })
    };
    let on_clear = {
        let dispatch = state.dispatcher();
        Callback::from(move |_| dispatch.dispatch(Action::ClearPackets))
    };

    let store = source.borrow();
    let total = store.len();
    let shown = matching.len();
    let row_h = *row_px.borrow();
    let screenful = (scrolled.height / row_h).ceil() as usize + 1;
    // The rows drawn: a screenful around where the list is scrolled (at the bottom
    // while following), and OVERSCAN more each side.
    let first = if shown <= DRAW_ALL {
        0
    } else if *follow {
        shown.saturating_sub(screenful + OVERSCAN)
    } else {
        ((scrolled.top / row_h) as usize)
            .saturating_sub(OVERSCAN)
            .min(shown.saturating_sub(1))
    };
    let last = if !visible {
        first
    } else if shown <= DRAW_ALL {
        shown
    } else {
        (first + screenful + 2 * OVERSCAN).min(shown)
    };
    let selected = state.selected;
    let name = |addr: &socklab_protocol::Endpoint| state.name_of(addr);
    let ip_name = |addr: std::net::SocketAddr| state.name_of(&addr.into());
    // A row is keyed by its event while every row is drawn, so that rows leaving or
    // joining the list move no others. A window's rows are keyed by their place in it:
    // following a fast session, every row of the window is new at each update, and
    // rewriting the rows in place costs far less than making them anew.
    let windowed = shown > DRAW_ALL;
    let rows = matching[first..last].iter().filter_map(|&i| store.numbered(i as usize)).enumerate().map(|(slot, (row, p))| {
        let dispatch = state.dispatcher();
        let id = p.id;
        let key = if windowed { slot as u64 } else { id };
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
                    <tr class={classes!("packet-row", dir_class, selected_class)} {onclick} key={key}
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
                            <td class="note fate" title="What became of it, as the flow analysis concluded (the inspector says more)">
                                { arrows.borrow().arrow_of(id).and_then(fate_words).unwrap_or_default() }</td>
                        }
                    </tr>
                }
            }
            What::Link(d) => {
                let dropped = d.fate == LinkFate::Dropped;
                let (class, label) = if dropped { ("link dropped", "✕ drop") } else { ("link", "⇢ link") };
                html! {
                    <tr class={classes!("packet-row", class, selected_class)} {onclick} key={key}
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
                <tr class={classes!("packet-row", "kernel", selected_class)} {onclick} key={key}
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
                    <tr class={classes!("packet-row", dir_class, "stream", selected_class)} {onclick} key={key}
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
                <tr class={classes!("packet-row", "link", selected_class)} {onclick} key={key}
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
                <tr class={classes!("packet-row", "tcp", selected_class)} {onclick} key={key}
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
                <tr class={classes!("packet-row", "kernel", selected_class)} {onclick} key={key}
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
    let places: Vec<String> = state
        .sockets
        .iter()
        .map(|s| s.id.to_string())
        .chain(state.links.iter().map(|l| l.id.to_string()))
        .collect();
    let flows: Vec<(u16, String)> = state
        .timeline
        .borrow()
        .flows
        .iter()
        .enumerate()
        .map(|(i, (src, dst))| (i as u16, format!("{} → {}", name(src), name(dst))))
        .collect();
    let f = (*filter).clone();
    let spacer = |rows: usize| {
        if rows == 0 {
            return Html::default();
        }
        // Its height is set after drawing (the page's security policy allows no style
        // attributes).
        html! { <tr class="spacer" aria-hidden="true"><td colspan="8" data-px={format!("{:.0}", rows as f64 * row_h)}></td></tr> }
    };

    html! {
        <section class="panel packets" aria-labelledby="packets-title">
            <div class="panel-head">
                <h2 id="packets-title">{ "Packets" }</h2>
                <span id="packet-count" class="count" data-shown={shown.to_string()} data-total={total.to_string()}>
                    { if f.is_empty() { format!("{total} rows") } else { format!("{shown} of {total} rows") } }</span>
                if evicted > 0 {
                    <span class="hint" title="The page keeps the newest 20,000 rows; the server's log and a recording keep more">{ format!("the first {evicted} left the page") }</span>
                }
                <label class="check" title="Keep the newest packet in view">
                    <input id="follow" type="checkbox" checked={*follow} onclick={on_follow} />{ "follow" }
                </label>
                <button class="small" onclick={on_clear}>{ "clear" }</button>
            </div>
            <div class="row packet-filters">
                <select id="packet-kind" onchange={on_kind} title="Which rows show">
                    { for RowKind::ALL.iter().map(|(kind, words)| html! {
                        <option value={*words} selected={f.kind == *kind}>{ *words }</option>
                    }) }
                </select>
                <select id="packet-place" onchange={on_place} title="Only one socket's or link's rows">
                    <option value="" selected={f.place.is_none()}>{ "every socket and link" }</option>
                    { for places.iter().map(|p| html! {
                        <option value={p.clone()} selected={f.place.as_deref() == Some(p.as_str())}>{ p.clone() }</option>
                    }) }
                </select>
                <select id="packet-fate" onchange={on_fate} title="Only the datagrams that became this (sent and received rows)">
                    { for FateKind::ALL.iter().map(|(fate, words)| html! {
                        <option value={*words} selected={f.fate == *fate}>{ *words }</option>
                    }) }
                </select>
                <select id="packet-flow" onchange={on_flow} title="Only one flow's datagrams (source → destination, across links)">
                    <option value="" selected={f.flow.is_none()}>{ "every flow" }</option>
                    { for flows.iter().map(|(i, words)| html! {
                        <option value={i.to_string()} selected={f.flow == Some(*i)}>{ words.clone() }</option>
                    }) }
                </select>
                <input id="packet-search" class="mono" placeholder="search bytes: text, or hex 53 4c" value={(*search).clone()} oninput={on_search}
                    title="Rows whose payload holds these bytes: type text, or hex after “hex ” or “0x”" aria-invalid={search_error.is_some().then_some("true")} />
            </div>
            if let Some(message) = &*search_error {
                <p id="packet-search-error" class="form-error" role="alert">{ message.clone() }</p>
            }
            if ctx.state.thinned > 0 || evicted > 0 || fetched {
                <div class="row packet-source">
                    <select id="packets-source" onchange={on_source} title="Which rows the list shows: those this page holds, or rows fetched from the server (the page was spared some, or has forgotten the oldest)">
                        <option value="page" selected={*source_kind == Source::Page}>{ "this page's rows" }</option>
                        if ctx.state.thinned > 0 {
                            <option value="timeline" selected={*source_kind == Source::Timeline}>
                                { format!("the timeline's window, from the server ({})", state.window_packets.borrow().len()) }</option>
                        }
                        <option value="server" selected={*source_kind == Source::Server}>{ "any time, from the server" }</option>
                    </select>
                    if *source_kind == Source::Server {
                        <form class="row" onsubmit={on_go}>
                            <label>{ "from" }<input id="packets-at" class="mono short" placeholder="s" value={(*at).clone()} oninput={on_at}
                                title="Seconds since the session began" />{ "s" }</label>
                            <button id="packets-go" class="small" type="submit" title={format!("The first {LIST_PAGE} events from this time on")}>{ "show" }</button>
                        </form>
                        <button id="packets-earlier" class="small" onclick={on_earlier} disabled={fetched_span.is_none()}
                            title="The stretch just before, as long as the one shown">{ "◀ earlier" }</button>
                        <button id="packets-later" class="small" onclick={on_later} disabled={fetched_span.is_none()}
                            title="What comes after the last row shown">{ "later ▶" }</button>
                    }
                </div>
                if *source_kind == Source::Server {
                    <p id="packets-range" class="hint">{ match (&state.list_window, fetched_span) {
                        (Some(w), Some((first, last))) => format!(
                            "{} rows from {} s to {} s, fetched from the server{}",
                            w.rows.borrow().len(), seconds(first), seconds(last),
                            if w.complete { "" } else { " (the first of that stretch: “later ▶” for the rest)" }
                        ),
                        (Some(_), None) => "nothing was sent or received then".to_string(),
                        (None, _) => "Give a time and press show: the rows from then on come from the server (its log, or the recording).".to_string(),
                    } }</p>
                    <FormError id="packets-error" message={state.error(&Origin::Packets).map(str::to_owned)} code={state.error_code(&Origin::Packets)} />
                }
            }
            if ctx.state.thinned > 0 {
                <p id="packets-thinned" class="hint warn">{ format!(
                    "{} events about single datagrams {}, so they are not in this list. On the timeline, zoom into the stretches marked amber by the time axis: their arrows come from the server, and clicking one shows its fate and bytes.",
                    ctx.state.thinned,
                    if ctx.replay.is_some() {
                        "come before the page of the recording the page holds"
                    } else {
                        "were not sent to this page, to keep it current"
                    }
                ) }</p>
            }
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
                            <th title="What happened to it: its fate (delivered, lost and why, reordered, an extra copy), a link's decision, a cut made by the socket's read size, an ICMP error that came back, the kernel's drops">{ "what happened" }</th>
                        </tr>
                    </thead>
                    <tbody>{ spacer(first) }{ for rows }{ spacer(shown - last) }</tbody>
                </table>
                if total == 0 {
                    <p class="empty">{ "Every datagram your sockets send or receive appears here, newest at the bottom." }</p>
                } else if shown == 0 {
                    <p class="empty">{ "No row matches the filters." }</p>
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
