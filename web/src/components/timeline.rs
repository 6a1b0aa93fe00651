//! The timeline: one lane per endpoint, time running down the page, an arrow per
//! datagram from its send to its receive, drawn on a canvas.

use std::cell::RefCell;
use std::rc::Rc;

use wasm_bindgen::JsCast as _;
use wasm_bindgen::prelude::Closure;
use web_sys::{CanvasRenderingContext2d, HtmlCanvasElement, HtmlSelectElement};
use yew::prelude::*;

use super::use_ctx;
use crate::model::Action;
use crate::timeline::{Arrow, Filter, LaneKind, LossWhy, Mark, Timeline};
use crate::view::{View, ViewAction, ZOOM_STEP, distance_to_segment};

/// Pixels above the first time tick, for lane headings.
const HEADER_PX: f64 = 34.0;
/// Pixels left of the first lane, for time labels.
const AXIS_PX: f64 = 78.0;
/// How close a click must be to an arrow to select it.
const HIT_PX: f64 = 7.0;

const BG: &str = "#0f1419";
const GRID: &str = "#1d252f";
const TEXT: &str = "#8a96a3";
const LANE: &str = "#3a4756";

/// Where things go on the canvas.
struct Geometry {
    width: f64,
    height: f64,
    /// The column of each lane.
    columns: Vec<u16>,
}

impl Geometry {
    fn new(width: f64, height: f64, timeline: &Timeline) -> Self {
        Geometry {
            width,
            height,
            columns: timeline.columns(),
        }
    }

    fn lane_x(&self, lane: u16) -> f64 {
        let spacing = (self.width - AXIS_PX) / self.columns.len().max(1) as f64;
        let column = self.columns.get(lane as usize).copied().unwrap_or(lane);
        AXIS_PX + spacing * (column as f64 + 0.5)
    }

    /// Where an arrow ends: a lost datagram stops at the link that dropped it (or at
    /// the receiver when it timed out).
    fn end_lane(&self, a: &Arrow) -> u16 {
        match a.mark {
            Mark::Lost(LossWhy::Link(_)) => a.via.unwrap_or(a.to),
            _ => a.to,
        }
    }

