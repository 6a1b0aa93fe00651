//! Drawing the timeline on its canvas: lanes, time ticks, and every arrow in the view
//! with the mark of its fate. Reads the model and the view; changes nothing.
//!
//! (Over 600 lines: a frame is one pass over what is in view, arrows, the server's
//! counts where the page was spared datagrams, marks and headings, and reads best in
//! one place; the palette and the line keys follow it.)

use web_sys::{CanvasRenderingContext2d, HtmlCanvasElement};

use super::HEADER_PX;
use crate::timeline::{Arrow, Filter, LaneKind, LossWhy, Mark, TcpMark, Timeline};
use crate::view::View;

/// Pixels left of the first lane, for time labels.
const AXIS_PX: f64 = 78.0;
/// The selected time range's band.
const RANGE: &str = "rgba(88, 166, 255, 0.14)";
const BG: &str = "#0f1419";
const GRID: &str = "#1d252f";
const TEXT: &str = "#8a96a3";
const LANE: &str = "#3a4756";
/// Beside the time axis where the server's counts stand in for arrows.
const THINNED: &str = "#d29922";
/// The counts' bars: sent (right of a lane), received (left), lost or dropped (red,
/// over the sent bar, its share of it).
const SENT_BAR: &str = "rgba(88, 166, 255, 0.55)";
const RECEIVED_BAR: &str = "rgba(63, 185, 80, 0.55)";
const LOST_BAR: &str = "#f85149";

/// Where things go on the canvas.
pub(super) struct Geometry {
    width: f64,
    pub(super) height: f64,
    /// The column of each lane (hidden lanes have none).
    columns: Vec<Option<u16>>,
    /// How many columns there are.
    count: usize,
}

impl Geometry {
    pub(super) fn new(width: f64, height: f64, timeline: &Timeline, filter: &Filter) -> Self {
        let shown = timeline.lanes_shown(filter);
        let all = timeline.columns();
        let mut order: Vec<u16> = (0..all.len() as u16)
            .filter(|&l| shown[l as usize])
            .collect();
        order.sort_by_key(|&l| all[l as usize]);
        let mut columns = vec![None; all.len()];
        for (column, &lane) in order.iter().enumerate() {
            columns[lane as usize] = Some(column as u16);
        }
        Geometry {
            width,
            height,
            columns,
            count: order.len(),
        }
    }

    /// The space between two lanes.
    fn spacing(&self) -> f64 {
        (self.width - AXIS_PX) / self.count.max(1) as f64
    }

    fn lane_x(&self, lane: u16) -> f64 {
        let column = self
            .columns
            .get(lane as usize)
            .copied()
            .flatten()
            .unwrap_or(lane);
        AXIS_PX + self.spacing() * (column as f64 + 0.5)
    }

    fn is_shown(&self, lane: usize) -> bool {
        self.columns.get(lane).is_some_and(Option::is_some)
    }

    /// Where an arrow ends: a lost datagram stops at the link that dropped it (or at
    /// the receiver when it timed out).
    fn end_lane(&self, a: &Arrow) -> u16 {
        match a.mark {
            Mark::Lost(LossWhy::Link(_)) => a.via.unwrap_or(a.to),
            _ => a.to,
        }
    }

    pub(super) fn segment(&self, a: &Arrow, view: &View) -> (f64, f64, f64, f64) {
        (
            self.lane_x(a.from),
            HEADER_PX + view.y(a.t0),
            self.lane_x(self.end_lane(a)),
            HEADER_PX + view.y(a.t1),
        )
    }
}

/// The longest of `label`, `short`, or a cut of `short` ending in "…" that `fits`.
pub(super) fn fit(label: &str, short: &str, fits: &dyn Fn(&str) -> bool) -> String {
    if fits(label) {
        return label.to_string();
    }
    if !short.is_empty() && fits(short) {
        return short.to_string();
    }
    let base = if short.is_empty() { label } else { short };
    let chars: Vec<char> = base.chars().collect();
    (0..chars.len())
        .rev()
        .map(|n| format!("{}…", chars[..n].iter().collect::<String>()))
        .find(|t| fits(t))
        .unwrap_or_default()
}

