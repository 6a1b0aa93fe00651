//! Per-flow figures, a latency plot, the traffic generator and the loss timeout.

use socklab_protocol::Command;
use socklab_protocol::flow::{FlowMethod, FlowSummary};
use web_sys::{HtmlInputElement, HtmlSelectElement};
use yew::prelude::*;

use super::{
    Destinations, FormError, on_click, on_input, on_select, submit, use_clear_error_on_change,
    use_ctx,
};
use crate::forms::{
    AmountKind, GeneratorForm, PaceKind, loss_timeout_command, match_field_command,
};
use crate::model::Origin;

/// What the figures mean, so "lost / total" is never a puzzle.
const DEFINITIONS: &[(&str, &str)] = &[
    (
        "matched",
        "both ends are lab sockets: every receive is matched to its send (same flow, same bytes, first in first out). Sent counts the sends; lost = dropped by a link, or not received within the loss timeout; a datagram that arrives later is no longer lost (late).",
    ),
    (
        "sequenced",
        "read from the generator's sequence header by the receiver alone, as iperf3 does: sent = highest sequence number + 1; a gap counts as lost; a datagram arriving after a higher number is reordered (out of order) and no longer lost; a number seen twice is a duplicate.",
    ),
    (
        "echo",
        "the destination is not a lab socket: a reply whose bytes equal an earlier request is its answer; latency is the round-trip time; lost = requests without a reply within the loss timeout. Through a link with jitter, datagrams keep their order (unless \"jitter may reorder\" is ticked), so one may wait for the one before it: a round trip through the 4g preset (40 ms each way) can take well over 80 ms.",
    ),
    (
        "reordered",
        "received after a datagram of the same flow that was sent later.",
    ),
    (
        "link",
        "the sender is not a lab socket (an outside program) and the flow crosses a link, so the link's own account is all there is: sent = datagrams that reached the link, received = datagrams it sent on (copies included), lost = datagrams it dropped (the reasons are listed under the row), reordered = sent on after a datagram of the flow that reached the link later; latency = the time each spent in the link, from the kernel's arrival stamp to the moment it was sent on.",
    ),
    ("duplicated", "copies received beyond the first."),
    (
        "jitter",
        "RFC 3550 interarrival jitter: the smoothed variation of transit time between consecutive arrivals (J += (|D| − J)/16).",
    ),
];

/// The flows' rows: a stream the analysis sees both ways (matched or through a link,
/// and sequenced from its header) is one row, the first figures with the sequenced
/// count as a detail. Each entry is the index of the row's flow and of its detail, if
/// any.
fn one_row_per_stream(flows: &[FlowSummary]) -> Vec<(usize, Option<usize>)> {
    let same_stream = |a: &FlowSummary, b: &FlowSummary| a.src == b.src && a.dst == b.dst;
    let mut rows = Vec::new();
    let mut shown = vec![false; flows.len()];
    for (i, f) in flows.iter().enumerate() {
        if !matches!(f.method, FlowMethod::Matched | FlowMethod::Link) {
            continue;
        }
        let detail = flows
            .iter()
            .enumerate()
            .position(|(j, d)| !shown[j] && d.method == FlowMethod::Sequenced && same_stream(f, d));
        if let Some(d) = detail {
            shown[d] = true;
        }
        shown[i] = true;
        rows.push((i, detail));
    }
    rows.extend((0..flows.len()).filter(|&i| !shown[i]).map(|i| (i, None)));
    rows
}

fn ms(ns: u64) -> String {
    format!("{:.3}", ns as f64 / 1e6)
}

/// A percentile in milliseconds to three significant digits: it comes from a histogram
/// whose buckets are 0.2 % wide above 256 ns (at 20 ms, 65 µs), so "20.021" would claim
/// a precision it does not have.
pub(super) fn ms_percentile(ns: u64) -> String {
    if ns < 256 {
        return ms(ns);
    }
    let v = ns as f64 / 1e6;
    let decimals = (2 - v.log10().floor() as i32).clamp(0, 6) as usize;
    format!("{v:.decimals$}")
}

/// What a flow is, in the table: a datagram to a broadcast address is not a request
/// to an echo server.
fn flow_label(f: &FlowSummary) -> &'static str {
    if f.method == FlowMethod::Echo
        && f.dst
            .socket_addr()
            .is_some_and(socklab_protocol::limits::looks_like_broadcast)
    {
        "broadcast"
    } else {
        method_label(f.method)
    }
}

