//! Statistics that explain themselves, for the flow chosen in the table: latency over
//! time (real time axes, the value under the pointer), the latency distribution (a
//! CDF from the server's histogram of every sample), and how long the runs of lost
//! datagrams were (to hold Gilbert-Elliott settings against what happened).
//!
//! (Over 600 lines: each plot's drawing sits next to the pure figures it draws, which
//! the tests at the end check without a browser.)

use socklab_protocol::flow::{FlowSummary, LATENCY_CDF_QUANTILES};
use socklab_protocol::link::{LinkDir, Loss};
use web_sys::{CanvasRenderingContext2d, HtmlCanvasElement, MouseEvent};
use yew::prelude::*;

use super::use_ctx;
use crate::model::{LinkInfo, LinkSample};
use crate::timeline::{Mark, Timeline};

const BACKGROUND: &str = "#0f1419";
const AXIS: &str = "#8a96a3";
const GRID: &str = "#222c36";
const GOOD: &str = "#5ad19a";
const LOST: &str = "#ff6b6b";
/// Left margin for the value axis' labels, and the bottom one for the time axis'.
const LEFT: f64 = 58.0;
const BOTTOM: f64 = 16.0;

fn ms(ns: f64) -> String {
    if ns == 0.0 {
        "0 ms".into()
    } else if ns >= 100e6 {
        format!("{:.0} ms", ns / 1e6)
    } else if ns >= 1e6 {
        format!("{:.1} ms", ns / 1e6)
    } else {
        format!("{:.3} ms", ns / 1e6)
    }
}

/// Up to about `n` round tick values from `lo` to `hi` (1, 2 or 5 times a power of
/// ten apart), for an axis a person can read.
pub fn ticks(lo: f64, hi: f64, n: usize) -> Vec<f64> {
    if hi.partial_cmp(&lo) != Some(std::cmp::Ordering::Greater) || n == 0 {
        return vec![lo];
    }
    let raw = (hi - lo) / n as f64;
    let power = 10f64.powf(raw.log10().floor());
    let step = [1.0, 2.0, 5.0, 10.0]
        .into_iter()
        .map(|m| m * power)
        .find(|s| *s >= raw * (1.0 - 1e-9))
        .unwrap_or(10.0 * power);
    let first = (lo / step).ceil() * step;
    (0..)
        .map(|i| first + i as f64 * step)
        .take_while(|t| *t <= hi + step * 1e-9)
        .collect()
}

/// How many runs of lost datagrams there were of each length (index 0: length 1), the
/// datagrams taken in send order (`true`: lost).
pub fn loss_bursts(lost: impl IntoIterator<Item = bool>) -> Vec<u64> {
    let mut counts: Vec<u64> = Vec::new();
    let mut run = 0usize;
    let close = |run: &mut usize, counts: &mut Vec<u64>| {
        if *run > 0 {
            if counts.len() < *run {
                counts.resize(*run, 0);
            }
            counts[*run - 1] += 1;
            *run = 0;
        }
    };
    for l in lost {
        if l {
            run += 1;
        } else {
            close(&mut run, &mut counts);
        }
    }
    close(&mut run, &mut counts);
    counts
}

/// The bursts in words: "7 bursts of loss: 1 ×4, 2 ×2, 5 ×1; 2.0 datagrams on average".
pub fn bursts_in_words(counts: &[u64]) -> String {
    let bursts: u64 = counts.iter().sum();
    if bursts == 0 {
        return "no loss among the datagrams this page holds".into();
    }
    let lost: u64 = counts
        .iter()
        .enumerate()
        .map(|(i, n)| (i as u64 + 1) * n)
        .sum();
    let lengths: Vec<String> = counts
        .iter()
        .enumerate()
        .filter(|(_, n)| **n > 0)
        .map(|(i, n)| format!("{} ×{n}", i + 1))
        .collect();
    format!(
        "{bursts} burst{} of loss (length ×count): {}; {:.1} datagrams on average",
        if bursts == 1 { "" } else { "s" },
        lengths.join(", "),
        lost as f64 / bursts as f64
    )
}

