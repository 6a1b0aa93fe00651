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
    let rcvbuf = use_state(String::new);

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
    let on_rcvbuf = {
        let rcvbuf = rcvbuf.clone();
        Callback::from(move |e: InputEvent| {
            rcvbuf.set(e.target_unchecked_into::<HtmlInputElement>().value());
        })
    };
    let on_bind = {
        let ctx = ctx.clone();
        let address = address.clone();
        let port = port.clone();
        let rcvbuf = rcvbuf.clone();
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
            let recv_buffer_bytes = match parse_bytes(&rcvbuf) {
                Ok(b) => b,
                Err(message) => {
                    dispatch.dispatch(Action::LocalError {
                        origin: Origin::Bind,
                        message: Some(message),
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
                    recv_buffer_bytes,
                },
            );
        })
    };

    let sockets = ctx.state.sockets.clone();
    let gone = ctx.state.ended.is_some();
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
            <li class={classes!("socket-row", gone.then_some("gone"))} data-socket={socket.id.to_string()} key={socket.id.to_string()}
                title={gone.then_some("gone: the session it belonged to has ended")}>
                <span class="badge">{ socket.id.to_string() }</span>
                <span class="proto">{ "UDP" }</span>
                <code class="addr">{ socket.local.to_string() }</code>
                if let Some(b) = socket.recv_buffer_bytes {
                    <span class="rcvbuf" title="The receive buffer the kernel granted this socket (SO_RCVBUF): what arrives while it is full is dropped">
                        { format!("buffer {}", show_bytes(b)) }</span>
                }
                if socket.kernel_drops > 0 {
                    <span class="kernel-drops" title="Datagrams the kernel dropped before socklab could read them, because this socket's receive buffer was full. UDP does not retransmit: they are gone. The count arrives with the next datagram the socket receives.">
                        { format!("kernel dropped {}", socket.kernel_drops) }</span>
                }
                if gone {
                    <span class="gone-label">{ "gone" }</span>
                } else {
                    <button class="small" onclick={close} title="Close the socket (the OS frees its port)">{ "close" }</button>
                }
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
                <label title="The receive buffer to ask the kernel for (SO_RCVBUF), in bytes, or with k / m for KiB / MiB. Empty: 4 MiB. A small one shows what happens when datagrams arrive faster than they are read: the kernel drops them.">{ "receive buffer" }
                    <input id="bind-rcvbuf" class="mono" value={(*rcvbuf).clone()} oninput={on_rcvbuf} size="6" placeholder="4m" />
                </label>
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

/// A byte count as typed: digits, optionally followed by `k` (KiB) or `m` (MiB); empty
/// means none given.
fn parse_bytes(text: &str) -> Result<Option<u64>, String> {
    let t = text.trim().to_ascii_lowercase();
    if t.is_empty() {
        return Ok(None);
    }
    let (digits, unit) = match t.strip_suffix('k').or_else(|| t.strip_suffix("kib")) {
        Some(d) => (d, 1024),
        None => match t.strip_suffix('m').or_else(|| t.strip_suffix("mib")) {
            Some(d) => (d, 1024 * 1024),
            None => (t.as_str(), 1),
        },
    };
    digits
        .trim()
        .parse::<u64>()
        .ok()
        .and_then(|n| n.checked_mul(unit))
        .filter(|&n| n > 0)
        .map(Some)
        .ok_or_else(|| {
            format!(
                "{:?} is not a buffer size: give bytes, or a number with k or m (for example 64k)",
                text.trim()
            )
        })
}

/// Bytes for a person: `208 KiB`, `8 MiB`, `2.3 KiB`, `900 B`.
fn show_bytes(b: u64) -> String {
    const KIB: u64 = 1024;
    const MIB: u64 = 1024 * 1024;
    if b >= MIB && b.is_multiple_of(MIB) {
        format!("{} MiB", b / MIB)
    } else if b >= 100 * KIB || (b >= KIB && b.is_multiple_of(KIB)) {
        format!("{} KiB", b / KIB)
    } else if b >= KIB {
        format!("{:.1} KiB", b as f64 / KIB as f64)
    } else {
        format!("{b} B")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buffer_sizes_read_as_a_person_writes_them() {
        for (text, want) in [
            ("", Ok(None)),
            ("  ", Ok(None)),
            ("4096", Ok(Some(4096))),
            ("64k", Ok(Some(65_536))),
            ("64 KiB", Ok(Some(65_536))),
            ("4M", Ok(Some(4 << 20))),
        ] {
            assert_eq!(parse_bytes(text), want, "{text:?}");
        }
        for bad in ["0", "-1", "lots", "4g", "99999999999999999999m"] {
            assert!(parse_bytes(bad).is_err(), "{bad:?}");
        }
        assert_eq!(show_bytes(8 << 20), "8 MiB");
        assert_eq!(show_bytes(425_984), "416 KiB");
        assert_eq!(show_bytes(900), "900 B");
        assert_eq!(show_bytes(4608), "4.5 KiB");
    }
}