fn method_label(m: FlowMethod) -> &'static str {
    match m {
        FlowMethod::Matched => "matched",
        FlowMethod::Sequenced => "sequenced",
        FlowMethod::Echo => "echo",
        FlowMethod::Link => "link",
        FlowMethod::Stream => "TCP stream",
    }
}

/// The flows panel: figures per flow, the latency plot, the generator.
/// What the flows panel is told.
#[derive(Properties, PartialEq)]
pub struct FlowsProps {
    /// Whether its tab is shown.
    pub visible: bool,
}

#[component]
pub fn FlowsPanel(props: &FlowsProps) -> Html {
    let ctx = use_ctx();
    let state = &ctx.state;
    let plotted = use_state(|| 0usize);
    let streams = one_row_per_stream(&state.flows);
    let rows = streams.iter().map(|&(i, detail)| {
        let f = &state.flows[i];
        let detail = detail.map(|d| &state.flows[d]);
        let is_plotted = *plotted == i;
        let handle = plotted.clone();
        let onclick = Callback::from(move |_| handle.set(i));
        let (latency, latency_all) = f.latency_ns.map_or_else(
            || ("–".to_string(), String::new()),
            |l| {
                (
                    format!("{} ({})", ms_percentile(l.p50), ms_percentile(l.p99)),
                    format!(
                        "min {} · median {} · 99th percentile {} · max {} ms",
                        ms(l.min),
                        ms_percentile(l.p50),
                        ms_percentile(l.p99),
                        ms(l.max)
                    ),
                )
            },
        );
        let flow_full = format!(
            "{} → {}{}",
            f.src,
            f.dst,
            f.via.as_ref().map(|l| format!(" via {l}")).unwrap_or_default()
        );
        html! {
            <>
            <tr class={classes!("flow-row", is_plotted.then_some("selected"))} {onclick}
                data-method={method_label(f.method)} data-src={f.src.to_string()} data-dst={f.dst.to_string()}>
                <td class="mono" title={flow_full}>{ format!("{} → {}", state.name_of(&f.src), state.name_of(&f.dst)) }{ f.via.as_ref().map(|l| format!(" via {l}")).unwrap_or_default() }</td>
                <td>{ flow_label(f) }{ f.seq_flow.map(|s| format!(" #{s}")).unwrap_or_default() }</td>
                <td class="num sent">{ f.sent }</td>
                <td class="num received">{ f.received }</td>
                <td class="num lost">{ format!("{} ({:.1} %)", f.lost, f.lost_pct) }</td>
                <td class="num reordered">{ f.reordered }</td>
                <td class="num duplicated">{ f.duplicated }</td>
                <td class="num in-flight">{ f.in_flight }</td>
                <td class="num" title={latency_all}>{ latency }</td>
                <td class="num">{ f.jitter_ns.map_or("–".to_string(), |j| ms(j as u64)) }</td>
            </tr>
            if f.method == FlowMethod::Echo && f.received == 0 && f.lost > 0 {
                <tr class="flow-detail">
                    <td colspan="10">{ if f.dst.socket_addr().is_some_and(socklab_protocol::limits::looks_like_broadcast) {
                        "a broadcast: every socket bound to that port on the network gets a copy, and none is expected to answer".to_string()
                    } else {
                        format!("no reply from {}: click one of its arrows; its fate says whether anything was bound to that port", f.dst)
                    } }</td>
                </tr>
            }
            if f.method == FlowMethod::Stream {
                <tr class="flow-detail stream-detail">
                    <td colspan="10">{ format!(
                        "a TCP stream counts bytes, not datagrams: {} bytes written, {} read, {} not read yet; latency is each write's time until its last byte reached the reader; nothing is lost or reordered that TCP would not repair",
                        f.sent, f.received, f.in_flight
                    ) }</td>
                </tr>
            }
            if !f.drops.is_empty() {
                <tr class="flow-detail link-drops">
                    <td colspan="10">{ format!("dropped by {}: {}", f.via.as_ref().map_or("the link".to_string(), |l| format!("link {l}")), f.drops.iter().map(|d| format!("{} {}", d.reason.describe(), d.count)).collect::<Vec<_>>().join(", ")) }</td>
                </tr>
            }
            if let Some(d) = detail.filter(|_| f.method == FlowMethod::Link) {
                <tr class="flow-detail" title="Read from the sequence header of what the link sent on">
                    <td colspan="10">{ format!(
                        "as the link sent it on, by its sequence header #{}: {} expected, {} sent on, {} missing ({:.1} %), {} out of order, {} duplicated",
                        d.seq_flow.unwrap_or(0), d.sent, d.received, d.lost, d.lost_pct, d.reordered, d.duplicated
                    ) }</td>
                </tr>
            }
            if let Some(d) = detail.filter(|_| f.method != FlowMethod::Link) {
                <tr class="flow-detail" title="The receiver alone counts by sequence numbers: it cannot see datagrams lost after the last one it got, nor those still on their way, so its figures may differ">
                    <td colspan="10">{ format!(
                        "as its receiver counts it (sequence header #{}): {} sent, {} received, {} lost ({:.1} %), {} out of order, {} duplicated",
                        d.seq_flow.unwrap_or(0), d.sent, d.received, d.lost, d.lost_pct, d.reordered, d.duplicated
                    ) }</td>
                </tr>
            }
            </>
        }
    });
    let chosen = state.flows.get(*plotted).cloned();

    html! {
        <div class="flows">
            <h3>{ "Flows" }</h3>
            if state.flows.is_empty() {
                <p class="empty">{ "Send between two lab sockets (directly or through a link), to an echo server, or start the generator: each flow's figures appear here." }</p>
            } else {
                <div class="table-wrap">
                    <table id="flow-table" class="flow-table">
                        <thead><tr>
                            <th>{ "flow (source → destination)" }</th><th>{ "method" }</th>
                            <th>{ "sent" }</th><th>{ "received" }</th><th>{ "lost" }</th>
                            <th>{ "reordered" }</th><th>{ "dup" }</th><th title="sent, neither received nor lost yet">{ "in flight" }</th>
                            <th title="One-way latency (echo: the round trip; link: the time in the link): the median, and in brackets the 99th percentile; hover a cell for the smallest and largest">{ "latency ms" }</th>
                            <th title="RFC 3550 interarrival jitter">{ "jitter ms" }</th>
                        </tr></thead>
                        <tbody>{ for rows }</tbody>
                    </table>
                </div>
            }
            <super::runs::Runs />
            if state.flows_dropped != (0, 0) {
                <p class="note flows-bounded">{ format!(
                    "The analysis keeps its tables bounded: {} idle flow(s) retired (their figures are gone), {} datagram(s) no longer followed (marked \"untracked\"). Limits: --max-flows, --max-in-flight.",
                    state.flows_dropped.0, state.flows_dropped.1
                ) }</p>
            }
            if let Some(flow) = chosen {
                <super::stats::FlowStatistics flow={flow} visible={props.visible} />
            }
            <details class="definitions" open=true>
                <summary>{ "What the figures mean" }</summary>
                <dl>{ for DEFINITIONS.iter().map(|(term, text)| html! { <><dt>{ *term }</dt><dd>{ *text }</dd></> }) }</dl>
            </details>
            <Generator />
        </div>
    }
}

