//! Binding sockets and the list of bound ones.

use socklab_protocol::Command;
use yew::prelude::*;

use super::{FormError, on_click, on_input, on_select, submit, use_clear_error_on_change, use_ctx};
use crate::forms::{BindForm, SocketKind};
use crate::model::Origin;

/// The bind form and the socket list.
#[component]
pub fn SocketsPanel() -> Html {
    let ctx = use_ctx();
    let form = use_state(BindForm::default);
    use_clear_error_on_change(&ctx, Origin::Bind, (*form).clone());
    let on_bind = {
        let (ctx, form) = (ctx.clone(), form.clone());
        Callback::from(move |e: SubmitEvent| {
            e.prevent_default();
            submit(&ctx, Origin::Bind, form.command());
        })
    };

    let sockets = ctx.state.sockets.clone();
    let gone = ctx.state.ended.is_some();
    let unix = form.kind == SocketKind::Unix;
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
        let tcp = socket.proto == socklab_protocol::Proto::Tcp;
        let proto = match socket.proto {
            socklab_protocol::Proto::Udp => "UDP",
            socklab_protocol::Proto::Tcp => "TCP",
            socklab_protocol::Proto::Unix => "Unix",
        };
        let shutdown = {
            let ctx = ctx.clone();
            let id = socket.id.clone();
            Callback::from(move |_| {
                ctx.commands.send(
                    &ctx.state.dispatcher(),
                    Origin::Socket(id.clone()),
                    Command::Shutdown {
                        socket: id.clone(),
                        how: socklab_protocol::ShutdownHow::Write,
                    },
                );
            })
        };
        let can_shut = tcp && socket.peer.is_some() && socket.state.is_none() && !gone;
        let pause = {
            let ctx = ctx.clone();
            let (id, paused) = (socket.id.clone(), socket.paused);
            Callback::from(move |_| {
                ctx.commands.send(
                    &ctx.state.dispatcher(),
                    Origin::Socket(id.clone()),
                    Command::Pause {
                        socket: id.clone(),
                        paused: !paused,
                    },
                );
            })
        };
        let can_pause = !socket.listening && !gone;
        let membership = |group: String, interface: Option<String>, join: bool| {
            let ctx = ctx.clone();
            let id = socket.id.clone();
            Callback::from(move |_: MouseEvent| {
                let (socket, group, interface) = (id.clone(), group.clone(), interface.clone());
                let command = if join {
                    Command::Join { socket, group, interface }
                } else {
                    Command::Leave { socket, group, interface }
                };
                ctx.commands.send(&ctx.state.dispatcher(), Origin::Socket(id.clone()), command);
            })
        };
        let groups = socket.groups.iter().map(|(group, interface)| {
            let leave = membership(group.to_string(), interface.clone(), false);
            html! {
                <span class="peer group" title="A multicast group this socket joined: datagrams sent to it (on this socket's port) are received">
                    { format!("member of {group}{}", interface.as_ref().map(|i| format!(" on {i}")).unwrap_or_default()) }
                    <button class="small" id={format!("leave-{}-{group}", socket.id)} onclick={leave}>{ "leave" }</button>
                </span>
            }
        });
        let can_join = socket.multicast && !gone;
        html! {
            <li class={classes!("socket-row", gone.then_some("gone"))} data-socket={socket.id.to_string()} key={socket.id.to_string()}
                title={gone.then_some("gone: the session it belonged to has ended")}>
                <span class="badge">{ socket.id.to_string() }</span>
                <span class="proto">{ proto }</span>
                <code class="addr" title={socket.local.is_unix().then_some("The socket's name: a program on this machine sends to this path (Python: sock.sendto(data, path)), or to the abstract name after @ (Python: \"\\0name\")")}>{ socket.local.to_string() }</code>
                if let Some(b) = socket.recv_buffer_bytes {
                    <span class="rcvbuf" title="The receive buffer the kernel granted this socket (SO_RCVBUF), twice what was asked for (half is the kernel's bookkeeping): what arrives while it is full is dropped">
                        { format!("buffer {}", show_bytes(b)) }</span>
                }
                if socket.listening {
                    <span class="peer" title="listen(): connections to this address are accepted, each as a socket of its own (named after this one)">{ "listening" }</span>
                }
                if let Some(listener) = &socket.listener {
                    <span class="peer" title="accept(): a connection this listener accepted, a socket of its own">{ format!("accepted by {listener}") }</span>
                }
                if let Some(peer) = socket.peer.clone() {
                    <span class="peer" title={if tcp { "connect() or accept(): the other end of this TCP connection" } else { "connect(): the socket's default destination, and the only address it receives from" }}>
                        { format!("connected to {}", ctx.state.name_of(&peer)) }</span>
                }
                { for groups }
                if can_join {
                    <JoinGroup socket={socket.id.clone()} />
                }
                if let Some(state) = &socket.state {
                    <span class="peer tcp-state">{ state.clone() }</span>
                }
                if let Some(n) = socket.recv_size {
                    <span class="read-size" title="Each receive reads this many bytes (recvfrom's bufsize): a longer datagram is cut and the rest is gone (MSG_TRUNC)">
                        { format!("reads {n} B") }</span>
                }
                if socket.kernel_drops > 0 {
                    <span class="kernel-drops" title="Datagrams the kernel dropped before socklab could read them, because this socket's receive buffer was full. UDP does not retransmit: they are gone. The count arrives with the next datagram the socket receives.">
                        { format!("kernel dropped {}", socket.kernel_drops) }</span>
                }
                if socket.paused {
                    <span class="kernel-drops" title="This socket is not reading, as a program busy elsewhere: what arrives waits in the kernel's receive buffer. UDP: once the buffer is full the kernel drops datagrams. TCP: the window closes and the sender has to wait.">{ "not reading" }</span>
                }
                if can_pause {
                    <button class="small" id={format!("pause-{}", socket.id)} onclick={pause}
                        title="Stop reading this socket for a while, as a busy program would, then resume: what arrived meanwhile is read as it lies in the buffer (a TCP read takes many writes at once; UDP keeps each datagram apart)">
                        { if socket.paused { "resume" } else { "pause" } }</button>
                }
                if can_shut {
                    <button class="small" id={format!("shut-{}", socket.id)} onclick={shutdown}
                        title="shutdown(SHUT_WR): no more writing; the peer reads the end of the stream (a FIN), and this socket can still read">{ "shutdown" }</button>
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
                <label title="UDP sends datagrams, each on its own. TCP opens a connection (a listening socket accepts, another connects to it) and carries a stream of bytes with no boundaries. A Unix datagram socket sends datagrams to programs on this machine by name, and never loses one.">{ "kind" }
                    <select id="bind-kind" onchange={on_select(&form, |f, v| f.kind = SocketKind::from_value(&v))}>
                        { for SocketKind::ALL.iter().map(|k| html! {
                            <option value={k.value()} selected={form.kind == *k}>{ k.label() }</option>
                        }) }
                    </select>
                </label>
                if unix {
                    <label title="A name for the socket: a file of that name in this session's own directory (the server makes it and removes it), @name for Linux's abstract namespace (no file), or nothing for a name the kernel picks">{ "name" }
                        <input id="bind-unix-name" class="mono" value={form.unix_name.clone()} oninput={on_input(&form, |f, v| f.unix_name = v)} size="14" placeholder="echo, @echo or empty" />
                    </label>
                } else {
                <label>{ "family" }
                    <select id="bind-family" onchange={on_select(&form, |f, v| f.address = v)}>
                        <option value="127.0.0.1" selected={form.address == "127.0.0.1"}>{ "IPv4 loopback" }</option>
                        <option value="::1" selected={form.address == "::1"}>{ "IPv6 loopback" }</option>
                    </select>
                </label>
                <label>{ "address" }
                    <input id="bind-address" class="mono" value={form.address.clone()} oninput={on_input(&form, |f, v| f.address = v)} size="14" />
                </label>
                <label>{ "port" }
                    <input id="bind-port" class="mono" value={form.port.clone()} oninput={on_input(&form, |f, v| f.port = v)} size="6" inputmode="numeric" />
                </label>
                }
                if matches!(form.kind, SocketKind::TcpListen | SocketKind::TcpConnect) {
                    <label class="check" title="TCP_NODELAY: send each write at once. Without it, Nagle's algorithm holds a small write back while earlier bytes are unacknowledged, and several writes may leave in one segment.">
                        <input id="bind-nodelay" type="checkbox" checked={form.nodelay}
                            onclick={on_click(&form, |f: &mut BindForm| f.nodelay = !f.nodelay)} />{ "no delay" }</label>
                }
                if form.kind == SocketKind::Udp {
                <label class="check" title="Let this socket send to broadcast addresses (SO_BROADCAST), where the server allows them (--allow-net)">
                    <input id="bind-broadcast" type="checkbox" checked={form.broadcast}
                        onclick={on_click(&form, |f: &mut BindForm| f.broadcast = !f.broadcast)} />{ "broadcast" }</label>
                <label class="check" title="SO_REUSEADDR: other sockets may bind the same address and port, as the members of one multicast group do">
                    <input id="bind-reuse" type="checkbox" checked={form.reuse_addr}
                        onclick={on_click(&form, |f: &mut BindForm| f.reuse_addr = !f.reuse_addr)} />{ "reuse address" }</label>
                <label class="check" title="Let this socket send to multicast groups and join them, where the server allows them (--allow-net); it receives only the groups it joined itself">
                    <input id="bind-multicast" type="checkbox" checked={form.multicast}
                        onclick={on_click(&form, |f: &mut BindForm| f.multicast = !f.multicast)} />{ "multicast" }</label>
                }
                if !unix {
                <label title="The receive buffer to ask the kernel for (SO_RCVBUF), in bytes, or with k / m for KiB / MiB. Empty: 4 MiB. A small one shows what happens when datagrams arrive faster than they are read: the kernel drops them.">{ "receive buffer" }
                    <input id="bind-rcvbuf" class="mono" value={form.recv_buffer.clone()} oninput={on_input(&form, |f, v| f.recv_buffer = v)} size="6" placeholder="4m" />
                </label>
                }
                <label title="How many bytes each receive reads, as the bufsize of recvfrom(bufsize): a longer datagram is cut to it and the rest is gone (MSG_TRUNC), because UDP keeps no remainder for a next read. Empty: every datagram is read whole.">{ "read size" }
                    <input id="bind-read-size" class="mono" value={form.read_size.clone()} oninput={on_input(&form, |f, v| f.read_size = v)} size="6" placeholder="whole" inputmode="numeric" />
                </label>
                <button id="bind-button" type="submit">{ form.kind.button() }</button>
            </form>
            if unix {
                <p class="hint" id="unix-hint">{ "A Unix datagram socket talks to programs on this machine only, by name instead of address and port. Its datagrams are never lost: when the receiver's queue is full (net.unix.max_dgram_qlen, often 10 datagrams) the sender waits. A Python program reaches it with socket(AF_UNIX, SOCK_DGRAM) and sendto(data, path); to get answers it must bind a name itself. The page may send to the session's own sockets, abstract names (unix:@name) and paths in directories the server was started with (--allow-unix DIR)." }</p>
            } else {
                <p class="hint">{ "Port 0 lets the OS pick a free port. Ports below 1024 are privileged. Sockets may bind to loopback (127.0.0.0/8, ::1) and the networks socklab was started with (--allow-net). The kernel doubles a receive buffer you ask for (half is its own bookkeeping) and has a minimum, so 4k shows as 8 KiB and 1 byte as 2.2 KiB." }</p>
            }
            <FormError id="bind-error" message={ctx.state.error(&Origin::Bind).map(str::to_owned)} code={ctx.state.error_code(&Origin::Bind)} />
            if sockets.is_empty() {
                <p class="empty">{ "No sockets yet. Bind one, then a second one to send between them." }</p>
            } else {
                <ul id="socket-list" class="sockets">{ for rows }</ul>
            }
        </section>
    }
}

/// The properties of [`JoinGroup`].
#[derive(Properties, PartialEq)]
pub struct JoinGroupProps {
    /// The socket that joins.
    pub socket: socklab_protocol::SocketId,
}

/// A socket's "join a multicast group" field.
#[component]
pub fn JoinGroup(props: &JoinGroupProps) -> Html {
    let ctx = use_ctx();
    let text = use_state(String::new);
    let join = {
        let (ctx, text, id) = (ctx.clone(), text.clone(), props.socket.clone());
        Callback::from(move |_: MouseEvent| {
            let (group, interface) = match text.trim().split_once(" on ") {
                Some((g, i)) => (g.trim().to_string(), Some(i.trim().to_string())),
                None => (text.trim().to_string(), None),
            };
            ctx.commands.send(
                &ctx.state.dispatcher(),
                Origin::Socket(id.clone()),
                Command::Join {
                    socket: id.clone(),
                    group,
                    interface,
                },
            );
        })
    };
    let on_text = {
        let text = text.clone();
        Callback::from(move |e: InputEvent| {
            text.set(
                e.target_unchecked_into::<web_sys::HtmlInputElement>()
                    .value(),
            )
        })
    };
    html! {
        <span class="join-group" title="Join a multicast group (IP_ADD_MEMBERSHIP): this socket then receives what is sent to the group on its port. Write the group, and optionally ' on ' and an interface (IPv4: one of its addresses; IPv6: its name), such as 239.1.2.3 on 127.0.0.1">
            <input id={format!("join-{}", props.socket)} class="mono" size="18" placeholder="239.1.2.3 on 127.0.0.1"
                value={(*text).clone()} oninput={on_text} />
            <button class="small" id={format!("join-button-{}", props.socket)} onclick={join} disabled={text.trim().is_empty()}>{ "join" }</button>
        </span>
    }
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
    fn buffer_sizes_are_shown_as_a_person_reads_them() {
        assert_eq!(show_bytes(8 << 20), "8 MiB");
        assert_eq!(show_bytes(425_984), "416 KiB");
        assert_eq!(show_bytes(900), "900 B");
        assert_eq!(show_bytes(4608), "4.5 KiB");
    }
}