/// A readable tick step for the current scale: 1, 2 or 5 × 10^k ns, at least 70 px apart.
fn tick_step(ns_per_px: f64) -> f64 {
    let min = ns_per_px * 70.0;
    let mut step = 1.0;
    loop {
        for m in [1.0, 2.0, 5.0] {
            if step * m >= min {
                return step * m;
            }
        }
        step *= 10.0;
    }
}

fn time_label(t_ns: f64, step: f64) -> String {
    let s = t_ns / 1e9;
    let decimals = if step >= 1e9 {
        0
    } else {
        ((1e9 / step).log10().ceil() as usize).min(6)
    };
    format!("{s:.decimals$} s")
}

pub(super) fn draw(
    canvas: &HtmlCanvasElement,
    timeline: &Timeline,
    view: &View,
    filter: &Filter,
    selected: Option<u64>,
    range: Option<(u64, u64)>,
) {
    let ratio = web_sys::window().map_or(1.0, |w| w.device_pixel_ratio());
    let (css_w, css_h) = (canvas.client_width() as f64, canvas.client_height() as f64);
    if css_w <= 0.0 || css_h <= 0.0 {
        return;
    }
    let (w, h) = ((css_w * ratio) as u32, (css_h * ratio) as u32);
    if canvas.width() != w || canvas.height() != h {
        canvas.set_width(w);
        canvas.set_height(h);
    }
    let Some(ctx) = crate::components::context_2d(canvas) else {
        return;
    };
    let _ = ctx.set_transform(ratio, 0.0, 0.0, ratio, 0.0, 0.0);
    let geo = Geometry::new(css_w, css_h, timeline, filter);
    ctx.set_fill_style_str(BG);
    ctx.fill_rect(0.0, 0.0, css_w, css_h);
    // The time range selected for its figures: a band across every lane.
    if let Some((from, to)) = range {
        let (y0, y1) = (
            (HEADER_PX + view.y(from)).max(HEADER_PX),
            (HEADER_PX + view.y(to)).min(css_h),
        );
        if y1 > y0 {
            ctx.set_fill_style_str(RANGE);
            ctx.fill_rect(0.0, y0, css_w, (y1 - y0).max(1.0));
        }
    }

    // Time grid.
    let step = tick_step(view.ns_per_px);
    let t_from = view.t(0.0);
    let t_to = view.t(geo.height - HEADER_PX);
    ctx.set_font("11px ui-monospace, monospace");
    ctx.set_line_width(1.0);
    let mut t = (t_from / step).floor() * step;
    while t <= t_to {
        let y = HEADER_PX + (t - view.t_top) / view.ns_per_px;
        if y >= HEADER_PX {
            ctx.set_stroke_style_str(GRID);
            ctx.begin_path();
            ctx.move_to(AXIS_PX - 6.0, y);
            ctx.line_to(css_w, y);
            ctx.stroke();
            ctx.set_fill_style_str(TEXT);
            let _ = ctx.fill_text(&time_label(t, step), 4.0, y + 4.0);
        }
        t += step;
    }

    // Lanes (their headings are drawn last, over the arrows).
    for (i, lane) in timeline.lanes.iter().enumerate() {
        if !geo.is_shown(i) {
            continue;
        }
        let x = geo.lane_x(i as u16);
        ctx.set_stroke_style_str(match lane.kind {
            LaneKind::Lab => LANE,
            LaneKind::Link => "#4fb3ff66",
            LaneKind::Outside => "#55606c",
        });
        ctx.set_line_width(if lane.kind == LaneKind::Link {
            3.0
        } else {
            1.0
        });
        ctx.begin_path();
        ctx.move_to(x, HEADER_PX);
        ctx.line_to(x, css_h);
        ctx.stroke();
    }

    let (vis_from, vis_to) = (t_from.max(0.0) as u64, t_to.max(0.0) as u64);
    // Arrows, one path per colour. Arrows that would land on the same pixels (a whole
    // session in view puts hundreds in one pixel row) are drawn once: that keeps a
    // frame's canvas calls proportional to the pixels, not to the datagrams.
    let mut drawn = 0usize;
    let mut lost_at = None;
    // The middle of the first arrow drawn whole in the window (for tools and tests).
    let mut arrow_at = None;
    // Each distinct line (its place in `counts`), and how many arrows each stands for.
    let mut seen: Lines = Lines::default();
    let mut counts: Vec<u32> = Vec::new();
    let mut groups: [Vec<(Segment, usize)>; PALETTE.len()] = Default::default();
    let mut place = |a: &Arrow| {
        let (x0, y0, x1, y1) = geo.segment(a, view);
        drawn += 1;
        let whole = y0 > HEADER_PX + 4.0 && y1 < css_h - 4.0;
        if lost_at.is_none() && a.is_lost() && whole {
            lost_at = Some(((x0 + x1) / 2.0, (y0 + y1) / 2.0, y1 - y0));
        }
        if arrow_at.is_none() && whole {
            arrow_at = Some(((x0 + x1) / 2.0, (y0 + y1) / 2.0));
        }
        let group = colour_group(a.mark);
        let key = (
            x0 as i32,
            y0 as i32,
            x1 as i32,
            y1 as i32,
            group,
            mark_shape(a.mark),
        );
        let line = *seen.entry(key).or_insert_with(|| {
            counts.push(0);
            groups[group].push(((x0, y0, x1, y1, a.mark), counts.len() - 1));
            counts.len() - 1
        });
        counts[line] += 1;
    };
    let scale = &timeline.scale;
    let mut from_detail = 0usize;
    let mut counted = 0u64;
    let thinned: Vec<(u64, u64)> = scale.thinned_in(vis_from, vis_to).collect();
    // The part of the view that was thinned, and the window fetched for it when it
    // holds every event there.
    let span = scale.thinned_span(vis_from, vis_to);
    let whole_detail = span.and_then(|(a, b)| scale.complete_detail(a, b));
    if let Some(detail) = whole_detail {
        // Where the page was thinned, the events fetched from the server alone (the
        // page's own arrows there lack their fates or their sends); elsewhere its own.
        for (_, a) in timeline.visible(filter, vis_from, vis_to) {
            if !scale.is_thinned(a.t0) {
                place(a);
            }
        }
        for (_, a) in detail.timeline.visible(filter, vis_from, vis_to) {
            if scale.is_thinned(a.t0) {
                place(a);
                from_detail += 1;
            }
        }
    } else {
        for (_, a) in timeline.visible(filter, vis_from, vis_to) {
            place(a);
        }
    }
    // Where single datagrams were left out of the page: the arrows of the window
    // fetched for it when it covers the view, else the server's counts.
    if !thinned.is_empty() {
        if let Some(detail) = scale.detail.as_ref().filter(|_| whole_detail.is_none()) {
            for (_, a) in detail.timeline.visible(filter, vis_from, vis_to) {
                if scale.is_thinned(a.t0) {
                    place(a);
                    from_detail += 1;
                }
            }
        }
        let covered = span.is_some_and(|(a, b)| scale.detail_covers(a, b));
        let partial = scale.detail.as_ref().is_some_and(|d| !d.complete);
        if (!covered || partial)
            && let Some(c) = &scale.counts
        {
            counted = draw_counts(&ctx, &geo, view, timeline, &thinned, c, css_h);
        }
        // A window the server could give only part of: say why, once, under the
        // headings.
        if covered && scale.detail.as_ref().is_some_and(|d| !d.complete) {
            ctx.set_fill_style_str(THINNED);
            let _ = ctx.fill_text(
                "part of this time is no longer in the server's log: counts stand in (a recording keeps every event)",
                AXIS_PX,
                HEADER_PX + 14.0,
            );
        }
        // A mark beside the time axis where counts stand in for arrows.
        ctx.set_fill_style_str(THINNED);
        for (a, b) in &thinned {
            let (y0, y1) = (HEADER_PX + view.y(*a), HEADER_PX + view.y(*b));
            ctx.fill_rect(AXIS_PX - 8.0, y0.max(HEADER_PX), 3.0, (y1 - y0).max(1.0));
        }
    }
    let _ = canvas.set_attribute("data-thinned", &thinned.len().to_string());
    // The first of them, ns: where a person (or a test) zooms in to see its arrows.
    match thinned.first() {
        Some((a, b)) => {
            let _ = canvas.set_attribute("data-thinned-at", &format!("{a},{b}"));
        }
        None => {
            let _ = canvas.remove_attribute("data-thinned-at");
        }
    }
    let _ = canvas.set_attribute("data-counted", &counted.to_string());
    let _ = canvas.set_attribute("data-detail", &from_detail.to_string());
    // How many events were left out of the page, all together.
    let _ = canvas.set_attribute("data-passed", &scale.passed.to_string());
    // How many datagrams the server counted sent in the view, when its counts cover it.
    match span.and_then(|(a, b)| scale.sent_in(a, b)) {
        Some(n) => {
            let _ = canvas.set_attribute("data-server-sent", &n.to_string());
        }
        None => {
            let _ = canvas.remove_attribute("data-server-sent");
        }
    }
    let partial = scale
        .detail
        .as_ref()
        .is_some_and(|d| !d.complete && d.from <= vis_from && d.to >= vis_to);
    let _ = canvas.set_attribute(
        "data-detail-partial",
        if partial { "true" } else { "false" },
    );
    // Dense: more arrows than DENSE_PER_ROW per pixel row of the window. Then a line
    // that stands for many is drawn brighter than one that stands for few, so busy
    // stretches read as density, not as a solid block (lost ones stay bright: they
    // matter however few).
    let dense = drawn as f64 > DENSE_PER_ROW * (css_h - HEADER_PX).max(1.0);
    let most = counts.iter().copied().max().unwrap_or(1).max(2);
    for (group, segments) in groups.iter().enumerate() {
        if segments.is_empty() {
            continue;
        }
        ctx.set_stroke_style_str(PALETTE[group]);
        ctx.set_line_width(if group == LOST_GROUP { 1.6 } else { 1.2 });
        for (level, alpha) in DENSITY_ALPHA.iter().enumerate() {
            ctx.begin_path();
            let mut any = false;
            for ((x0, y0, x1, y1, mark), line) in segments {
                if density_level(dense && group != LOST_GROUP, counts[*line], most) != level {
                    continue;
                }
                any = true;
                ctx.move_to(*x0, *y0);
                ctx.line_to(*x1, *y1);
                end_mark(&ctx, *mark, *x0, *y0, *x1, *y1);
            }
            if any {
                ctx.set_global_alpha(*alpha);
                ctx.stroke();
            }
        }
        ctx.set_global_alpha(1.0);
    }
    let _ = canvas.set_attribute("data-dense", if dense { "true" } else { "false" });
    // What was drawn, for people's tools and the tests: how many arrows, and where the
    // first visible lost one is (the middle of its line).
    let _ = canvas.set_attribute("data-drawn", &drawn.to_string());
    let shown = timeline
        .arrows
        .iter()
        .filter(|a| timeline.shows(filter, a))
        .count();
    let _ = canvas.set_attribute("data-shown", &shown.to_string());
    let _ = canvas.set_attribute("data-follow", if view.follow { "true" } else { "false" });
    // The times at the top and the bottom of the window, ns.
    let _ = canvas.set_attribute("data-window", &format!("{t_from:.0},{t_to:.0}"));
    match arrow_at {
        Some((x, y)) => {
            let _ = canvas.set_attribute("data-arrow-at", &format!("{x:.0},{y:.0}"));
        }
        None => {
            let _ = canvas.remove_attribute("data-arrow-at");
        }
    }
    match lost_at {
        Some((x, y, tall)) => {
            let _ = canvas.set_attribute("data-lost-at", &format!("{x:.0},{y:.0}"));
            // How far down the page the arrow runs: the time it took to its end.
            let _ = canvas.set_attribute("data-lost-tall", &format!("{tall:.0}"));
        }
        None => {
            let _ = canvas.remove_attribute("data-lost-at");
            let _ = canvas.remove_attribute("data-lost-tall");
        }
    }
    // The selected arrow on top.
    if let Some(id) = selected
        && let Some(a) = timeline.arrow_of(id)
    {
        let (x0, y0, x1, y1) = geo.segment(a, view);
        ctx.set_stroke_style_str("#ffffff");
        ctx.set_line_width(3.0);
        ctx.begin_path();
        ctx.move_to(x0, y0);
        ctx.line_to(x1, y1);
        ctx.stroke();
        ctx.set_line_width(1.2);
    }
    // Lane headings stay readable over the arrows.
    ctx.set_fill_style_str("#0f1419ee");
    ctx.fill_rect(0.0, 0.0, css_w, HEADER_PX - 2.0);
    // Each heading fits its column: the full label, else the short name, else as much
    // of it as fits; so headings never run into each other.
    let room = geo.spacing() - 8.0;
    let fits = |text: &str| ctx.measure_text(text).map_or(true, |m| m.width() <= room);
    for (i, lane) in timeline.lanes.iter().enumerate() {
        if !geo.is_shown(i) {
            continue;
        }
        let x = geo.lane_x(i as u16);
        ctx.set_fill_style_str(match (lane.gone, &lane.kind) {
            (true, _) => TEXT,
            (false, LaneKind::Lab) => "#d7dde5",
            (false, LaneKind::Link) => "#4fb3ff",
            (false, LaneKind::Outside) => TEXT,
        });
        ctx.set_text_align("center");
        let _ = ctx.fill_text(&fit(&lane.label, &lane.short, &fits), x, 14.0);
        ctx.set_fill_style_str(TEXT);
        let kind = match (lane.gone, &lane.kind) {
            (true, LaneKind::Link) => "deleted",
            (true, _) => "closed",
            (false, LaneKind::Lab) => "lab socket",
            (false, LaneKind::Link) => "link",
            (false, LaneKind::Outside) => "outside",
        };
        let _ = ctx.fill_text(&fit(kind, "", &fits), x, 27.0);
        ctx.set_text_align("start");
    }
}