/// What the link's Gilbert-Elliott settings lead one to expect of the bursts, if the
/// flow crosses such a link.
pub fn expected_bursts(flow: &FlowSummary, links: &[LinkInfo]) -> Option<String> {
    let link = links.iter().find(|l| Some(&l.id) == flow.via.as_ref())?;
    let dir = if flow.src == link.target {
        LinkDir::T2c
    } else {
        LinkDir::C2t
    };
    let settings = match dir {
        LinkDir::C2t => link.settings.c2t,
        LinkDir::T2c => link.settings.t2c,
    };
    match settings.loss {
        Loss::GilbertElliott {
            r_pct,
            loss_bad_pct,
            loss_good_pct,
            ..
        } if r_pct > 0.0 => Some(format!(
            "link {}'s Gilbert-Elliott settings: a bad spell lasts 100/r = {:.1} datagrams on average{}",
            link.id,
            100.0 / r_pct,
            if loss_bad_pct >= 100.0 && loss_good_pct <= 0.0 {
                ", and loses all of them: the bursts' average should come close"
            } else {
                " (the bursts are shorter: the bad state loses only some, or the good state some too)"
            }
        )),
        _ => None,
    }
}

/// The flow's datagrams the page holds, in send order: when each was sent, and its
/// latency (`None`: lost).
fn points(timeline: &Timeline, flow: &FlowSummary) -> Vec<(u64, Option<u64>)> {
    let Some(index) = timeline
        .flows
        .iter()
        .position(|(s, d)| *s == flow.src && *d == flow.dst)
    else {
        return Vec::new();
    };
    let mut points: Vec<(u64, Option<u64>)> = timeline
        .arrows
        .iter()
        .filter(|a| a.flow == index as u16)
        .filter_map(|a| match a.mark {
            Mark::Delivered | Mark::Reordered(_) | Mark::Late => Some((a.t0, Some(a.t1 - a.t0))),
            // A request's arrow ends where the reply turns: the round trip is twice it.
            Mark::Request(_) => Some((a.t0, Some((a.t1 - a.t0) * 2))),
            Mark::Lost(_) | Mark::Unanswered(_) => Some((a.t0, None)),
            _ => None,
        })
        .collect();
    points.sort_by_key(|p| p.0);
    points
}

/// A canvas sized to its box, cleared; with its context and size.
fn prepare(canvas: &HtmlCanvasElement) -> Option<(CanvasRenderingContext2d, f64, f64)> {
    let (w, h) = (canvas.client_width() as f64, canvas.client_height() as f64);
    if w <= 0.0 || h <= 0.0 {
        return None;
    }
    canvas.set_width(w as u32);
    canvas.set_height(h as u32);
    let ctx = super::context_2d(canvas)?;
    ctx.set_fill_style_str(BACKGROUND);
    ctx.fill_rect(0.0, 0.0, w, h);
    ctx.set_font("10px ui-monospace, monospace");
    Some((ctx, w, h))
}

/// Draws a value axis from 0 to `max` with labels, and returns the y of a value.
fn value_axis(
    ctx: &CanvasRenderingContext2d,
    w: f64,
    h: f64,
    max: f64,
    label: impl Fn(f64) -> String,
) -> impl Fn(f64) -> f64 {
    let bottom = h - BOTTOM;
    let y = move |v: f64| bottom - v / max * (bottom - 8.0);
    for t in ticks(0.0, max, 3) {
        ctx.set_stroke_style_str(GRID);
        ctx.begin_path();
        ctx.move_to(LEFT, y(t));
        ctx.line_to(w, y(t));
        ctx.stroke();
        ctx.set_fill_style_str(AXIS);
        let _ = ctx.fill_text(&label(t), 2.0, y(t) + 3.0);
    }
    y
}

/// How often the plots may draw again while the timeline changes, ms.
const PLOT_EVERY_MS: u32 = 250;

#[derive(Properties, PartialEq)]
pub struct StatsProps {
    /// The flow chosen in the table.
    pub flow: FlowSummary,
    /// Whether its tab is shown (the plots draw again when it is).
    pub visible: bool,
}

