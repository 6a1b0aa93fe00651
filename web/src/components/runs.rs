//! Figures of stretches of time: the session's runs (each generator's, and each "new
//! run"), as the server counts them (`flow_stats`' `runs`: every datagram, whatever the
//! page was sent), and a time range selected on the timeline, counted on the page from
//! the datagrams it holds (`timeline::figures`; so are the runs of a recording made
//! before the server counted them).

use yew::prelude::*;

use super::{FormError, use_ctx};
use crate::model::Origin;

use super::flows::ms_percentile;

/// One flow's figures, as a row of a table of stretches.
struct Row {
    name: String,
    sent: u64,
    received: u64,
    lost: u64,
    lost_pct: f64,
    reordered: u64,
    duplicated: u64,
    in_flight: u64,
    /// The median and the 99th percentile, ns.
    latency: Option<(u64, u64)>,
}

/// Rows of a table of stretches, `first` in the first cell of the first.
fn rows_html(rows: impl Iterator<Item = Row>, first: Html) -> Html {
    let rows = rows.enumerate().map(|(i, r)| {
        let latency = match r.latency {
            Some((p50, p99)) => format!("{} ({})", ms_percentile(p50), ms_percentile(p99)),
            None => "–".to_string(),
        };
        html! {
            <tr class="stretch-row">
                <td>{ if i == 0 { first.clone() } else { Html::default() } }</td>
                <td class="mono">{ r.name }</td>
                <td class="num sent">{ r.sent }</td>
                <td class="num received">{ r.received }</td>
                <td class="num lost">{ format!("{} ({:.1} %)", r.lost, r.lost_pct) }</td>
                <td class="num reordered">{ r.reordered }</td>
                <td class="num duplicated">{ r.duplicated }</td>
                <td class="num in-flight">{ r.in_flight }</td>
                <td class="num latency">{ latency }</td>
            </tr>
        }
    });
    html! { <>{ for rows }</> }
}

/// A stretch's figures, counted on the page, as rows of a table, a row per flow.
pub fn stretch_rows(
    state: &crate::model::State,
    stretch: &crate::timeline::Stretch,
    first: Html,
) -> Html {
    let timeline = state.timeline.borrow();
    let rows = stretch.flows.iter().map(|f| {
        let (src, dst) = timeline.flows.get(f.flow as usize).cloned().unzip();
        let name = match (src, dst) {
            (Some(s), Some(d)) => format!("{} → {}", state.name_of(&s), state.name_of(&d)),
            _ => String::from("?"),
        };
        Row {
            name,
            sent: f.sent,
            received: f.received,
            lost: f.lost,
            lost_pct: f.lost_pct(),
            reordered: f.reordered,
            duplicated: f.duplicated,
            in_flight: f.in_flight,
            latency: f.latency(0.5).zip(f.latency(0.99)),
        }
    });
    rows_html(rows, first)
}

/// A run's figures as the server counted them (every datagram it sent), as rows of a
/// table, a row per flow.
fn server_rows(
    state: &crate::model::State,
    run: &socklab_protocol::flow::RunFlows,
    first: Html,
) -> Html {
    let rows = run.flows.iter().map(|f| Row {
        name: format!("{} → {}", state.name_of(&f.src), state.name_of(&f.dst)),
        sent: f.sent,
        received: f.received,
        lost: f.lost,
        lost_pct: f.lost_pct,
        reordered: f.reordered,
        duplicated: f.duplicated,
        in_flight: f.in_flight,
        latency: f.latency_ns.map(|l| (l.p50, l.p99)),
    });
    rows_html(rows, first)
}

/// The head of a table of stretches' figures.
pub fn stretch_head(first: &'static str) -> Html {
    html! {
        <thead><tr>
            <th>{ first }</th><th>{ "flow" }</th><th>{ "sent" }</th><th>{ "received" }</th><th>{ "lost" }</th>
            <th>{ "reordered" }</th><th>{ "dup" }</th><th title="sent, neither received nor lost yet">{ "in flight" }</th>
            <th title="One-way latency of the datagrams received: the median, and in brackets the 99th percentile">{ "latency ms" }</th>
        </tr></thead>
    }
}

/// How often the runs' figures are counted again while datagrams keep coming, ms.
const REFRESH_MS: u32 = 500;

