//! The send form: from a socket, to an address, a payload as text, hex or base64.

use socklab_protocol::limits::max_udp_payload;
use socklab_protocol::{Command, Payload, SocketId};
use web_sys::{HtmlInputElement, HtmlSelectElement, HtmlTextAreaElement};
use yew::prelude::*;

use super::{FormError, use_ctx};
use crate::model::Origin;

/// How a payload is typed.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Notation {
    Text,
    Hex,
    Base64,
}

impl Notation {
    const ALL: [Notation; 3] = [Notation::Text, Notation::Hex, Notation::Base64];

    fn label(self) -> &'static str {
        match self {
            Notation::Text => "text",
            Notation::Hex => "hex",
            Notation::Base64 => "base64",
        }
    }

    fn wrap(self, typed: String) -> Payload {
        match self {
            Notation::Text => Payload::Text(typed),
            Notation::Hex => Payload::Hex(typed),
            Notation::Base64 => Payload::Base64(typed),
        }
    }

    fn placeholder(self) -> &'static str {
        match self {
            Notation::Text => "hello",
            Notation::Hex => "68 65 6c 6c 6f",
            Notation::Base64 => "aGVsbG8=",
        }
    }
}

/// Checks a payload before it is sent: it must decode and fit in one datagram to `to`.
/// Returns its size in bytes.
fn check_payload(payload: &Payload, to: &str) -> Result<usize, String> {
    let bytes = payload.decode().map_err(|e| e.to_string())?;
    let ipv6 = to.trim_start().starts_with('[');
    let max = max_udp_payload(ipv6);
    if bytes.len() > max {
        return Err(format!(
            "payload is {} bytes; one UDP datagram to an {} address carries at most {max}",
            bytes.len(),
            if ipv6 { "IPv6" } else { "IPv4" }
        ));
    }
    Ok(bytes.len())
}

/// The most datagrams one click sends.
const MAX_BURST: u32 = 1000;

fn parse_count(text: &str) -> Result<u32, String> {
    match text.trim().parse::<u32>() {
        Ok(n) if (1..=MAX_BURST).contains(&n) => Ok(n),
        _ => Err(format!("count must be a number from 1 to {MAX_BURST}")),
    }
}

/// The send form.
#[component]
pub fn SendPanel() -> Html {
    let ctx = use_ctx();
    let from = use_state(|| None::<SocketId>);
    let to = use_state(String::new);
    let notation = use_state(|| Notation::Text);
    let typed = use_state(|| "hello".to_string());
    let count = use_state(|| "1".to_string());

    let sockets = ctx.state.sockets.clone();
    // The chosen socket, or the first one when none is chosen (or it was closed).
    let chosen = from
        .as_ref()
        .and_then(|id| sockets.iter().find(|s| &s.id == id))
        .or_else(|| sockets.first())
        .cloned();
    let payload = notation.wrap((*typed).clone());
    let checked = check_payload(&payload, &to);

    let on_from = {
        let from = from.clone();
        Callback::from(move |e: Event| {
            let value = e.target_unchecked_into::<HtmlSelectElement>().value();
            from.set(Some(SocketId::new(value)));
        })
    };
    let on_to = {
        let to = to.clone();
        Callback::from(move |e: InputEvent| {
            to.set(e.target_unchecked_into::<HtmlInputElement>().value())
        })
    };
    let on_typed = {
        let typed = typed.clone();
        Callback::from(move |e: InputEvent| {
            typed.set(e.target_unchecked_into::<HtmlTextAreaElement>().value())
        })
    };
    let repeat = parse_count(&count);
    let on_count = {
        let count = count.clone();
        Callback::from(move |e: InputEvent| {
            count.set(e.target_unchecked_into::<HtmlInputElement>().value())
        })
    };
    let on_send = {
        let ctx = ctx.clone();
        let chosen = chosen.clone();
        let to = to.clone();
        let notation = *notation;
        let typed = (*typed).clone();
        let ready = checked.is_ok();
        let repeat = repeat.clone();
        Callback::from(move |e: SubmitEvent| {
            e.prevent_default();
            let (Some(socket), true, Ok(repeat)) = (&chosen, ready, repeat.clone()) else {
                return;
            };
            let dispatch = ctx.state.dispatcher();
            for n in 1..=repeat {
                // In a text payload, {n} numbers the datagrams of a burst: 1, 2, 3...
                let text = if notation == Notation::Text {
                    typed.replace("{n}", &n.to_string())
                } else {
                    typed.clone()
                };
                let sent = ctx.commands.send(
                    &dispatch,
                    Origin::Send,
                    Command::Send {
                        socket: socket.id.clone(),
                        to: to.trim().to_string(),
                        payload: notation.wrap(text),
                    },
                );
                if !sent {
                    break;
                }
            }
        })
    };

    let notation_buttons = Notation::ALL.iter().map(|&n| {
        let notation = notation.clone();
        let class = if *notation == n {
            "toggle on"
        } else {
            "toggle"
        };
        html! {
            <button type="button" id={format!("notation-{}", n.label())} class={class}
                aria-pressed={(*notation == n).to_string()}
                onclick={Callback::from(move |_| notation.set(n))}>{ n.label() }</button>
        }
    });
    let targets = sockets
        .iter()
        .filter(|s| Some(&s.id) != chosen.as_ref().map(|c| &c.id))
        .map(|s| {
            let to = to.clone();
            let addr = s.local.to_string();
            html! {
                <button type="button" class="chip" title="Send to this lab socket"
                    onclick={Callback::from(move |_| to.set(addr.clone()))}>
                    { format!("{} {}", s.id, s.local) }
                </button>
            }
        });
    let size_note = match &checked {
        Ok(n) => html! { <span class="ok">{ format!("{n} bytes") }</span> },
        Err(problem) => {
            html! { <span id="payload-error" class="form-error">{ problem.clone() }</span> }
        }
    };
    let can_send = chosen.is_some() && checked.is_ok() && repeat.is_ok() && !to.trim().is_empty();

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
                                    { format!("{} {}", s.id, s.local) }
                                </option>
                            }) }
                        </select>
                    </label>
                    <label class="grow">{ "to" }
                        <input id="send-to" class="mono" placeholder="127.0.0.1:9000" value={(*to).clone()} oninput={on_to} />
                    </label>
                </div>
                if sockets.len() > 1 {
                    <div class="chips">{ "lab sockets: " }{ for targets }</div>
                }
                <div class="row">
                    <span class="label">{ "payload as" }</span>
                    { for notation_buttons }
                    { size_note }
                </div>
                <textarea id="send-payload" class="mono" rows="3" placeholder={notation.placeholder()}
                    value={(*typed).clone()} oninput={on_typed} />
                <div class="row">
                    <button id="send-button" type="submit" disabled={!can_send}>
                        { if repeat == Ok(1) { "send datagram".to_string() } else { format!("send {} datagrams", repeat.clone().unwrap_or(0)) } }
                    </button>
                    <label title={format!("Send a burst of up to {MAX_BURST}; {{n}} in a text payload becomes 1, 2, 3…")}>{ "count" }
                        <input id="send-count" class="mono" size="5" value={(*count).clone()} oninput={on_count} />
                    </label>
                    <span class="hint">{ "One send is one datagram. UDP does not promise it arrives." }</span>
                </div>
                if let Err(problem) = &repeat {
                    <p class="form-error">{ problem.clone() }</p>
                }
            </form>
            <FormError id="send-error" message={ctx.state.error(&Origin::Send).map(str::to_owned)} />
        </section>
    }
}