/// The chosen flow's plots and loss bursts.
#[component]
pub fn FlowStatistics(props: &StatsProps) -> Html {
    let ctx = use_ctx();
    let over_time = use_node_ref();
    let cdf = use_node_ref();
    let bursts_canvas = use_node_ref();
    // The flow's points, computed once per change of the timeline or the flow (not on
    // every render, and at most four times a second), and shared by the plots, the
    // pointer and the bursts.
    let timeline_version = super::use_settled(ctx.state.timeline_version, PLOT_EVERY_MS);
    let kept = {
        let timeline = ctx.state.timeline.clone();
        use_memo(
            (
                timeline_version,
                props.flow.src.clone(),
                props.flow.dst.clone(),
            ),
            move |_| points(&timeline.borrow(), &props.flow),
        )
    };
    let hover = use_state(|| None::<String>);
    {
        let (over_time, cdf, kept) = (over_time.clone(), cdf.clone(), kept.clone());
        let bursts_canvas = bursts_canvas.clone();
        let flow = props.flow.clone();
        use_effect_with(
            (kept.clone(), props.flow.clone(), props.visible),
            move |_| {
                if let Some(canvas) = over_time.cast::<HtmlCanvasElement>() {
                    plot_over_time(&canvas, &kept);
                }
                if let Some(canvas) = cdf.cast::<HtmlCanvasElement>() {
                    plot_cdf(&canvas, &flow.latency_cdf_ns);
                }
                if let Some(canvas) = bursts_canvas.cast::<HtmlCanvasElement>() {
                    plot_bursts(&canvas, &loss_bursts(kept.iter().map(|p| p.1.is_none())));
                }
            },
        );
    }
    let on_move = {
        let (kept, hover, canvas) = (kept.clone(), hover.clone(), over_time.clone());
        Callback::from(move |e: MouseEvent| {
            let Some(canvas) = canvas.cast::<HtmlCanvasElement>() else {
                return;
            };
            let points = &*kept;
            let w = canvas.client_width() as f64;
            hover.set(nearest(points, w, e.offset_x() as f64).map(|(t, latency)| {
                format!(
                    "sent at {:.6} s: {}",
                    t as f64 / 1e9,
                    latency.map_or("lost".to_string(), |l| ms(l as f64))
                )
            }));
        })
    };
    let on_leave = {
        let hover = hover.clone();
        Callback::from(move |_| hover.set(None))
    };
    let bursts = loss_bursts(kept.iter().map(|p| p.1.is_none()));
    let what = if props.flow.method == socklab_protocol::flow::FlowMethod::Echo {
        "round-trip time"
    } else if props.flow.method == socklab_protocol::flow::FlowMethod::Link {
        "time in the link"
    } else {
        "one-way latency"
    };
    html! {
        <div class="plots">
            <div class="plot">
                <span class="hint">{ format!("{what} over time, {} → {} (red ticks: lost)", ctx.state.name_of(&props.flow.src), ctx.state.name_of(&props.flow.dst)) }</span>
                <canvas id="latency-plot" ref={over_time} onmousemove={on_move} onmouseleave={on_leave} />
                <span id="latency-hover" class="hint mono">{ (*hover).clone().unwrap_or_else(|| "point at a dot for its time and value".into()) }</span>
            </div>
            <div class="plot">
                <span class="hint" title="The share of datagrams (up the side) whose latency was at most the value along the bottom, from the server's histogram of every sample: a steep rise is steady timing, a long tail to the right the slow few">{ format!("{what}: distribution (CDF)") }</span>
                <canvas id="latency-cdf" ref={cdf} />
            </div>
            <div class="plot">
                <span class="hint">{ "loss bursts: how many runs of consecutive lost datagrams (in send order) had each length" }</span>
                if bursts.iter().any(|n| *n > 0) {
                    <canvas id="loss-bursts-plot" ref={bursts_canvas} />
                }
                <p id="loss-bursts" class="mono" data-lost={bursts.iter().enumerate().map(|(i, n)| (i as u64 + 1) * n).sum::<u64>().to_string()}>{ bursts_in_words(&bursts) }</p>
                if let Some(expected) = expected_bursts(&props.flow, &ctx.state.links) {
                    <p id="loss-bursts-expected" class="hint">{ expected }</p>
                }
            </div>
        </div>
    }
}