/// The traffic generator's form and the loss timeout.
#[component]
fn Generator() -> Html {
    let ctx = use_ctx();
    let sockets = ctx.state.sockets.clone();
    let from = use_state(String::new);
    let form = use_state(GeneratorForm::default);
    use_clear_error_on_change(&ctx, Origin::Generate, (*form).clone());
    let timeout = use_state(|| "2000".to_string());
    let chosen = sockets
        .iter()
        .find(|s| s.id.as_str() == from.as_str())
        .or_else(|| sockets.first())
        .map(|s| s.id.clone());
    let on_from = {
        let from = from.clone();
        Callback::from(move |e: Event| {
            from.set(e.target_unchecked_into::<HtmlSelectElement>().value())
        })
    };
    let on_start = {
        let (ctx, form, chosen) = (ctx.clone(), form.clone(), chosen.clone());
        Callback::from(move |e: SubmitEvent| {
            e.prevent_default();
            submit(&ctx, Origin::Generate, form.command(chosen.as_ref()));
        })
    };
    let on_timeout = {
        let (ctx, timeout) = (ctx.clone(), timeout.clone());
        Callback::from(move |_| submit(&ctx, Origin::Analysis, loss_timeout_command(&timeout)))
    };
    let field_offset = use_state(String::new);
    let field_len = use_state(String::new);
    let on_field = {
        let (ctx, offset, len) = (ctx.clone(), field_offset.clone(), field_len.clone());
        Callback::from(move |_| submit(&ctx, Origin::Analysis, match_field_command(&offset, &len)))
    };
    let on_field_clear = {
        let (ctx, offset, len) = (ctx.clone(), field_offset.clone(), field_len.clone());
        Callback::from(move |_| {
            offset.set(String::new());
            len.set(String::new());
            submit(&ctx, Origin::Analysis, match_field_command("", ""))
        })
    };
    let on_field_offset = {
        let offset = field_offset.clone();
        Callback::from(move |e: InputEvent| {
            offset.set(e.target_unchecked_into::<HtmlInputElement>().value())
        })
    };
    let on_field_len = {
        let len = field_len.clone();
        Callback::from(move |e: InputEvent| {
            len.set(e.target_unchecked_into::<HtmlInputElement>().value())
        })
    };
    let field_now = match ctx.state.match_field {
        Some(f) => format!(
            "now: bytes {}–{} (offset {}, {} byte{}); same bytes still come first",
            f.offset,
            u64::from(f.offset) + u64::from(f.len) - 1,
            f.offset,
            f.len,
            if f.len == 1 { "" } else { "s" }
        ),
        None => "now: none, so a reply with other bytes answers the oldest open request".into(),
    };
    let on_timeout_input = {
        let timeout = timeout.clone();
        Callback::from(move |e: InputEvent| {
            timeout.set(e.target_unchecked_into::<HtmlInputElement>().value())
        })
    };
    let running = ctx.state.generators.iter().map(|g| {
        let ctx = ctx.clone();
        let id = g.generator.clone();
        let stop = Callback::from(move |_| {
            ctx.commands.send(&ctx.state.dispatcher(), Origin::Generate, Command::GenerateStop { generator: id.clone() });
        });
        html! {
            <li>{ format!("{}: {} datagrams at {}/s from {} to {}", g.generator, g.count, g.rate, g.socket, g.to) }
                <button class="small" onclick={stop}>{ "stop" }</button></li>
        }
    });
    let on_pick = {
        let form = form.clone();
        Callback::from(move |addr: socklab_protocol::Endpoint| {
            form.set(GeneratorForm {
                to: addr.to_string(),
                ..(*form).clone()
            })
        })
    };
    let exclude = sockets
        .iter()
        .find(|s| Some(&s.id) == chosen.as_ref())
        .map(|s| s.local.clone());

    html! {
        <div class="generator">
            <h3>{ "Traffic generator" }</h3>
            <form class="stack" onsubmit={on_start}>
                <div class="row">
                    <label>{ "from" }
                        <select id="gen-from" onchange={on_from}>
                            { for sockets.iter().map(|s| html! {
                                <option value={s.id.to_string()} selected={Some(&s.id) == chosen.as_ref()}>{ format!("{} {}", s.id, crate::timeline::compact(&s.local)) }</option>
                            }) }
                        </select>
                    </label>
                    <label class="grow">{ "to" }<input id="gen-to" class="mono" placeholder="127.0.0.1:9000" value={form.to.clone()} oninput={on_input(&form, |f, v| f.to = v)} /></label>
                </div>
                <Destinations id="gen-chips" {on_pick} {exclude} />
                <div class="row">
                    <label>
                        <select id="gen-amount-kind" onchange={on_select(&form, |f, v| f.amount_kind = if v == "duration" { AmountKind::Duration } else { AmountKind::Count })}>
                            <option value="count" selected={form.amount_kind == AmountKind::Count}>{ "count" }</option>
                            <option value="duration" selected={form.amount_kind == AmountKind::Duration}>{ "duration ms" }</option>
                        </select>
                        <input id="gen-count" class="mono" size="7" value={form.amount.clone()} oninput={on_input(&form, |f, v| f.amount = v)} />
                    </label>
                    <label>
                        <select id="gen-pace-kind" onchange={on_select(&form, |f, v| f.pace_kind = if v == "interval" { PaceKind::Interval } else { PaceKind::Rate })}>
                            <option value="rate" selected={form.pace_kind == PaceKind::Rate}>{ "rate /s" }</option>
                            <option value="interval" selected={form.pace_kind == PaceKind::Interval}>{ "interval ms" }</option>
                        </select>
                        <input id="gen-rate" class="mono" size="7" value={form.pace.clone()} oninput={on_input(&form, |f, v| f.pace = v)} />
                    </label>
                    <label>{ "size bytes" }<input id="gen-size" class="mono" size="5" value={form.size.clone()} oninput={on_input(&form, |f, v| f.size = v)} /></label>
                    <label title="A fixed text payload instead of zero bytes (after the header, if any)">{ "or text" }
                        <input id="gen-pattern" class="mono" size="8" value={form.pattern.clone()} oninput={on_input(&form, |f, v| f.pattern = v)} /></label>
                    <label class="check" title="24 bytes in front of each payload: magic, flow id, sequence number, send time">
                        <input id="gen-sequence" type="checkbox" checked={form.sequence} onclick={on_click(&form, |f: &mut GeneratorForm| f.sequence = !f.sequence)} />{ "sequence header" }</label>
                    <button id="gen-start" type="submit" disabled={chosen.is_none()}>{ "start" }</button>
                </div>
                <p class="hint">{ "Runs on the server, paced there, so the browser's timing does not matter. Up to 100,000 datagrams/s and 1,000,000 datagrams." }</p>
            </form>
            <FormError id="gen-error" message={ctx.state.error(&Origin::Generate).map(str::to_owned)} code={ctx.state.error_code(&Origin::Generate)} />
            if !ctx.state.generators.is_empty() {
                <ul class="running">{ for running }</ul>
            }
            <div class="row">
                <label>{ "loss timeout ms" }<input id="loss-timeout" class="mono" size="7" value={(*timeout).clone()} oninput={on_timeout_input} /></label>
                <button id="loss-timeout-set" class="small" onclick={on_timeout}>{ "set" }</button>
                <span class="hint">{ format!("A datagram not received within this time counts as lost (now {} ms).", ctx.state.loss_timeout_ms.unwrap_or(2000)) }</span>
            </div>
            <div class="row match-field" title="Where your protocol carries a message number: a reply whose bytes there equal a request's answers that request, even when its other bytes differ (an ack, an upper-cased echo) and replies come out of order">
                <label>{ "pair replies by bytes at offset" }<input id="match-offset" class="mono" size="4" value={(*field_offset).clone()} oninput={on_field_offset} /></label>
                <label>{ "length" }<input id="match-len" class="mono" size="3" value={(*field_len).clone()} oninput={on_field_len} /></label>
                <button id="match-set" class="small" onclick={on_field}>{ "set" }</button>
                <button id="match-clear" class="small" onclick={on_field_clear} disabled={ctx.state.match_field.is_none()}>{ "clear" }</button>
                <span id="match-now" class="hint">{ field_now }</span>
            </div>
            <FormError id="analysis-error" message={ctx.state.error(&Origin::Analysis).map(str::to_owned)} code={ctx.state.error_code(&Origin::Analysis)} />
        </div>
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn flow(src: &str, dst: &str, method: FlowMethod) -> FlowSummary {
        FlowSummary {
            src: src.parse().unwrap(),
            dst: dst.parse().unwrap(),
            via: None,
            method,
            seq_flow: (method == FlowMethod::Sequenced).then_some(1),
            sent: 0,
            received: 0,
            lost: 0,
            lost_pct: 0.0,
            reordered: 0,
            duplicated: 0,
            in_flight: 0,
            latency_ns: None,
            jitter_ns: None,
            latency_cdf_ns: Vec::new(),
            drops: Vec::new(),
        }
    }

    #[test]
    fn percentiles_show_the_digits_their_histogram_has() {
        assert_eq!(ms_percentile(20_021_000), "20.0");
        assert_eq!(ms_percentile(1_234_567), "1.23");
        assert_eq!(ms_percentile(123_456), "0.123");
        assert_eq!(ms_percentile(12_345), "0.0123");
        assert_eq!(ms_percentile(200), "0.000");
        assert_eq!(ms_percentile(250_000_000), "250");
    }

    #[test]
    fn a_stream_seen_both_ways_is_one_row() {
        let (a, b, c) = ("127.0.0.1:1", "127.0.0.1:2", "127.0.0.1:3");
        let flows = [
            flow(a, b, FlowMethod::Matched),
            flow(a, c, FlowMethod::Echo),
            flow(a, b, FlowMethod::Sequenced),
            // A sequenced stream whose sender is outside the lab has a row of its own.
            flow(c, b, FlowMethod::Sequenced),
            // A stream only a link saw, and its sequence header as the link sent it on.
            flow(c, a, FlowMethod::Link),
            flow(c, a, FlowMethod::Sequenced),
        ];
        assert_eq!(
            one_row_per_stream(&flows),
            [(0, Some(2)), (4, Some(5)), (1, None), (3, None)]
        );
    }
}
