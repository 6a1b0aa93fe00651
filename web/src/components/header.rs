//! The top bar: name, connection state, session; and, when the server refuses the
//! page, why, with a place to give the launch token.

use web_sys::HtmlInputElement;
use yew::prelude::*;

use socklab_protocol::Command;

use super::use_ctx;
use crate::model::{Action, Connection, Origin, token_from};

/// The top bar with the connection state and any notices.
#[component]
pub fn Header() -> Html {
    let ctx = use_ctx();
    let state = &ctx.live;
    let (class, label) = match &state.connection {
        Connection::Connecting => ("status connecting", "connecting…".to_string()),
        Connection::Connected => ("status connected", "connected".to_string()),
        Connection::Reconnecting { attempts } => (
            "status reconnecting",
            if *attempts == 0 {
                "connection lost, reconnecting…".to_string()
            } else {
                format!("reconnecting… (attempt {})", attempts + 1)
            },
        ),
        Connection::Unreachable { attempts } => (
            "status unreachable",
            format!("server not reachable (tried {attempts}×, trying less often)"),
        ),
        Connection::Refused { code, .. } => (
            "status refused",
            match code.as_str() {
                "no_token" => "needs the launch token".to_string(),
                "wrong_token" => "wrong token".to_string(),
                _ => "refused".to_string(),
            },
        ),
        Connection::Busy { .. } => ("status busy", "server full, waiting".to_string()),
    };
    let dismiss = {
        let dispatch = state.dispatcher();
        Callback::from(move |_| dispatch.dispatch(Action::DismissNotices))
    };
    let record = {
        let ctx = ctx.clone();
        let recording = state.recording.is_some();
        Callback::from(move |_| {
            let command = if recording {
                Command::RecordStop
            } else {
                Command::RecordStart { name: None }
            };
            ctx.commands
                .send(&ctx.live.dispatcher(), Origin::Record, command);
        })
    };
    let record_error = state.error(&Origin::Record).map(str::to_owned);
    html! {
        <>
            <header class="topbar">
                <h1>{ "socklab" }</h1>
                <span class="tagline">{ "real sockets, every packet" }</span>
                <span id="conn-status" class={class} title="The page talks to the socklab server over a WebSocket">
                    { label }
                </span>
                if let Some(session) = &state.session {
                    <span class="session" title="Session id: your sockets belong to this session">
                        { format!("session {}", &session[..session.len().min(8)]) }
                    </span>
                }
                if let Some((id, name)) = &state.recording {
                    <span id="recording" class="recording" title={format!("Every event of this session goes into the server's store as recording {id}, from the oldest the session still holds")}>
                        { format!("● recording “{name}”") }</span>
                } else if let Some(r) = &state.recorded {
                    <span id="recorded" class="recorded" title={format!("Recording {} is kept in the server's store (GET /api/recordings/{})", r.id, r.id)}>
                        { format!("recorded “{}”: {} events, {} datagrams", r.name, r.events, r.datagrams) }</span>
                }
                if state.connection == Connection::Connected && state.ended.is_none() {
                    <button id="record-button" class={classes!("small", state.recording.is_some().then_some("on"))} onclick={record.clone()}
                        title="Keep this session in the server's store: every event (the sockets, links, datagrams, decisions and fates), to look at later or export">
                        { if state.recording.is_some() { "■ stop recording" } else { "● record" } }</button>
                }
                if let Some(server) = &state.server {
                    <span class="server">{ server.clone() }</span>
                }
            </header>
            if let Some(reason) = state.recorded.as_ref().filter(|_| state.recording.is_none()).and_then(|r| r.reason.as_ref()) {
                <p id="recording-stopped" class="form-error" role="alert">
                    { format!("The recording stopped by itself, keeping what it had: {reason}") }</p>
            }
            if let Some(message) = record_error {
                <p id="record-error" class="form-error" role="alert">{ message }</p>
            }
            <Access />
            if let Some(ended) = &state.ended {
                <div id="session-ended" class="notices ended" role="status"><p>{ ended.clone() }</p></div>
            }
            if state.gaps.0 > 0 {
                <div id="gaps" class="notices" role="status"><p>
                    { format!(
                        "{} events were dropped by the server's log before this page received them ({} gap{}): the page fell behind a fast session, and the server keeps a bounded history. ",
                        state.gaps.0,
                        state.gaps.1,
                        if state.gaps.1 == 1 { "" } else { "s" }
                    ) }
                    if state.recording.is_none() {
                        { "A recording keeps every event: " }
                        <button class="small" id="gaps-record" onclick={record.clone()}>{ "● record" }</button>
                    } else {
                        { "The recording running keeps every event (the Recordings tab)." }
                    }
                </p></div>
            }
            if state.thinned > 0 {
                <div id="thinned" class="notices" role="status"><p>
                    { format!(
                        "To keep up with a fast session, {} events about single datagrams were left out of this page (by the server while the page was behind, or by the page when they came faster than it draws). Where they were, the timeline draws the server's counts per lane (bars: sent, received, lost in red), and every arrow once you zoom in to fewer than {} datagrams. The flow figures are the server's and count every datagram.",
                        state.thinned,
                        crate::timeline::scale::DETAIL_MAX,
                    ) }
                </p></div>
            }
            if !state.notices.is_empty() {
                <div class="notices" role="status">
                    { for state.notices.iter().map(|n| html! { <p>{ n.clone() }</p> }) }
                    <button class="link" onclick={dismiss}>{ "dismiss" }</button>
                </div>
            }
        </>
    }
}