/// The session's runs, each with the figures of the datagrams sent in it, and the
/// form that starts a new one.
#[component]
pub fn Runs() -> Html {
    let ctx = use_ctx();
    let state = &ctx.state;
    let name = use_state(String::new);
    let on_name = {
        let name = name.clone();
        Callback::from(move |e: InputEvent| {
            name.set(
                e.target_unchecked_into::<web_sys::HtmlInputElement>()
                    .value(),
            )
        })
    };
    let on_mark = {
        let (ctx, name) = (ctx.clone(), name.clone());
        Callback::from(move |e: SubmitEvent| {
            e.prevent_default();
            let given = name.trim().to_owned();
            ctx.commands.send(
                &ctx.live.dispatcher(),
                Origin::Run,
                socklab_protocol::Command::MarkRun {
                    name: (!given.is_empty()).then_some(given),
                },
            );
            name.set(String::new());
        })
    };
    let runs = state.runs.clone();
    // Counting walks every arrow the page holds: at most every REFRESH_MS while
    // datagrams keep coming, and once more after they stop; at once for new runs.
    let version = super::use_settled(state.timeline_version, REFRESH_MS);
    let stretches = {
        let timeline = state.timeline.clone();
        use_memo((version, runs.clone()), move |(_, runs)| {
            let starts: Vec<u64> = runs.iter().map(|r| r.2).collect();
            timeline.borrow().stretches(&starts, u64::MAX)
        })
    };
    // Runs the page saw sending that the server has no figures of (not yet, or a
    // recording made before it counted them): the page counts those itself.
    let uncounted = runs
        .iter()
        .zip(stretches.iter())
        .any(|((number, _, _), s)| !s.flows.is_empty() && !state.run_flows.contains_key(number));
    let stretches: Vec<Html> = runs
        .iter()
        .zip(stretches.iter())
        .enumerate()
        .map(|(i, ((number, run_name, from), stretch))| {
            let to = runs.get(i + 1).map_or(u64::MAX, |r| r.2);
            let counted = state.run_flows.get(number);
            let partial = counted.map_or(stretch.partial, |c| c.partial);
            let first = html! {
                <span class="run-name" title={format!("run {number}: the datagrams sent from {:.3} s{}", *from as f64 / 1e9, if to == u64::MAX { " on".to_string() } else { format!(" to {:.3} s", to as f64 / 1e9) })}>
                    { run_name.clone() }{ if partial { " (partly forgotten)" } else { "" } }</span>
            };
            match counted {
                Some(run) if !run.flows.is_empty() => server_rows(state, run, first),
                None if !stretch.flows.is_empty() => stretch_rows(state, stretch, first),
                _ => html! { <tr class="stretch-row"><td>{ first }</td><td colspan="8" class="hint">{ "nothing sent" }</td></tr> },
            }
        })
        .collect();
    html! {
        <div class="runs" id="runs">
            <h3>{ "Runs" }</h3>
            <p class="hint">{ "The figures above add up everything done in this session. A run starts with each generator and with \"new run\": its figures count only the datagrams sent in it, each in the run that sent it however late its fate came, so tests at different rates do not mix. The server counts them from every datagram, whatever this page was sent." }</p>
            if state.thinned > 0 && uncounted {
                <p id="runs-thinned" class="hint warn">{ if ctx.replay.is_some() {
                    "The page holds only part of this recording (a page of its events around the cursor), and the recording has no per-run figures of the server's (it was made by an older socklab): these per-run figures count only the datagrams the page holds. The flow figures above are the recording's own."
                } else {
                    "Single datagrams were left out of this page to keep it current (the notice at the top), and the server has not counted these runs yet: these per-run figures count only the datagrams the page holds. The flow figures above count every one."
                } }</p>
            }
            if !stretches.is_empty() {
                <div class="table-wrap">
                    <table id="run-table" class="flow-table">
                        { stretch_head("run") }
                        <tbody>{ for stretches }</tbody>
                    </table>
                </div>
            }
            <form class="row" onsubmit={on_mark}>
                <label>{ "name (optional)" }<input id="run-name" placeholder={format!("run {}", runs.last().map_or(1, |r| r.0 + 1))} value={(*name).clone()} oninput={on_name} maxlength="100" /></label>
                <button id="run-mark" type="submit" class="small" title="From now on, the datagrams sent count for a new run">{ "new run" }</button>
            </form>
            <FormError id="run-error" message={state.error(&Origin::Run).map(str::to_owned)} code={state.error_code(&Origin::Run)} />
        </div>
    }
}

#[derive(Properties, PartialEq)]
pub struct RangeProps {
    /// The range's start, ns.
    pub from: u64,
    /// Its end, ns.
    pub to: u64,
    /// Clears it.
    pub on_clear: Callback<MouseEvent>,
}

/// The figures of the datagrams sent in the selected time range.
#[component]
pub fn RangeFigures(props: &RangeProps) -> Html {
    let ctx = use_ctx();
    let state = &ctx.state;
    let (from, to) = (props.from, props.to);
    let stretch = state.timeline.borrow().figures(from, to);
    let title = html! {
        <span class="range-span">{ format!("{:.3}–{:.3} s", from as f64 / 1e9, to as f64 / 1e9) }</span>
    };
    html! {
        <div id="tl-range" class="range-figures">
            <div class="row">
                <strong>{ format!("Selected {:.3} s to {:.3} s ({:.3} ms): the datagrams sent in it", from as f64 / 1e9, to as f64 / 1e9, (to - from) as f64 / 1e6) }</strong>
                <button id="tl-range-clear" class="small" onclick={props.on_clear.clone()} title="Clear the range (Esc)">{ "clear" }</button>
            </div>
            if stretch.flows.is_empty() {
                <p class="hint">{ "Nothing was sent in this range." }</p>
            } else {
                <div class="table-wrap">
                    <table id="tl-range-table" class="flow-table">
                        { stretch_head("range") }
                        <tbody>{ stretch_rows(state, &stretch, title) }</tbody>
                    </table>
                </div>
            }
            if stretch.partial {
                <p class="hint">{ "The page has forgotten the oldest datagrams of this range (it keeps the newest 300,000): these figures count those it still holds." }</p>
            }
            if state.timeline.borrow().scale.thinned_in(from, to).next().is_some() {
                <p id="tl-range-thinned" class="hint warn">{ "Single datagrams of this range were left out of this page (amber by the time axis): these figures count only those the page holds; the server's counts are the bars on the timeline." }</p>
            }
        </div>
    }
}
