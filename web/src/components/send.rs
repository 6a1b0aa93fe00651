//! The send form: from a socket, to an address, a payload as text, hex or base64.

use socklab_protocol::SocketId;
use web_sys::HtmlSelectElement;
use yew::prelude::*;

use super::{Destinations, FormError, on_input, use_clear_error_on_change, use_ctx};
use crate::forms::{MAX_BURST, Notation, SendForm};
use crate::model::{Action, Origin};

/// The send form.
#[component]
pub fn SendPanel() -> Html {
    let ctx = use_ctx();
    let from = use_state(|| None::<SocketId>);
    let form = use_state(SendForm::default);
    use_clear_error_on_change(&ctx, Origin::Send, (*form).clone());

    let sockets = ctx.state.sockets.clone();
    // The chosen socket, or the first one when none is chosen (or it was closed).
    let chosen = from
        .as_ref()
        .and_then(|id| sockets.iter().find(|s| &s.id == id))
        .or_else(|| sockets.first())
        .cloned();
    let checked = form.payload_len();
    let repeat = form.repeat();

    let on_from = {
        let from = from.clone();
        Callback::from(move |e: Event| {
            let value = e.target_unchecked_into::<HtmlSelectElement>().value();
            from.set(Some(SocketId::new(value)));
        })
    };
    let on_send = {
        let (ctx, form, chosen) = (ctx.clone(), form.clone(), chosen.clone());
        Callback::from(move |e: SubmitEvent| {
            e.prevent_default();
            let Some(socket) = &chosen else {
                return;
            };
            let dispatch = ctx.state.dispatcher();
            match form.commands(
                &socket.id,
                socket.peer.is_some(),
                socket.proto == socklab_protocol::Proto::Tcp,
            ) {
                Ok(commands) => {
                    for command in commands {
                        if !ctx.commands.send(&dispatch, Origin::Send, command) {
                            break;
                        }
                    }
                }
                Err(message) => dispatch.dispatch(Action::LocalError {
                    origin: Origin::Send,
                    message: Some(message),
                }),
            }
        })
    };

    let on_connect = {
        let (ctx, form, chosen) = (ctx.clone(), form.clone(), chosen.clone());
        Callback::from(move |_: MouseEvent| {
            let Some(socket) = &chosen else {
                return;
            };
            let dispatch = ctx.state.dispatcher();
            match form.connect(&socket.id) {
                Ok(command) => {
                    ctx.commands.send(&dispatch, Origin::Send, command);
                }
                Err(message) => dispatch.dispatch(Action::LocalError {
                    origin: Origin::Send,
                    message: Some(message),
                }),
            }
        })
    };
    let peer = chosen.as_ref().and_then(|c| c.peer.clone());
    let tcp = chosen
        .as_ref()
        .is_some_and(|c| c.proto == socklab_protocol::Proto::Tcp);

    // Switching notation converts what was typed, when the bytes allow it.
    let switch = |n: Notation| {
        let (ctx, form) = (ctx.clone(), form.clone());
        Callback::from(move |_: MouseEvent| match form.with_notation(n) {
            Ok(next) => form.set(next),
            Err(message) => ctx.state.dispatcher().dispatch(Action::LocalError {
                origin: Origin::Send,
                message: Some(message),
            }),
        })
    };
    let notation_buttons = Notation::ALL.iter().map(|&n| {
        let on = form.notation == n;
        html! {
            <button type="button" id={format!("notation-{}", n.label())} class={if on { "toggle on" } else { "toggle" }}
                aria-pressed={on.to_string()}
                onclick={switch(n)}>{ n.label() }</button>
        }
    });
    let on_pick = {
        let form = form.clone();
        Callback::from(move |addr: socklab_protocol::Endpoint| {
            form.set(SendForm {
                to: addr.to_string(),
                ..(*form).clone()
            })
        })
    };
    let size_note = match &checked {
        Ok(n) => {
            html! { <span class="ok">{ format!("{n} byte{}", if *n == 1 { "" } else { "s" }) }</span> }
        }
        Err(problem) => {
            html! { <span id="payload-error" class="form-error">{ problem.clone() }</span> }
        }
    };
    let can_send = chosen.is_some()
        && checked.is_ok()
        && repeat.is_ok()
        && if tcp {
            peer.is_some()
        } else {
            !form.to.trim().is_empty() || peer.is_some()
        };

    html! {
        <section class="panel" aria-labelledby="send-title">
            <h2 id="send-title">{ "Send" }</h2>
            if sockets.is_empty() {
                <p class="empty">{ "Bind a socket first: datagrams are sent from one of your sockets." }</p>
            }
            <form class="stack" onsubmit={on_send}>
                <div class="row">
                    <label>{ "from" }
                        <select id="send-from" onchange={on_from} disabled={sockets.is_empty()}>
                            { for sockets.iter().map(|s| html! {
                                <option value={s.id.to_string()} selected={Some(&s.id) == chosen.as_ref().map(|c| &c.id)}>
                                    { format!("{} {}", s.id, crate::timeline::compact(&s.local)) }
                                </option>
                            }) }
                        </select>
                    </label>
                    <label class="grow">{ "to" }
                        <input id="send-to" class="mono"
                            placeholder={match (tcp, peer) {
                                (true, Some(p)) => format!("TCP: bytes go to {p}"),
                                (true, None) => "TCP: the address to connect to".to_string(),
                                (false, Some(p)) => format!("empty: its peer {p}"),
                                (false, None) if chosen.as_ref().is_some_and(|c| c.local.is_unix()) => {
                                    "unix:echo, unix:@name or unix:/path".to_string()
                                }
                                (false, None) => "127.0.0.1:9000".to_string(),
                            }}
                            value={form.to.clone()} oninput={on_input(&form, |f, v| f.to = v)} />
                    </label>
                    <button id="send-connect" type="button" class="small" disabled={chosen.is_none() || form.to.trim().is_empty()} onclick={on_connect}
                        title="connect(): make this address the socket's default destination (a send may then leave the address out) and the only address it receives from; the kernel discards datagrams from anyone else. Sends nothing. A connected socket also hears when nobody listens there: its next call fails with ECONNREFUSED.">
                        { "connect" }</button>
                </div>
                <Destinations id="send-chips" {on_pick} exclude={chosen.as_ref().map(|c| c.local.clone())} />
                <div class="row">
                    <span class="label">{ "payload as" }</span>
                    { for notation_buttons }
                    { size_note }
                </div>
                <textarea id="send-payload" class="mono" rows="3" placeholder={form.notation.placeholder()}
                    value={form.typed.clone()} oninput={on_input(&form, |f, v| f.typed = v)} />
                <div class="row">
                    <button id="send-button" type="submit" disabled={!can_send}>
                        { match (&repeat, tcp) {
                            (Ok(1) | Err(_), true) => "write bytes".to_string(),
                            (Ok(n), true) => format!("write {n} times"),
                            (Ok(1) | Err(_), false) => "send datagram".to_string(),
                            (Ok(n), false) => format!("send {n} datagrams"),
                        } }
                    </button>
                    <label title={format!("Send a burst of up to {MAX_BURST}; {{n}} in a text payload becomes 1, 2, 3…")}>{ "count" }
                        <input id="send-count" class="mono" size="5" value={form.count.clone()} oninput={on_input(&form, |f, v| f.count = v)} />
                    </label>
                    <span class="hint">{ if tcp {
                        "One send is one write of bytes into the connection's stream: the other end reads bytes, not messages."
                    } else {
                        "One send is one datagram. UDP does not promise it arrives."
                    } }</span>
                </div>
                if let Err(problem) = &repeat {
                    <p class="form-error">{ problem.clone() }</p>
                }
            </form>
            <FormError id="send-error" message={ctx.state.error(&Origin::Send).map(str::to_owned)} code={ctx.state.error_code(&Origin::Send)} />
        </section>
    }
}