/// The point nearest to `x` on a plot `w` wide.
fn nearest(points: &[(u64, Option<u64>)], w: f64, x: f64) -> Option<(u64, Option<u64>)> {
    let (first, last) = (points.first()?.0 as f64, points.last()?.0 as f64);
    let span = (last - first).max(1.0);
    let t = first + (x - LEFT) / (w - LEFT - 6.0) * span;
    let at = points.partition_point(|p| (p.0 as f64) < t);
    [at.checked_sub(1), Some(at)]
        .into_iter()
        .flatten()
        .filter_map(|i| points.get(i))
        .min_by(|a, b| (a.0 as f64 - t).abs().total_cmp(&(b.0 as f64 - t).abs()))
        .copied()
}

fn plot_over_time(canvas: &HtmlCanvasElement, points: &[(u64, Option<u64>)]) {
    let Some((ctx, w, h)) = prepare(canvas) else {
        return;
    };
    let (Some(first), Some(last)) = (points.first(), points.last()) else {
        ctx.set_fill_style_str(AXIS);
        let _ = ctx.fill_text("no datagrams of this flow on the page yet", LEFT, h / 2.0);
        return;
    };
    let (t0, t1) = (first.0 as f64, (last.0 as f64).max(first.0 as f64 + 1.0));
    let max = points.iter().filter_map(|p| p.1).max().unwrap_or(1).max(1) as f64;
    let y = value_axis(&ctx, w, h, max, ms);
    let x = |t: f64| LEFT + (t - t0) / (t1 - t0) * (w - LEFT - 6.0);
    // The time axis, in seconds since the session began.
    ctx.set_fill_style_str(AXIS);
    for t in ticks(t0 / 1e9, t1 / 1e9, 5) {
        let label = format!("{t:.3} s");
        let _ = ctx.fill_text(&label, (x(t * 1e9) - 20.0).max(LEFT), h - 3.0);
    }
    let bottom = h - BOTTOM;
    // One mark a pixel: a fast flow has tens of thousands of points on a plot a few
    // hundred pixels wide, and the plot is drawn again whenever the timeline changes.
    let mut drawn = Pixels::new(w, h);
    ctx.set_fill_style_str(GOOD);
    for &(t, latency) in points {
        if let Some(l) = latency {
            let (px, py) = (x(t as f64), y(l as f64));
            if drawn.first(px, py) {
                ctx.fill_rect(px - 1.0, py - 1.0, 2.5, 2.5);
            }
        }
    }
    ctx.set_fill_style_str(LOST);
    for &(t, latency) in points {
        if latency.is_none() {
            let px = x(t as f64);
            if drawn.first(px, bottom) {
                ctx.fill_rect(px - 0.5, bottom - 6.0, 1.5, 6.0);
            }
        }
    }
}

/// Which pixels of a plot have a mark already.
struct Pixels {
    width: usize,
    marked: Vec<bool>,
}

impl Pixels {
    fn new(w: f64, h: f64) -> Pixels {
        let (width, height) = (w.max(1.0) as usize + 1, h.max(1.0) as usize + 1);
        Pixels {
            width,
            marked: vec![false; width * height],
        }
    }

    /// Marks the pixel at (x, y); whether it had no mark before (true outside the plot,
    /// where nothing is remembered).
    fn first(&mut self, x: f64, y: f64) -> bool {
        if x < 0.0 || y < 0.0 || x as usize >= self.width {
            return true;
        }
        match self.marked.get_mut(y as usize * self.width + x as usize) {
            Some(seen) => !std::mem::replace(seen, true),
            None => true,
        }
    }
}

/// The most burst lengths drawn as bars; longer bursts share the last bar.
const BURST_BARS: usize = 20;

