//! TCP links: create a proxy that delays, throttles, slices or resets byte streams.

use socklab_protocol::Command;
use yew::prelude::*;

use super::{FormError, on_input, submit, use_clear_error_on_change, use_ctx};
use crate::forms::TcpLinkForm;
use crate::model::Origin;

/// The TCP links panel: the create form and one line per link.
#[component]
pub fn TcpLinksPanel() -> Html {
    let ctx = use_ctx();
    let form = use_state(TcpLinkForm::default);
    use_clear_error_on_change(&ctx, Origin::CreateTcpLink, (*form).clone());
    let on_create = {
        let (ctx, form) = (ctx.clone(), form.clone());
        Callback::from(move |e: SubmitEvent| {
            e.prevent_default();
            submit(&ctx, Origin::CreateTcpLink, form.command());
        })
    };
    let field = |id: &'static str,
                 label: &'static str,
                 title: &'static str,
                 value: &String,
                 set: fn(&mut TcpLinkForm, String)| {
        html! {
            <label {title}>{ label }
                <input id={id} class="mono" size="6" value={value.clone()} oninput={on_input(&form, set)} />
            </label>
        }
    };
    let rows = ctx.state.tcp_links.iter().map(|l| {
        let delete = {
            let ctx = ctx.clone();
            let link = l.link.clone();
            Callback::from(move |_| {
                ctx.commands.send(
                    &ctx.state.dispatcher(),
                    Origin::Link(link.clone()),
                    Command::LinkDelete { link: link.clone() },
                );
            })
        };
        let s = &l.settings;
        let mut what = Vec::new();
        if s.c2t.latency_ms > 0.0 {
            what.push(format!("latency {} ms ± {}", s.c2t.latency_ms, s.c2t.jitter_ms));
        }
        if s.c2t.rate_bps > 0 {
            what.push(format!("{} kbit/s", s.c2t.rate_bps / 1000));
        }
        if s.c2t.slice_bytes > 0 {
            what.push(format!("client's bytes in {}-byte pieces {} ms apart", s.c2t.slice_bytes, s.c2t.slice_delay_ms));
        }
        if s.close_delay_ms > 0.0 {
            what.push(format!("end of stream held {} ms", s.close_delay_ms));
        }
        if s.reset_after_bytes > 0 {
            what.push(format!("reset after {} bytes", s.reset_after_bytes));
        }
        if what.is_empty() {
            what.push("passes bytes on as they come".into());
        }
        html! {
            <li class="socket-row tcp-link" key={l.link.to_string()} data-link={l.link.to_string()}>
                <span class="badge">{ l.link.to_string() }</span>
                <span class="proto">{ "TCP link" }</span>
                <code class="addr">{ format!("{} → {}", l.listen, l.target) }</code>
                <button class="small" onclick={delete} title="Delete the link: the connections it carries end">{ "delete" }</button>
                <span class="peer">{ what.join(", ") }</span>
            </li>
        }
    });
    html! {
        <section class="panel" aria-labelledby="tcp-links-title">
            <h2 id="tcp-links-title">{ "TCP links" }</h2>
            <p class="hint">{ "A TCP link is a proxy: connect to its address instead of the target's, and it connects to the target for you and passes the bytes on, late, slowly, in small pieces, holding back the end, or resetting both ends. TCP repairs loss below the program; what is left to see is time, and how the bytes are cut." }</p>
            <form class="stack" onsubmit={on_create}>
                <div class="row">
                    { field("tcp-link-port", "port", "Port on 127.0.0.1 (0: any free one)", &form.port, |f, v| f.port = v) }
                    <label class="grow">{ "target" }
                        <input id="tcp-link-target" class="mono" placeholder="127.0.0.1:9000" value={form.target.clone()} oninput={on_input(&form, |f, v| f.target = v)} />
                    </label>
                </div>
                <div class="row">
                    { field("tcp-link-latency", "latency ms", "Added to every chunk, both ways", &form.latency_ms, |f, v| f.latency_ms = v) }
                    { field("tcp-link-jitter", "jitter ms", "± this much, at random; the stream stays in order", &form.jitter_ms, |f, v| f.jitter_ms = v) }
                    { field("tcp-link-rate", "kbit/s", "Bandwidth, both ways (empty: unlimited)", &form.rate_kbps, |f, v| f.rate_kbps = v) }
                </div>
                <div class="row">
                    { field("tcp-link-slice", "slice bytes", "Cut what the client sends into pieces of at most this many bytes, each written on its own (empty: no)", &form.slice_bytes, |f, v| f.slice_bytes = v) }
                    { field("tcp-link-slice-delay", "ms apart", "The pause between pieces", &form.slice_delay_ms, |f, v| f.slice_delay_ms = v) }
                    { field("tcp-link-close-delay", "hold FIN ms", "Hold the end of a stream this long before passing it on", &form.close_delay_ms, |f, v| f.close_delay_ms = v) }
                    { field("tcp-link-reset", "reset after B", "Reset both ends once this many bytes crossed (empty: never)", &form.reset_after, |f, v| f.reset_after = v) }
                    <button id="tcp-link-create" type="submit">{ "create TCP link" }</button>
                </div>
            </form>
            <FormError id="tcp-link-error" message={ctx.state.error(&Origin::CreateTcpLink).map(str::to_owned)} code={ctx.state.error_code(&Origin::CreateTcpLink)} />
            if !ctx.state.tcp_links.is_empty() {
                <ul id="tcp-link-list" class="sockets">{ for rows }</ul>
            }
        </section>
    }
}