/// Draws the server's counts in the thinned ranges in view, as bars along each lane
/// (their length grows with the log of the count). Returns how many sent datagrams
/// they stand for.
fn draw_counts(
    ctx: &CanvasRenderingContext2d,
    geo: &Geometry,
    view: &View,
    timeline: &Timeline,
    thinned: &[(u64, u64)],
    counts: &socklab_protocol::Aggregates,
    css_h: f64,
) -> u64 {
    let bucket = |i: usize| {
        let t0 = counts
            .from_ns
            .saturating_add(counts.bucket_ns.saturating_mul(i as u64));
        (t0, t0.saturating_add(counts.bucket_ns))
    };
    let in_thinned = |(t0, t1): (u64, u64)| thinned.iter().any(|(a, b)| t0 <= *b && t1 >= *a);
    let most = counts
        .lanes
        .iter()
        .flat_map(|l| l.sent.iter().chain(&l.received).chain(&l.forwarded))
        .copied()
        .max()
        .unwrap_or(1)
        .max(1);
    let half = (geo.spacing() * 0.42).max(2.0);
    let width = |n: u32| half * (f64::from(n) + 1.0).ln() / (f64::from(most) + 1.0).ln();
    let mut sent_drawn = 0u64;
    for lane in &counts.lanes {
        let Some(index) = timeline.lane_index(&lane.lane) else {
            continue;
        };
        if !geo.is_shown(index as usize) {
            continue;
        }
        let x = geo.lane_x(index);
        let n_at = |list: &[u32], i: usize| list.get(i).copied().unwrap_or(0);
        for i in 0..counts.buckets as usize {
            let (t0, t1) = bucket(i);
            if !in_thinned((t0, t1)) {
                continue;
            }
            let (y0, y1) = (HEADER_PX + view.y(t0), HEADER_PX + view.y(t1));
            if y1 < HEADER_PX || y0 > css_h {
                continue;
            }
            let h = (y1 - y0).max(1.0);
            let sent = n_at(&lane.sent, i).saturating_add(n_at(&lane.forwarded, i));
            let received = n_at(&lane.received, i);
            let lost = n_at(&lane.lost, i).saturating_add(n_at(&lane.dropped, i));
            sent_drawn += u64::from(n_at(&lane.sent, i));
            if received > 0 {
                ctx.set_fill_style_str(RECEIVED_BAR);
                let w = width(received);
                ctx.fill_rect(x - w, y0, w, h);
            }
            if sent > 0 {
                ctx.set_fill_style_str(SENT_BAR);
                let w = width(sent);
                ctx.fill_rect(x, y0, w, h);
                if lost > 0 {
                    ctx.set_fill_style_str(LOST_BAR);
                    let share = f64::from(lost.min(sent)) / f64::from(sent);
                    ctx.fill_rect(x, y0, (w * share).max(1.5), h);
                }
            } else if lost > 0 {
                ctx.set_fill_style_str(LOST_BAR);
                ctx.fill_rect(x, y0, width(lost), h);
            }
        }
    }
    sent_drawn
}

