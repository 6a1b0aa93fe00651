//! Binding sockets and the list of bound ones.

use socklab_protocol::{Command, Proto};
use web_sys::{HtmlInputElement, HtmlSelectElement};
use yew::prelude::*;

use super::{FormError, use_ctx};
use crate::model::{Action, Origin};

/// The bind form and the socket list.
#[component]
pub fn SocketsPanel() -> Html {
    let ctx = use_ctx();
    let address = use_state(|| "127.0.0.1".to_string());
    let port = use_state(|| "0".to_string());
    let broadcast = use_state(|| false);
    let multicast = use_state(|| false);

    let on_family = {
        let address = address.clone();
        Callback::from(move |e: Event| {
            address.set(e.target_unchecked_into::<HtmlSelectElement>().value());
        })
    };
    let on_address = {
        let address = address.clone();
        Callback::from(move |e: InputEvent| {
            address.set(e.target_unchecked_into::<HtmlInputElement>().value());
        })
    };
    let on_port = {
        let port = port.clone();
        Callback::from(move |e: InputEvent| {
            port.set(e.target_unchecked_into::<HtmlInputElement>().value());
        })
    };
    let on_bind = {
        let ctx = ctx.clone();
        let address = address.clone();
        let port = port.clone();
        let (broadcast, multicast) = (*broadcast, *multicast);
        Callback::from(move |e: SubmitEvent| {
            e.prevent_default();
            let dispatch = ctx.state.dispatcher();
            let port = match port.trim().parse::<u16>() {
                Ok(p) => p,
                Err(_) => {
                    dispatch.dispatch(Action::LocalError {
                        origin: Origin::Bind,
                        message: Some(format!(
                            "{:?} is not a port: use a number from 0 to 65535 (0 = any free port)",
                            port.trim()
                        )),
                    });
                    return;
                }
            };
            let host = address.trim();
            let addr = if host.contains(':') && !host.starts_with('[') {
                format!("[{host}]:{port}")
            } else {
                format!("{host}:{port}")
            };
            ctx.commands.send(
                &dispatch,
                Origin::Bind,
                Command::Bind {
                    proto: Proto::Udp,
                    addr,
                    broadcast,
                    multicast,
                },
            );
        })
    };

    let sockets = ctx.state.sockets.clone();
    let rows = sockets.iter().map(|socket| {
        let close = {
            let ctx = ctx.clone();
            let id = socket.id.clone();
            Callback::from(move |_| {
                ctx.commands.send(
                    &ctx.state.dispatcher(),
                    Origin::Socket(id.clone()),
                    Command::Close { socket: id.clone() },
                );
            })
        };
        let error = ctx.state.error(&Origin::Socket(socket.id.clone())).map(str::to_owned);
        html! {
            <li class="socket-row" data-socket={socket.id.to_string()} key={socket.id.to_string()}>
                <span class="badge">{ socket.id.to_string() }</span>
                <span class="proto">{ "UDP" }</span>
                <code class="addr">{ socket.local.to_string() }</code>
                <button class="small" onclick={close} title="Close the socket (the OS frees its port)">{ "close" }</button>
                <FormError id={format!("close-error-{}", socket.id)} message={error} />
            </li>
        }
    });

    html! {
        <section class="panel" aria-labelledby="sockets-title">
            <h2 id="sockets-title">{ "Sockets" }</h2>
            <form class="row" onsubmit={on_bind}>
                <label>{ "family" }
                    <select id="bind-family" onchange={on_family}>
                        <option value="127.0.0.1" selected={address.as_str() == "127.0.0.1"}>{ "IPv4 loopback" }</option>
                        <option value="::1" selected={address.as_str() == "::1"}>{ "IPv6 loopback" }</option>
                    </select>
                </label>
                <label>{ "address" }
                    <input id="bind-address" class="mono" value={(*address).clone()} oninput={on_address} size="14" />
                </label>
                <label>{ "port" }
                    <input id="bind-port" class="mono" value={(*port).clone()} oninput={on_port} size="6" inputmode="numeric" />
                </label>
                <label class="check" title="Let this socket send to broadcast addresses (SO_BROADCAST), where the server allows them (--allow-net)">
                    <input id="bind-broadcast" type="checkbox" checked={*broadcast}
                        onclick={{ let b = broadcast.clone(); Callback::from(move |_| b.set(!*b)) }} />{ "broadcast" }</label>
                <label class="check" title="Let this socket send to multicast groups, where the server allows them (--allow-net)">
                    <input id="bind-multicast" type="checkbox" checked={*multicast}
                        onclick={{ let m = multicast.clone(); Callback::from(move |_| m.set(!*m)) }} />{ "multicast" }</label>
                <button id="bind-button" type="submit">{ "bind UDP" }</button>
            </form>
            <p class="hint">{ "Port 0 lets the OS pick a free port. Ports below 1024 are privileged. Sockets may bind to loopback (127.0.0.0/8, ::1) and the networks socklab was started with (--allow-net)." }</p>
            <FormError id="bind-error" message={ctx.state.error(&Origin::Bind).map(str::to_owned)} />
            if sockets.is_empty() {
                <p class="empty">{ "No sockets yet. Bind one, then a second one to send between them." }</p>
            } else {
                <ul id="socket-list" class="sockets">{ for rows }</ul>
            }
        </section>
    }
}