/// Why the page cannot connect, and what to do about it.
#[component]
fn Access() -> Html {
    let ctx = use_ctx();
    let pasted = use_state(String::new);
    let problem = use_state(|| None::<String>);
    let (message, why) = match &ctx.live.connection {
        Connection::Refused { code, message } => match code.as_str() {
            "no_token" => (
                "This page needs socklab's launch token.".to_string(),
                "socklab only lets in pages that carry the token it prints when it starts, and the address you opened has none.",
            ),
            "wrong_token" => (
                "The token this page has is not this server's.".to_string(),
                "socklab makes a new token every time it starts, so it was probably restarted since this page got its token (or the token was mistyped).",
            ),
            _ => (message.clone(), "The server does not let this page in."),
        },
        Connection::Unreachable { .. } => (
            "Nothing answers at the address this page came from.".to_string(),
            "Is socklab still running? Start it again with `cargo xtask run`; it prints a new address (with a new token) to open.",
        ),
        Connection::Busy { message } => (message.clone(), "The page will try again in a while."),
        _ => return html! {},
    };
    let needs_token = ctx.live.connection.needs_token();
    let on_input = {
        let pasted = pasted.clone();
        Callback::from(move |e: InputEvent| {
            pasted.set(e.target_unchecked_into::<HtmlInputElement>().value())
        })
    };
    let on_submit = {
        let (pasted, problem, commands) = (pasted.clone(), problem.clone(), ctx.commands.clone());
        Callback::from(move |e: SubmitEvent| {
            e.prevent_default();
            match token_from(&pasted) {
                Some(token) => {
                    problem.set(None);
                    commands.use_token(token);
                }
                None => problem.set(Some(
                    "that has no token in it: paste the whole address socklab printed (it ends in ?token=…) or the token alone".into(),
                )),
            }
        })
    };
    html! {
        <div id="access-panel" class="access" role="alert">
            <p class="access-why"><strong>{ message }</strong>{ " " }{ why }</p>
            if needs_token {
                <form class="row" onsubmit={on_submit}>
                    <label>{ "the address socklab printed (socklab is running: open http://…/?token=… in a browser), or the token" }
                        <input id="access-token" class="mono" size="48" value={(*pasted).clone()} oninput={on_input}
                            placeholder="http://127.0.0.1:7070/?token=…" />
                    </label>
                    <button id="access-connect" type="submit">{ "connect" }</button>
                </form>
                if let Some(p) = &*problem {
                    <p id="access-error" class="form-error" role="alert">{ p.clone() }</p>
                }
            }
        </div>
    }
}