/// An arrow on screen: start and end point, and its mark.
type Segment = (f64, f64, f64, f64, Mark);
/// A line as drawn: its pixels, colour group and end mark (arrows that share one are
/// drawn once).
type LineKey = (i32, i32, i32, i32, usize, u8);
/// The lines of a frame, by key.
type Lines = std::collections::HashMap<LineKey, usize, std::hash::BuildHasherDefault<LineHasher>>;

/// A hasher for lines' keys (a few small integers, one per arrow in view each frame):
/// a multiply and a rotate per integer, where the standard SipHash cost more than the
/// rest of placing the line. Keys come from the page's own drawing, not from outside.
#[derive(Default)]
struct LineHasher(u64);

impl LineHasher {
    fn add(&mut self, n: u64) {
        self.0 = (self.0.rotate_left(5) ^ n).wrapping_mul(0x517c_c1b7_2722_0a95);
    }
}

impl std::hash::Hasher for LineHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.add(u64::from(b));
        }
    }
    fn write_u8(&mut self, n: u8) {
        self.add(u64::from(n));
    }
    fn write_i32(&mut self, n: i32) {
        self.add(u64::from(n as u32));
    }
    fn write_usize(&mut self, n: usize) {
        self.add(n as u64);
    }
}

/// The arrows' colours, by [`colour_group`].
const PALETTE: [&str; 6] = [
    "#5ad19a", "#f0a34a", "#c792ea", "#ff6b6b", "#4fb3ff", "#8a96a3",
];
/// The group drawn with bolder lines (its crosses must stand out).
const LOST_GROUP: usize = 3;
/// Above this many arrows per pixel row in view, lines are drawn by density.
const DENSE_PER_ROW: f64 = 2.0;
/// How many brightness levels density is drawn with.
const DENSITY_LEVELS: usize = 5;
/// Each level's opacity, faint to full.
const DENSITY_ALPHA: [f64; DENSITY_LEVELS] = [0.22, 0.4, 0.58, 0.78, 1.0];