    fn segment(&self, a: &Arrow, view: &View) -> (f64, f64, f64, f64) {
        (
            self.lane_x(a.from),
            HEADER_PX + view.y(a.t0),
            self.lane_x(self.end_lane(a)),
            HEADER_PX + view.y(a.t1),
        )
    }
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

fn draw(
    canvas: &HtmlCanvasElement,
    timeline: &Timeline,
    view: &View,
    filter: &Filter,
    selected: Option<u64>,
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
    let Some(ctx) = super::context_2d(canvas) else {
        return;
    };
    let _ = ctx.set_transform(ratio, 0.0, 0.0, ratio, 0.0, 0.0);
    let geo = Geometry::new(css_w, css_h, timeline);
    ctx.set_fill_style_str(BG);
    ctx.fill_rect(0.0, 0.0, css_w, css_h);

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
    let mut seen = std::collections::HashSet::new();
    let mut groups: [Vec<Segment>; PALETTE.len()] = Default::default();
    for (_, a) in timeline.visible(filter, vis_from, vis_to) {
        let (x0, y0, x1, y1) = geo.segment(a, view);
        drawn += 1;
        if lost_at.is_none() && a.is_lost() && y0 > HEADER_PX + 4.0 && y1 < css_h - 4.0 {
            lost_at = Some(((x0 + x1) / 2.0, (y0 + y1) / 2.0));
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
        if seen.insert(key) {
            groups[group].push((x0, y0, x1, y1, a.mark));
        }
    }
    for (group, segments) in groups.iter().enumerate() {
        if segments.is_empty() {
            continue;
        }
        ctx.set_stroke_style_str(PALETTE[group]);
        ctx.set_line_width(if group == LOST_GROUP { 1.6 } else { 1.2 });
        ctx.begin_path();
        for &(x0, y0, x1, y1, mark) in segments {
            ctx.move_to(x0, y0);
            ctx.line_to(x1, y1);
            end_mark(&ctx, mark, x0, y0, x1, y1);
        }
        ctx.stroke();
    }
    // What was drawn, for people's tools and the tests: how many arrows, and where the
    // first visible lost one is (the middle of its line).
    let _ = canvas.set_attribute("data-drawn", &drawn.to_string());
    let shown = timeline.arrows.iter().filter(|a| filter.shows(a)).count();
    let _ = canvas.set_attribute("data-shown", &shown.to_string());
    let _ = canvas.set_attribute("data-follow", if view.follow { "true" } else { "false" });
    match lost_at {
        Some((x, y)) => {
            let _ = canvas.set_attribute("data-lost-at", &format!("{x:.0},{y:.0}"));
        }
        None => {
            let _ = canvas.remove_attribute("data-lost-at");
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
    for (i, lane) in timeline.lanes.iter().enumerate() {
        let x = geo.lane_x(i as u16);
        ctx.set_fill_style_str(match lane.kind {
            LaneKind::Lab => "#d7dde5",
            LaneKind::Link => "#4fb3ff",
            LaneKind::Outside => TEXT,
        });
        ctx.set_text_align("center");
        let _ = ctx.fill_text(&lane.label, x, 14.0);
        ctx.set_fill_style_str(TEXT);
        let _ = ctx.fill_text(
            match lane.kind {
                LaneKind::Lab => "lab socket",
                LaneKind::Link => "link",
                LaneKind::Outside => "outside",
            },
            x,
            27.0,
        );
        ctx.set_text_align("start");
    }
}

/// An arrow on screen: start and end point, and its mark.
type Segment = (f64, f64, f64, f64, Mark);

/// The arrows' colours, by [`colour_group`].
const PALETTE: [&str; 6] = [
    "#5ad19a", "#f0a34a", "#c792ea", "#ff6b6b", "#4fb3ff", "#8a96a3",
];
/// The group drawn with bolder lines (its crosses must stand out).
const LOST_GROUP: usize = 3;

fn colour_group(mark: Mark) -> usize {
    match mark {
        Mark::Delivered => 0,
        Mark::Reordered(_) | Mark::Late => 1,
        Mark::Duplicate => 2,
        Mark::Lost(_) | Mark::Unanswered => 3,
        Mark::Request | Mark::Reply => 4,
        Mark::Pending | Mark::Incoming | Mark::Untracked => 5,
    }
}

/// Which end mark an arrow gets (arrows with the same pixels and shape are drawn once).
fn mark_shape(mark: Mark) -> u8 {
    match mark {
        Mark::Lost(_) | Mark::Unanswered => 1,
        Mark::Pending | Mark::Untracked => 2,
        Mark::Reordered(_) | Mark::Late => 3,
        Mark::Duplicate => 4,
        _ => 0,
    }
}

/// Adds the mark at an arrow's end to the current path: a head, a cross for a loss, a
/// ring for reordering, a small ring for a duplicate.
fn end_mark(ctx: &CanvasRenderingContext2d, mark: Mark, x0: f64, y0: f64, x1: f64, y1: f64) {
    match mark {
        Mark::Lost(_) | Mark::Unanswered => {
            let s = 4.5;
            ctx.move_to(x1 - s, y1 - s);
            ctx.line_to(x1 + s, y1 + s);
            ctx.move_to(x1 + s, y1 - s);
            ctx.line_to(x1 - s, y1 + s);
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

/// What the next animation frame draws.
struct Pending {
    scheduled: bool,
    canvas: Option<HtmlCanvasElement>,
    timeline: Option<Rc<RefCell<Timeline>>>,
    view: View,
    filter: Filter,
    selected: Option<u64>,
    callback: Option<Closure<dyn FnMut()>>,
}

/// Draws at the next animation frame, at most once per frame however many updates
/// arrive before it.
fn schedule(pending: &Rc<RefCell<Pending>>) {
    if pending.borrow().scheduled {
        return;
    }
    let Some(window) = web_sys::window() else {
        return;
    };
    let shared = pending.clone();
    let callback = Closure::<dyn FnMut()>::new(move || {
        let mut p = shared.borrow_mut();
        p.scheduled = false;
        if let (Some(canvas), Some(timeline)) = (&p.canvas, &p.timeline) {
            let timeline = timeline.borrow();
            let view = p
                .view
                .followed(timeline.latest_t, canvas.client_height() as f64 - HEADER_PX);
            let clock = web_sys::window().and_then(|w| w.performance());
            let started = clock.as_ref().map_or(0.0, |c| c.now());
            draw(canvas, &timeline, &view, &p.filter, p.selected);
            // How long drawing took, and when it finished, for the frame-time benchmark.
            if let Some(clock) = clock {
                let ended = clock.now();
                let _ = canvas.set_attribute("data-draw-ms", &format!("{:.3}", ended - started));
                let _ = canvas.set_attribute("data-drawn-at", &format!("{ended:.3}"));
            }
        }
    });
    let mut p = pending.borrow_mut();
    if window
        .request_animation_frame(callback.as_ref().unchecked_ref())
        .is_ok()
    {
        p.scheduled = true;
        p.callback = Some(callback);
    }
}

fn fate_checkbox(
    label: &'static str,
    id: &'static str,
    checked: bool,
    filter: &UseStateHandle<Filter>,
    set: fn(&mut Filter, bool),
) -> Html {
    let filter = filter.clone();
    let onclick = Callback::from(move |_| {
        let mut next = (*filter).clone();
        set(&mut next, !checked);
        filter.set(next);
    });
    html! {
        <label class="check"><input {id} type="checkbox" {checked} {onclick} />{ label }</label>
    }
}

/// The timeline panel: toolbar, canvas, legend.
#[component]
pub fn TimelinePanel() -> Html {
    let ctx = use_ctx();
    let state = &ctx.state;
    let canvas_ref = use_node_ref();
    let view = use_state(View::default);
    let filter = use_state(Filter::default);
    let drag = use_mut_ref(|| None::<(f64, f64, bool)>);
    let pending = use_mut_ref(|| Pending {
        scheduled: false,
        canvas: None,
        timeline: None,
        view: View::default(),
        filter: Filter::default(),
        selected: None,
        callback: None,
    });

    {
        let pending = pending.clone();
        let canvas_ref = canvas_ref.clone();
        let timeline = state.timeline.clone();
        let deps = (
            state.timeline_version,
            *view,
            (*filter).clone(),
            state.selected,
        );
        use_effect_with(deps, move |(_, view, filter, selected)| {
            {
                let mut p = pending.borrow_mut();
                p.canvas = canvas_ref.cast::<HtmlCanvasElement>();
                p.timeline = Some(timeline);
                p.view = *view;
                p.filter = filter.clone();
                p.selected = *selected;
            }
            schedule(&pending);
        });
    }

    // The view actually drawn: while following, anchored to the newest event.
    let current_view =
        |view: &View, canvas_ref: &NodeRef, timeline: &Timeline| match canvas_ref
            .cast::<HtmlCanvasElement>()
        {
            Some(c) => view.followed(timeline.latest_t, c.client_height() as f64 - HEADER_PX),
            None => *view,
        };
    // Applies what a person did to the view as drawn.
    let act = {
        let (view, canvas_ref, timeline) =
            (view.clone(), canvas_ref.clone(), state.timeline.clone());
        move |action: ViewAction| {
            let v = current_view(&view, &canvas_ref, &timeline.borrow());
            view.set(v.apply(action));
        }
    };
    let canvas_height = {
        let canvas_ref = canvas_ref.clone();
        move || {
            canvas_ref
                .cast::<HtmlCanvasElement>()
                .map_or(400.0, |c| c.client_height() as f64)
        }
    };

    let on_wheel = {
        let act = act.clone();
        Callback::from(move |e: WheelEvent| {
            e.prevent_default();
            act(ViewAction::from_wheel(
                e.delta_y(),
                e.ctrl_key() || e.meta_key() || e.alt_key(),
                e.offset_y() as f64 - HEADER_PX,
            ));
        })
    };
    let on_down = {
        let drag = drag.clone();
        Callback::from(move |e: MouseEvent| {
            *drag.borrow_mut() = Some((e.offset_x() as f64, e.offset_y() as f64, false))
        })
    };
    let on_move = {
        let (drag, act) = (drag.clone(), act.clone());
        Callback::from(move |e: MouseEvent| {
            let mut d = drag.borrow_mut();
            let Some((x, y, moved)) = d.as_mut() else {
                return;
            };
            let dy = e.offset_y() as f64 - *y;
            if *moved || dy.abs() > 3.0 || (e.offset_x() as f64 - *x).abs() > 3.0 {
                *moved = true;
                act(ViewAction::Pan(-dy));
                *y = e.offset_y() as f64;
            }
        })
    };
    let on_up = {
        let (drag, view, filter, canvas_ref, timeline) = (
            drag.clone(),
            view.clone(),
            filter.clone(),
            canvas_ref.clone(),
            state.timeline.clone(),
        );
        let dispatch = state.dispatcher();
        Callback::from(move |e: MouseEvent| {
            let Some((_, _, moved)) = drag.borrow_mut().take() else {
                return;
            };
            if moved {
                return;
            }
            // A click: select the nearest arrow.
            let Some(canvas) = canvas_ref.cast::<HtmlCanvasElement>() else {
                return;
            };
            let timeline = timeline.borrow();
            let v = current_view(&view, &canvas_ref, &timeline);
            let geo = Geometry::new(
                canvas.client_width() as f64,
                canvas.client_height() as f64,
                &timeline,
            );
            let (px, py) = (e.offset_x() as f64, e.offset_y() as f64);
            let (from, to) = (v.t(0.0).max(0.0) as u64, v.t(geo.height).max(0.0) as u64);
            let hit = timeline.nearest(
                &filter,
                from,
                to,
                |a| {
                    let (x0, y0, x1, y1) = geo.segment(a, &v);
                    distance_to_segment(px, py, x0, y0, x1, y1)
                },
                HIT_PX,
            );
            let id = hit.map(|i| {
                let a = &timeline.arrows[i];
                if a.send != 0 { a.send } else { a.recv }
            });
            dispatch.dispatch(Action::Select(id));
        })
    };
    let on_leave = {
        let drag = drag.clone();
        Callback::from(move |_: MouseEvent| *drag.borrow_mut() = None)
    };
    let on_key = {
        let (act, canvas_height) = (act.clone(), canvas_height.clone());
        Callback::from(move |e: KeyboardEvent| {
            if let Some(action) = ViewAction::from_key(&e.key(), canvas_height()) {
                e.prevent_default();
                act(action);
            }
        })
    };
    let zoom_by = |factor: f64| {
        let (act, canvas_height) = (act.clone(), canvas_height.clone());
        Callback::from(move |_| {
            act(ViewAction::Zoom {
                factor,
                anchor_y: canvas_height() / 2.0,
            })
        })
    };
    let toggle_follow = {
        let act = act.clone();
        Callback::from(move |_| act(ViewAction::ToggleFollow))
    };
    let on_clear = {
        let dispatch = state.dispatcher();
        Callback::from(move |_| dispatch.dispatch(Action::ClearTimeline))
    };
    let timeline = state.timeline.borrow();
    let on_lane = {
        let filter = filter.clone();
        Callback::from(move |e: Event| {
            let value = e.target_unchecked_into::<HtmlSelectElement>().value();
            filter.set(Filter {
                lane: value.parse().ok(),
                ..(*filter).clone()
            });
        })
    };
    let on_flow = {
        let filter = filter.clone();
        Callback::from(move |e: Event| {
            let value = e.target_unchecked_into::<HtmlSelectElement>().value();
            filter.set(Filter {
                flow: value.parse().ok(),
                ..(*filter).clone()
            });
        })
    };
    let f = (*filter).clone();
    let counts = timeline.counts;
    html! {
        <div class="timeline">
            <div class="toolbar">
                <button id="tl-follow" class={classes!("small", view.follow.then_some("on"))} onclick={toggle_follow}
                    title="Keep the newest datagrams in view (f); space pauses">{ if view.follow { "following" } else { "paused" } }</button>
                <button id="tl-zoom-in" class="small" onclick={zoom_by(1.0 / ZOOM_STEP)} title="Zoom in (+, or Ctrl + wheel)">{ "+" }</button>
                <button id="tl-zoom-out" class="small" onclick={zoom_by(ZOOM_STEP)} title="Zoom out (-, or Ctrl + wheel)">{ "−" }</button>
                <span class="hint">{ format!("{:.3} ms / 100 px", view.ns_per_px * 100.0 / 1e6) }</span>
                { fate_checkbox("delivered", "tl-show-delivered", f.delivered, &filter, |f, v| f.delivered = v) }
                { fate_checkbox("lost", "tl-show-lost", f.lost, &filter, |f, v| f.lost = v) }
                { fate_checkbox("reordered", "tl-show-reordered", f.reordered, &filter, |f, v| f.reordered = v) }
                { fate_checkbox("duplicated", "tl-show-duplicated", f.duplicated, &filter, |f, v| f.duplicated = v) }
                <select id="tl-lane" onchange={on_lane} title="Only datagrams sent or received by this endpoint">
                    <option value="" selected={f.lane.is_none()}>{ "all endpoints" }</option>
                    { for timeline.lanes.iter().enumerate().map(|(i, l)| html! {
                        <option value={i.to_string()} selected={f.lane == Some(i as u16)}>{ l.label.clone() }</option>
                    }) }
                </select>
                <select id="tl-flow" onchange={on_flow} title="Only this flow (source → destination)">
                    <option value="" selected={f.flow.is_none()}>{ "all flows" }</option>
                    { for timeline.flows.iter().enumerate().map(|(i, (s, d))| html! {
                        <option value={i.to_string()} selected={f.flow == Some(i as u16)}>{ format!("{s} → {d}") }</option>
                    }) }
                </select>
                <button class="small" onclick={on_clear}>{ "clear" }</button>
            </div>
            <canvas id="timeline-canvas" ref={canvas_ref} tabindex="0"
                onwheel={on_wheel} onmousedown={on_down} onmousemove={on_move} onmouseup={on_up}
                onmouseleave={on_leave} onkeydown={on_key} />
            <div class="legend" id="timeline-legend">
                <span><i class="sw delivered"></i>{ format!("delivered ({})", counts[0]) }</span>
                <span><i class="sw lost"></i>{ format!("✕ lost ({})", counts[1]) }</span>
                <span><i class="sw reordered"></i>{ format!("◯ reordered or late ({})", counts[2]) }</span>
                <span><i class="sw duplicated"></i>{ format!("● duplicate copy ({})", counts[3]) }</span>
                <span><i class="sw echo"></i>{ "echo request / reply" }</span>
                <span><i class="sw pending"></i>{ "in flight / from outside" }</span>
                <span class="hint">{ "Drag or wheel to pan, Ctrl + wheel or +/− to zoom, click an arrow to inspect it. A cross on a link lane: the link dropped it; on the receiver's lane: the kernel dropped it there (receive buffer full) or it was not received within the loss timeout." }</span>
            </div>
        </div>
    }
}