/// Bursts as bars: how many runs of each length (the last bar: that long or longer).
fn plot_bursts(canvas: &HtmlCanvasElement, counts: &[u64]) {
    let Some((ctx, w, h)) = prepare(canvas) else {
        return;
    };
    let mut bars: Vec<u64> = counts.iter().take(BURST_BARS).copied().collect();
    if counts.len() > BURST_BARS {
        bars[BURST_BARS - 1] += counts[BURST_BARS..].iter().sum::<u64>();
    }
    let Some(&max) = bars.iter().max().filter(|m| **m > 0) else {
        return;
    };
    let y = value_axis(&ctx, w, h, max as f64, |v| format!("{v:.0}"));
    // At least ten slots, so that two lengths do not make two walls.
    let slot = (w - LEFT - 6.0) / bars.len().max(10) as f64;
    let bottom = h - BOTTOM;
    for (i, &n) in bars.iter().enumerate() {
        let x = LEFT + i as f64 * slot;
        ctx.set_fill_style_str(LOST);
        ctx.fill_rect(
            x + 2.0,
            y(n as f64),
            (slot - 4.0).max(1.0),
            bottom - y(n as f64),
        );
        ctx.set_fill_style_str(AXIS);
        let label = if i + 1 == BURST_BARS && counts.len() > BURST_BARS {
            format!("{}+", i + 1)
        } else {
            (i + 1).to_string()
        };
        let _ = ctx.fill_text(&label, x + slot / 2.0 - 4.0, h - 3.0);
    }
}