/// The brightness level of a line standing for `count` arrows when the busiest stands
/// for `most`: on a log scale, so one datagram still shows next to thousands. Full
/// brightness when not drawing by density.
fn density_level(dense: bool, count: u32, most: u32) -> usize {
    if !dense {
        return DENSITY_LEVELS - 1;
    }
    let share = (f64::from(count).ln() / f64::from(most).ln()).clamp(0.0, 1.0);
    ((share * (DENSITY_LEVELS - 1) as f64).round() as usize).min(DENSITY_LEVELS - 1)
}

fn colour_group(mark: Mark) -> usize {
    match mark {
        Mark::Delivered | Mark::Bytes => 0,
        Mark::Tcp(TcpMark::Reset) => 3,
        Mark::Tcp(_) => 5,
        Mark::Reordered(_) | Mark::Late => 1,
        Mark::Duplicate => 2,
        Mark::Lost(_) | Mark::Unanswered(_) => 3,
        Mark::Request(_) | Mark::Reply => 4,
        Mark::Pending | Mark::Incoming | Mark::Untracked => 5,
    }
}

/// Which end mark an arrow gets (arrows with the same pixels and shape are drawn once).
fn mark_shape(mark: Mark) -> u8 {
    match mark {
        Mark::Lost(LossWhy::Kernel) => 5,
        Mark::Lost(_) | Mark::Unanswered(_) | Mark::Tcp(TcpMark::Reset) => 1,
        Mark::Pending | Mark::Untracked => 2,
        Mark::Reordered(_) | Mark::Late => 3,
        Mark::Duplicate => 4,
        _ => 0,
    }
}

/// Adds the mark at an arrow's end to the current path: a head, a cross for a loss (in
/// a box when the kernel dropped it at the receiver), a ring for reordering, a small
/// ring for a duplicate.
fn end_mark(ctx: &CanvasRenderingContext2d, mark: Mark, x0: f64, y0: f64, x1: f64, y1: f64) {
    match mark {
        Mark::Lost(_) | Mark::Unanswered(_) | Mark::Tcp(TcpMark::Reset) => {
            let s = 4.5;
            ctx.move_to(x1 - s, y1 - s);
            ctx.line_to(x1 + s, y1 + s);
            ctx.move_to(x1 + s, y1 - s);
            ctx.line_to(x1 - s, y1 + s);
            if mark == Mark::Lost(LossWhy::Kernel) {
                let b = s + 2.0;
                ctx.rect(x1 - b, y1 - b, 2.0 * b, 2.0 * b);
            }
        }
        Mark::Pending | Mark::Untracked => {}
        _ => {
            let angle = (y1 - y0).atan2(x1 - x0);
            let len = 7.0;
            ctx.move_to(
                x1 - len * (angle - 0.4).cos(),
                y1 - len * (angle - 0.4).sin(),
            );
            ctx.line_to(x1, y1);
            ctx.line_to(
                x1 - len * (angle + 0.4).cos(),
                y1 - len * (angle + 0.4).sin(),
            );
            let ring = match mark {
                Mark::Reordered(_) | Mark::Late => 5.5,
                Mark::Duplicate => 2.5,
                _ => 0.0,
            };
            if ring > 0.0 {
                ctx.move_to(x1 + ring, y1);
                let _ = ctx.arc(x1, y1, ring, 0.0, std::f64::consts::TAU);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{DENSITY_LEVELS, density_level, fit};

    #[test]
    fn density_is_brighter_where_more_arrows_share_a_line() {
        let top = DENSITY_LEVELS - 1;
        assert_eq!(density_level(false, 1, 1000), top, "not dense: all bright");
        assert_eq!(density_level(true, 1000, 1000), top);
        assert_eq!(density_level(true, 1, 1000), 0);
        let middling = density_level(true, 30, 1000);
        assert!(0 < middling && middling < top, "{middling}");
        assert!(density_level(true, 100, 1000) >= middling);
    }

    #[test]
    fn headings_shorten_until_they_fit() {
        // One unit per character.
        let room = |n: usize| move |t: &str| t.chars().count() <= n;
        assert_eq!(
            fit("s1 127.0.0.1:4000", "s1", &room(20)),
            "s1 127.0.0.1:4000"
        );
        assert_eq!(fit("s1 127.0.0.1:4000", "s1", &room(5)), "s1");
        assert_eq!(fit("127.0.0.1:40000", ":40000", &room(4)), ":40…");
        assert_eq!(fit("lab socket", "", &room(4)), "lab…");
        assert_eq!(fit("lab socket", "", &room(0)), "");
    }
}