fn plot_cdf(canvas: &HtmlCanvasElement, cdf: &[u64]) {
    let Some((ctx, w, h)) = prepare(canvas) else {
        return;
    };
    if cdf.len() != LATENCY_CDF_QUANTILES.len() {
        ctx.set_fill_style_str(AXIS);
        let _ = ctx.fill_text("no latency measured yet", LEFT, h / 2.0);
        return;
    }
    let max = (*cdf.last().unwrap_or(&1)).max(1) as f64;
    let y = value_axis(&ctx, w, h, 1.0, |q| format!("{:.0} %", q * 100.0));
    let x = |v: f64| LEFT + v / max * (w - LEFT - 6.0);
    ctx.set_fill_style_str(AXIS);
    for v in ticks(0.0, max, 4) {
        let _ = ctx.fill_text(&ms(v), (x(v) - 18.0).max(LEFT), h - 3.0);
    }
    ctx.set_stroke_style_str(GOOD);
    ctx.set_line_width(1.5);
    ctx.begin_path();
    for (i, (&v, &q)) in cdf.iter().zip(LATENCY_CDF_QUANTILES.iter()).enumerate() {
        let (px, py) = (x(v as f64), y(q));
        if i == 0 {
            ctx.move_to(px, py);
        } else {
            ctx.line_to(px, py);
        }
    }
    ctx.stroke();
    // The median and the 99th percentile, named.
    ctx.set_fill_style_str(AXIS);
    for (q, name) in [(0.5, "p50"), (0.99, "p99")] {
        if let Some(i) = LATENCY_CDF_QUANTILES.iter().position(|x| *x == q) {
            let (px, py) = (x(cdf[i] as f64), y(q));
            ctx.fill_rect(px - 2.0, py - 2.0, 4.0, 4.0);
            let _ = ctx.fill_text(
                &format!("{name} {}", ms(cdf[i] as f64)),
                (px + 5.0).min(w - 90.0),
                py + 12.0,
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_plot_marks_each_pixel_once() {
        let mut drawn = Pixels::new(100.0, 50.0);
        assert!(drawn.first(10.2, 20.7));
        assert!(!drawn.first(10.9, 20.1), "the same pixel");
        assert!(drawn.first(11.0, 20.0), "the next one");
        assert!(drawn.first(100.0, 50.0), "the far corner is inside");
        assert!(!drawn.first(100.5, 50.5));
        // Outside the plot nothing is remembered and nothing is refused.
        assert!(drawn.first(-1.0, 5.0) && drawn.first(-1.0, 5.0));
        assert!(drawn.first(500.0, 5.0) && drawn.first(5.0, 500.0) && drawn.first(5.0, 500.0));
    }

    #[test]
    fn ticks_are_round_and_inside() {
        assert_eq!(ticks(0.0, 10.0, 5), [0.0, 2.0, 4.0, 6.0, 8.0, 10.0]);
        assert_eq!(ticks(0.0, 1.0, 3), [0.0, 0.5, 1.0]);
        let fine = ticks(1.23, 1.31, 4);
        let want = [1.24, 1.26, 1.28, 1.30];
        assert_eq!(fine.len(), want.len(), "{fine:?}");
        assert!(
            fine.iter().zip(want).all(|(a, b)| (a - b).abs() < 1e-9),
            "{fine:?}"
        );
        assert!(
            ticks(1.23, 1.31, 4)
                .iter()
                .all(|t| (1.23..=1.31 + 1e-9).contains(t))
        );
        assert_eq!(ticks(5.0, 5.0, 3), [5.0]);
    }

    #[test]
    fn bursts_are_runs_of_loss_in_send_order() {
        let lost = [
            false, true, false, true, true, false, true, true, true, true, true,
        ];
        let counts = loss_bursts(lost);
        assert_eq!(counts, [1, 1, 0, 0, 1]);
        assert_eq!(
            bursts_in_words(&counts),
            "3 bursts of loss (length ×count): 1 ×1, 2 ×1, 5 ×1; 2.7 datagrams on average"
        );
        assert_eq!(loss_bursts([false, false]), Vec::<u64>::new());
        assert_eq!(
            bursts_in_words(&[]),
            "no loss among the datagrams this page holds"
        );
    }

    #[test]
    fn the_nearest_point_to_the_pointer() {
        let points = [(0, Some(5)), (100, None), (200, Some(7))];
        // A plot 206 px wide: 0 ns at x = LEFT, 200 ns at x = 200.
        assert_eq!(nearest(&points, 206.0, LEFT), Some((0, Some(5))));
        assert_eq!(nearest(&points, 206.0, 200.0), Some((200, Some(7))));
        assert_eq!(nearest(&points, 206.0, 130.0), Some((100, None)));
        assert_eq!(nearest(&[], 206.0, 100.0), None);
    }
}

/// A link's throughput and queue depth per direction over time, from its `link_stats`
/// samples: (time, sent on per second, queued), one series per direction.
pub fn link_series(history: &std::collections::VecDeque<LinkSample>) -> [Vec<(u64, f64, u64)>; 2] {
    let mut series = [Vec::new(), Vec::new()];
    for (before, now) in history.iter().zip(history.iter().skip(1)) {
        let dt = now.t_ns.saturating_sub(before.t_ns) as f64 / 1e9;
        if dt <= 0.0 {
            continue;
        }
        for (dir, s) in series.iter_mut().enumerate() {
            let sent = now.forwarded[dir].saturating_sub(before.forwarded[dir]) as f64;
            s.push((now.t_ns, sent / dt, now.queue_depth[dir]));
        }
    }
    series
}

/// A sample in words, for the pointer.
pub fn sample_in_words(series: &[Vec<(u64, f64, u64)>; 2], i: usize) -> Option<String> {
    let (c2t, t2c) = (series[0].get(i)?, series[1].get(i)?);
    Some(format!(
        "at {:.2} s: client → target {:.0}/s sent on, {} queued; target → client {:.0}/s, {} queued",
        c2t.0 as f64 / 1e9,
        c2t.1,
        c2t.2,
        t2c.1,
        t2c.2
    ))
}

const T2C: &str = "#6cb6ff";

#[derive(Properties, PartialEq)]
pub struct LinkHistoryProps {
    /// The link's id, for the canvas' id.
    pub link: AttrValue,
    /// Its samples.
    pub history: std::rc::Rc<std::collections::VecDeque<LinkSample>>,
}

/// Throughput (lines) and queue depth (bars) of each direction over the last minute.
#[component]
pub fn LinkHistory(props: &LinkHistoryProps) -> Html {
    let canvas = use_node_ref();
    let hover = use_state(|| None::<String>);
    {
        let canvas = canvas.clone();
        use_effect_with(props.history.clone(), move |history| {
            if let Some(c) = canvas.cast::<HtmlCanvasElement>() {
                plot_link(&c, &link_series(history));
            }
        });
    }
    let on_move = {
        let (canvas, hover, history) = (canvas.clone(), hover.clone(), props.history.clone());
        Callback::from(move |e: MouseEvent| {
            let Some(c) = canvas.cast::<HtmlCanvasElement>() else {
                return;
            };
            let series = link_series(&history);
            let n = series[0].len();
            if n == 0 {
                return;
            }
            let w = c.client_width() as f64;
            let f = ((e.offset_x() as f64 - LEFT) / (w - LEFT - 6.0)).clamp(0.0, 1.0);
            hover.set(sample_in_words(
                &series,
                (f * (n - 1) as f64).round() as usize,
            ));
        })
    };
    let on_leave = {
        let hover = hover.clone();
        Callback::from(move |_| hover.set(None))
    };
    if props.history.len() < 2 {
        return html! {};
    }
    html! {
        <div class="plot link-history">
            <span class="hint">{ "sent on per second (lines: green client → target, blue target → client) and queued at the bottleneck (bars), over the last minute" }</span>
            <canvas id={format!("{}-history", props.link)} ref={canvas} onmousemove={on_move} onmouseleave={on_leave} />
            <span class="hint mono link-history-hover">{ (*hover).clone().unwrap_or_else(|| "point at the plot for the figures of that moment".into()) }</span>
        </div>
    }
}

fn plot_link(canvas: &HtmlCanvasElement, series: &[Vec<(u64, f64, u64)>; 2]) {
    let Some((ctx, w, h)) = prepare(canvas) else {
        return;
    };
    let (Some(first), Some(last)) = (series[0].first(), series[0].last()) else {
        return;
    };
    let (t0, t1) = (first.0 as f64, (last.0 as f64).max(first.0 as f64 + 1.0));
    let max_rate = series.iter().flatten().map(|p| p.1).fold(1.0f64, f64::max);
    let max_queue = series.iter().flatten().map(|p| p.2).max().unwrap_or(0);
    let y = value_axis(&ctx, w, h, max_rate, |v| format!("{v:.0}/s"));
    let x = |t: f64| LEFT + (t - t0) / (t1 - t0) * (w - LEFT - 6.0);
    ctx.set_fill_style_str(AXIS);
    for t in ticks(t0 / 1e9, t1 / 1e9, 4) {
        let _ = ctx.fill_text(&format!("{t:.1} s"), (x(t * 1e9) - 14.0).max(LEFT), h - 3.0);
    }
    let bottom = h - BOTTOM;
    if max_queue > 0 {
        let _ = ctx.fill_text(&format!("queue max {max_queue}"), w - 100.0, 10.0);
    }
    for (dir, (points, color)) in series.iter().zip([GOOD, T2C]).enumerate() {
        if max_queue > 0 {
            ctx.set_fill_style_str(color);
            ctx.set_global_alpha(0.35);
            for &(t, _, q) in points {
                let height = q as f64 / max_queue as f64 * (bottom - 8.0) / 2.0;
                ctx.fill_rect(
                    x(t as f64) - 1.5 + dir as f64 * 2.0,
                    bottom - height,
                    2.0,
                    height,
                );
            }
            ctx.set_global_alpha(1.0);
        }
        ctx.set_stroke_style_str(color);
        ctx.set_line_width(1.5);
        ctx.begin_path();
        for (i, &(t, rate, _)) in points.iter().enumerate() {
            if i == 0 {
                ctx.move_to(x(t as f64), y(rate));
            } else {
                ctx.line_to(x(t as f64), y(rate));
            }
        }
        ctx.stroke();
    }
}

#[cfg(test)]
mod link_tests {
    use super::*;

    #[test]
    fn a_links_throughput_is_the_change_in_what_it_sent_over_the_time_between() {
        let sample = |t_ns, forwarded, queue_depth| LinkSample {
            t_ns,
            forwarded,
            queue_depth,
        };
        let history = std::collections::VecDeque::from([
            sample(0, [0, 0], [0, 0]),
            sample(250_000_000, [250, 10], [5, 0]),
            sample(500_000_000, [750, 10], [0, 1]),
        ]);
        let series = link_series(&history);
        assert_eq!(
            series,
            [
                vec![(250_000_000, 1_000.0, 5), (500_000_000, 2_000.0, 0)],
                vec![(250_000_000, 40.0, 0), (500_000_000, 0.0, 1)],
            ]
        );
        assert_eq!(
            sample_in_words(&series, 0).unwrap(),
            "at 0.25 s: client → target 1000/s sent on, 5 queued; target → client 40/s, 0 queued"
        );
        assert_eq!(sample_in_words(&series, 2), None);
    }
}
