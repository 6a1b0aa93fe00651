//! The timeline: one lane per endpoint, time running down the page, an arrow per
//! datagram from its send to its receive, drawn on a canvas.
//!
//! (Over 600 lines: the panel's handlers share the view, the canvas and the frame
//! they schedule; the toolbar and legend are small components beside it.)

use std::cell::RefCell;
use std::rc::Rc;

use wasm_bindgen::JsCast as _;
use wasm_bindgen::prelude::Closure;
use web_sys::{HtmlCanvasElement, HtmlSelectElement};
use yew::prelude::*;

mod draw;

use draw::{Geometry, draw};

use super::use_ctx;
use crate::model::Action;
use crate::timeline::{Filter, Timeline};
use crate::view::{View, ViewAction, ZOOM_STEP, distance_to_segment};

/// Pixels above the first time tick, for lane headings.
const HEADER_PX: f64 = 34.0;
/// How close a click must be to an arrow to select it.
const HIT_PX: f64 = 7.0;

/// What the next animation frame draws.
struct Pending {
    scheduled: bool,
    canvas: Option<HtmlCanvasElement>,
    timeline: Option<Rc<RefCell<Timeline>>>,
    view: View,
    filter: Filter,
    selected: Option<u64>,
    range: Option<(u64, u64)>,
    callback: Option<Closure<dyn FnMut()>>,
    /// Where the page's questions go (counts and windows for the view).
    asker: Option<Asker>,
    /// The last question asked, and when (ms on the page's clock).
    asked: Option<(socklab_protocol::Command, f64)>,
    /// A draw again is due for a question held back.
    retry: Option<gloo_timers::callback::Timeout>,
    /// The canvas' height when it was last drawn (0 before, and while its tab is
    /// hidden the last it had), pixels: what a render reads, where measuring would make
    /// the browser lay the page out anew after every update.
    height: f64,
}

/// Where the view's questions go: the live session over the WebSocket, or the
/// recording being replayed over HTTP (its answers to the replayed state).
#[derive(Clone)]
enum Asker {
    Live(crate::connection::Commands),
    Recording(i64, UseReducerDispatcher<crate::model::State>),
}

impl Asker {
    /// Asks; false when the question could not go.
    fn ask(&self, command: socklab_protocol::Command) -> bool {
        match self {
            Asker::Live(commands) => commands.ask(command),
            Asker::Recording(id, dispatch) => super::replay::ask(*id, &command, dispatch.clone()),
        }
    }
}

/// The least time between two questions to the server about the view, ms.
const ASK_EVERY_MS: f64 = 250.0;
/// The least time before the same question is asked again, ms.
const ASK_SAME_EVERY_MS: f64 = 2_000.0;

/// Asks the server what drawing the view needs where it thinned the page's events
/// (counts, then the arrows of a window), at most every [`ASK_EVERY_MS`]; a question
/// held back is asked at a later draw.
fn ask_for_view(
    pending: &Rc<RefCell<Pending>>,
    p: &mut Pending,
    timeline: &Timeline,
    view: &View,
    rows: f64,
) {
    // Nothing after the newest time known is asked for (a replay's cursor).
    let from = view.t(0.0).max(0.0) as u64;
    let to = (view.t(rows).max(0.0) as u64).min(timeline.latest_t);
    let Some(wanted) = timeline.scale.wanted(from, to, rows.max(1.0) as u32) else {
        return;
    };
    let now = web_sys::window()
        .and_then(|w| w.performance())
        .map_or(0.0, |c| c.now());
    let hold = match &p.asked {
        Some((same, at)) if *same == wanted => now - at < ASK_SAME_EVERY_MS,
        Some((_, at)) => now - at < ASK_EVERY_MS,
        None => false,
    };
    if hold {
        if p.retry.is_none() {
            let pending = pending.clone();
            p.retry = Some(gloo_timers::callback::Timeout::new(
                ASK_EVERY_MS as u32,
                move || {
                    pending.borrow_mut().retry = None;
                    schedule(&pending);
                },
            ));
        }
        return;
    }
    if let Some(asker) = &p.asker
        && asker.ask(wanted.clone())
    {
        // What the page last asked, for people's tools and the tests.
        if let Some(canvas) = &p.canvas {
            let said = match &wanted {
                socklab_protocol::Command::Aggregate {
                    from_ns,
                    to_ns,
                    buckets,
                } => {
                    format!("aggregate {from_ns}..{to_ns} in {buckets}")
                }
                socklab_protocol::Command::Window { from_ns, to_ns, .. } => {
                    format!("window {from_ns}..{to_ns}")
                }
                _ => String::new(),
            };
            let _ = canvas.set_attribute("data-asked", &said);
        }
        p.asked = Some((wanted, now));
    }
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
            let measured = canvas.client_height() as f64;
            let view = p.view.followed(timeline.latest_t, measured - HEADER_PX);
            let clock = web_sys::window().and_then(|w| w.performance());
            let started = clock.as_ref().map_or(0.0, |c| c.now());
            draw(canvas, &timeline, &view, &p.filter, p.selected, p.range);
            // How long drawing took, and when it finished, for the frame-time benchmark.
            if let Some(clock) = clock {
                let ended = clock.now();
                let _ = canvas.set_attribute("data-draw-ms", &format!("{:.3}", ended - started));
                let _ = canvas.set_attribute("data-drawn-at", &format!("{ended:.3}"));
            }
            let rows = measured - HEADER_PX;
            let timeline_rc = p.timeline.clone();
            drop(timeline);
            if measured > 0.0 {
                p.height = measured;
            }
            if let Some(timeline_rc) = timeline_rc {
                ask_for_view(&shared, &mut p, &timeline_rc.borrow(), &view, rows);
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

/// What the timeline panel is told.
#[derive(Properties, PartialEq)]
pub struct TimelineProps {
    /// Whether its tab is shown (a hidden canvas has no size to draw at, so it draws
    /// again when it is shown).
    pub visible: bool,
}

/// The timeline panel: toolbar, canvas, legend.
#[component]
pub fn TimelinePanel(props: &TimelineProps) -> Html {
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
        range: None,
        callback: None,
        asker: None,
        asked: None,
        retry: None,
        height: 0.0,
    });
    // A time range selected with Shift + drag (its figures show under the toolbar),
    // and where such a drag began, ns.
    let range = use_state(|| None::<(u64, u64)>);
    let selecting = use_mut_ref(|| None::<u64>);

    {
        let pending = pending.clone();
        let canvas_ref = canvas_ref.clone();
        let timeline = state.timeline.clone();
        let asker = match &*ctx.replay {
            Some(r) => Asker::Recording(r.id, state.dispatcher()),
            None => Asker::Live(ctx.commands.clone()),
        };
        let deps = (
            state.timeline_version,
            *view,
            (*filter).clone(),
            state.selected,
            props.visible,
            *range,
        );
        use_effect_with(deps, move |(_, view, filter, selected, _, range)| {
            {
                let mut p = pending.borrow_mut();
                p.canvas = canvas_ref.cast::<HtmlCanvasElement>();
                p.asker = Some(asker);
                p.timeline = Some(timeline);
                p.view = *view;
                p.filter = filter.clone();
                p.selected = *selected;
                p.range = *range;
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
    // The canvas' height; while its tab is hidden (it has none then), the last it had.
    let known_height = use_mut_ref(|| 400.0);
    let canvas_height = {
        let (canvas_ref, pending) = (canvas_ref.clone(), pending.clone());
        move || {
            let drawn = pending.try_borrow().map_or(0.0, |p| p.height);
            if drawn > 0.0 {
                return drawn;
            }
            let now = canvas_ref
                .cast::<HtmlCanvasElement>()
                .map_or(0.0, |c| c.client_height() as f64);
            if now > 0.0 {
                *known_height.borrow_mut() = now;
            }
            *known_height.borrow()
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
    // The time under a pointer at `y` on the canvas, ns (0 at most).
    let time_at = {
        let (view, canvas_ref, timeline) =
            (view.clone(), canvas_ref.clone(), state.timeline.clone());
        move |y: f64| {
            current_view(&view, &canvas_ref, &timeline.borrow())
                .t(y - HEADER_PX)
                .max(0.0) as u64
        }
    };
    let on_down = {
        let (drag, selecting, time_at) = (drag.clone(), selecting.clone(), time_at.clone());
        Callback::from(move |e: MouseEvent| {
            if e.shift_key() {
                *selecting.borrow_mut() = Some(time_at(e.offset_y() as f64));
                return;
            }
            *drag.borrow_mut() = Some((e.offset_x() as f64, e.offset_y() as f64, false))
        })
    };
    let on_move = {
        let (drag, act) = (drag.clone(), act.clone());
        let (selecting, range, time_at) = (selecting.clone(), range.clone(), time_at.clone());
        Callback::from(move |e: MouseEvent| {
            if let Some(start) = *selecting.borrow() {
                let t = time_at(e.offset_y() as f64);
                range.set(Some((start.min(t), start.max(t))));
                return;
            }
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
        let (selecting, range, time_at) = (selecting.clone(), range.clone(), time_at.clone());
        Callback::from(move |e: MouseEvent| {
            if let Some(start) = selecting.borrow_mut().take() {
                let t = time_at(e.offset_y() as f64);
                // A Shift + click without a drag clears the range.
                range.set((t != start).then_some((start.min(t), start.max(t))));
                return;
            }
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
                &filter,
            );
            let (px, py) = (e.offset_x() as f64, e.offset_y() as f64);
            let (from, to) = (v.t(0.0).max(0.0) as u64, v.t(geo.height).max(0.0) as u64);
            // The nearest arrow of a timeline within reach.
            let near = |t: &Timeline| {
                t.nearest(
                    &filter,
                    from,
                    to,
                    |a| {
                        let (x0, y0, x1, y1) = geo.segment(a, &v);
                        distance_to_segment(px, py, x0, y0, x1, y1)
                    },
                    HIT_PX,
                )
                .map(|i| t.arrows[i])
            };
            // Arrows drawn from a window fetched from the server can be picked too (they
            // alone, where it holds every event of the view).
            let span = timeline.scale.thinned_span(from, to);
            let fetched = span
                .and_then(|(a, b)| {
                    let d = timeline.scale.detail.as_ref()?;
                    (d.from <= a && d.to >= b).then_some(d)
                })
                .map(|d| &*d.timeline);
            let whole = span
                .and_then(|(a, b)| timeline.scale.complete_detail(a, b))
                .is_some();
            let arrow = match (whole, fetched) {
                (true, Some(d)) => near(d).or_else(|| near(&timeline)),
                (_, d) => near(&timeline).or_else(|| d.and_then(near)),
            };
            let id = arrow.map(|a| if a.send != 0 { a.send } else { a.recv });
            dispatch.dispatch(Action::Select(id));
        })
    };
    let on_leave = {
        let (drag, selecting) = (drag.clone(), selecting.clone());
        Callback::from(move |_: MouseEvent| {
            *drag.borrow_mut() = None;
            *selecting.borrow_mut() = None;
        })
    };
    // Fit the whole run (as far as the page keeps it) in the window.
    let fit = {
        let (act, canvas_height, timeline, filter) = (
            act.clone(),
            canvas_height.clone(),
            state.timeline.clone(),
            filter.clone(),
        );
        Callback::from(move |()| {
            let span = timeline.borrow().span(&filter);
            if let Some((from, to)) = span {
                act(ViewAction::Fit {
                    from,
                    to,
                    height: canvas_height() - HEADER_PX,
                });
            }
        })
    };
    // Go to the next loss (true) or the previous one, from the arrow selected or the
    // middle of the window; select it, so the inspector says what happened to it.
    let to_loss = {
        let (act, canvas_height, timeline, filter, view, canvas_ref) = (
            act.clone(),
            canvas_height.clone(),
            state.timeline.clone(),
            filter.clone(),
            view.clone(),
            canvas_ref.clone(),
        );
        let dispatch = state.dispatcher();
        // The selection as of now, not as of the last render: keys pressed faster than
        // the page renders still step from loss to loss.
        let selection = use_mut_ref(|| None::<u64>);
        *selection.borrow_mut() = state.selected;
        Callback::from(move |forward: bool| {
            let timeline = timeline.borrow();
            let height = canvas_height() - HEADER_PX;
            let selected = *selection.borrow();
            let at = selected.and_then(|id| {
                timeline
                    .arrows
                    .iter()
                    .position(|a| a.send == id || (a.send == 0 && a.recv == id))
            });
            let from = match at {
                Some(i) => timeline.arrows[i].t0,
                None => current_view(&view, &canvas_ref, &timeline)
                    .t(height / 2.0)
                    .max(0.0) as u64,
            };
            let Some(i) = timeline.next_loss(&filter, from, at, forward) else {
                return;
            };
            let a = &timeline.arrows[i];
            act(ViewAction::Center { t: a.t0, height });
            let id = if a.send != 0 { a.send } else { a.recv };
            *selection.borrow_mut() = Some(id);
            dispatch.dispatch(Action::Select(Some(id)));
        })
    };
    // Shown from the inspector: its arrow in the middle of the window.
    {
        let (act, canvas_height, timeline) =
            (act.clone(), canvas_height.clone(), state.timeline.clone());
        use_effect_with(state.reveal, move |reveal| {
            if let Some(r) = reveal.filter(|r| r.place == crate::model::Place::Timeline)
                && let Some(t) = timeline.borrow().arrow_of(r.id).map(|a| a.t0)
            {
                act(ViewAction::Center {
                    t,
                    height: canvas_height() - HEADER_PX,
                });
            }
        });
    }
    // Put a time (ms since the session began) in the middle of the window.
    let go_to = {
        let (act, canvas_height) = (act.clone(), canvas_height.clone());
        Callback::from(move |t_ns: u64| {
            act(ViewAction::Center {
                t: t_ns,
                height: canvas_height() - HEADER_PX,
            })
        })
    };
    let on_key = {
        let (act, canvas_height) = (act.clone(), canvas_height.clone());
        let (fit, to_loss, range) = (fit.clone(), to_loss.clone(), range.clone());
        Callback::from(move |e: KeyboardEvent| {
            let key = e.key();
            match key.as_str() {
                "Escape" => range.set(None),
                "0" | "Home" => fit.emit(()),
                "n" => to_loss.emit(true),
                "N" | "p" => to_loss.emit(false),
                "g" => {
                    if let Some(input) = web_sys::window()
                        .and_then(|w| w.document())
                        .and_then(|d| d.get_element_by_id("tl-goto"))
                        .and_then(|e| e.dyn_into::<web_sys::HtmlElement>().ok())
                    {
                        let _ = input.focus();
                    }
                }
                _ => {
                    if let Some(action) = ViewAction::from_key(&key, canvas_height() - HEADER_PX) {
                        e.prevent_default();
                        act(action);
                    }
                    return;
                }
            }
            e.prevent_default();
        })
    };
    let counts = state.timeline.borrow().counts;
    let on_act = Callback::from(act);
    html! {
        <div class="timeline">
            <Toolbar view={*view} {on_act} filter={filter.clone()} height={canvas_height() - HEADER_PX}
                on_fit={fit} on_loss={to_loss} on_go_to={go_to} />
            if let Some((from, to)) = *range {
                <super::runs::RangeFigures {from} {to} on_clear={let range = range.clone(); Callback::from(move |_| range.set(None))} />
            }
            <canvas id="timeline-canvas" ref={canvas_ref} tabindex="0"
                onwheel={on_wheel} onmousedown={on_down} onmousemove={on_move} onmouseup={on_up}
                onmouseleave={on_leave} onkeydown={on_key} />
            <Legend {counts} />
        </div>
    }
}

#[derive(Properties, PartialEq)]
struct ToolbarProps {
    /// The view as the person set it.
    view: View,
    /// Applies what a button does to the view.
    on_act: Callback<ViewAction>,
    /// Which arrows show.
    filter: UseStateHandle<Filter>,
    /// The height of the canvas' time window (below the lane headings), for zooming at
    /// its middle.
    height: f64,
    /// Fits the whole run in the window.
    on_fit: Callback<()>,
    /// Goes to the next loss (true) or the previous one.
    on_loss: Callback<bool>,
    /// Puts a time (ns) in the middle of the window.
    on_go_to: Callback<u64>,
}

/// The timeline's toolbar: follow, zoom, the fate filters, endpoint and flow choice.
#[component]
fn Toolbar(props: &ToolbarProps) -> Html {
    let ctx = use_ctx();
    let (view, filter) = (props.view, &props.filter);
    let act = |action: ViewAction| props.on_act.reform(move |_: MouseEvent| action);
    let zoom = |factor: f64| {
        act(ViewAction::Zoom {
            factor,
            anchor_y: props.height / 2.0,
        })
    };
    let on_clear = {
        let dispatch = ctx.state.dispatcher();
        Callback::from(move |_| dispatch.dispatch(Action::ClearTimeline))
    };
    let choose = |set: fn(&mut Filter, Option<u16>)| {
        let filter = filter.clone();
        Callback::from(move |e: Event| {
            let value = e.target_unchecked_into::<HtmlSelectElement>().value();
            let mut next = (*filter).clone();
            set(&mut next, value.parse().ok());
            filter.set(next);
        })
    };
    let timeline = ctx.state.timeline.borrow();
    let f = (**filter).clone();
    let fit = props.on_fit.reform(|_: MouseEvent| ());
    let loss = |forward: bool| props.on_loss.reform(move |_: MouseEvent| forward);
    let go_to_error = use_state(|| None::<String>);
    let on_go_to = {
        let (go, go_to_error) = (props.on_go_to.clone(), go_to_error.clone());
        Callback::from(move |e: KeyboardEvent| {
            if e.key() != "Enter" {
                return;
            }
            let input: web_sys::HtmlInputElement = e.target_unchecked_into();
            match parse_ms(&input.value()) {
                Ok(t_ns) => {
                    go_to_error.set(None);
                    go.emit(t_ns);
                }
                Err(message) => go_to_error.set(Some(message)),
            }
        })
    };
    html! {
        <div class="toolbar">
            <button id="tl-follow" class={classes!("small", view.follow.then_some("on"))} onclick={act(ViewAction::ToggleFollow)}
                title="Following keeps the newest datagrams in view; zooming, panning or the space bar pause it (f follows again)">
                { if view.follow { "● following the newest" } else { "❚❚ paused: click to follow" } }</button>
            <button id="tl-zoom-in" class="small" onclick={zoom(1.0 / ZOOM_STEP)} title="Zoom in (+, or Ctrl + wheel)">{ "+" }</button>
            <button id="tl-zoom-out" class="small" onclick={zoom(ZOOM_STEP)} title="Zoom out (-, or Ctrl + wheel)">{ "−" }</button>
            <span id="tl-scale" class="hint">{ format!("{:.3} ms / 100 px", view.ns_per_px * 100.0 / 1e6) }</span>
            <button id="tl-fit" class="small" onclick={fit} title="Fit the whole run in the window (0 or Home)">{ "⤢ fit all" }</button>
            <button id="tl-prev-loss" class="small" onclick={loss(false)} title="The previous lost datagram, selected (p or Shift+N)">{ "↑ loss" }</button>
            <button id="tl-next-loss" class="small" onclick={loss(true)} title="The next lost datagram, selected (n)">{ "loss ↓" }</button>
            <label class="goto" title="Put this time (ms since the session began) in the middle of the window (g, then Enter)">
                { "go to " }
                <input id="tl-goto" type="text" inputmode="decimal" size="7" placeholder="ms" onkeydown={on_go_to}
                    aria-invalid={go_to_error.is_some().then_some("true")} />
            </label>
            if let Some(message) = &*go_to_error {
                <span id="tl-goto-error" class="form-error" role="alert">{ message.clone() }</span>
            }
            <span class="break"></span>
            { fate_checkbox("delivered", "tl-show-delivered", f.delivered, filter, |f, v| f.delivered = v) }
            { fate_checkbox("lost", "tl-show-lost", f.lost, filter, |f, v| f.lost = v) }
            { fate_checkbox("reordered", "tl-show-reordered", f.reordered, filter, |f, v| f.reordered = v) }
            { fate_checkbox("duplicated", "tl-show-duplicated", f.duplicated, filter, |f, v| f.duplicated = v) }
            { fate_checkbox("hide closed", "tl-hide-gone", f.hide_gone, filter, |f, v| f.hide_gone = v) }
            { fate_checkbox("hide idle", "tl-hide-idle", f.hide_idle, filter, |f, v| f.hide_idle = v) }
            <select id="tl-lane" onchange={choose(|f, v| f.lane = v)} title="Only datagrams sent or received by this endpoint">
                <option value="" selected={f.lane.is_none()}>{ "all endpoints" }</option>
                { for timeline.lanes.iter().enumerate().map(|(i, l)| html! {
                    <option value={i.to_string()} selected={f.lane == Some(i as u16)}>{ l.label.clone() }</option>
                }) }
            </select>
            <select id="tl-flow" onchange={choose(|f, v| f.flow = v)} title="Only this flow (source → destination)">
                <option value="" selected={f.flow.is_none()}>{ "all flows" }</option>
                { for timeline.flows.iter().enumerate().map(|(i, (s, d))| html! {
                    <option value={i.to_string()} selected={f.flow == Some(i as u16)}>{ format!("{s} → {d}") }</option>
                }) }
            </select>
            <button class="small" onclick={on_clear}>{ "clear" }</button>
        </div>
    }
}

/// A time typed in milliseconds (`1500`, `1.5e3`, `2.25 ms`) as ns since the session
/// began, or what is wrong with it.
fn parse_ms(text: &str) -> Result<u64, String> {
    let text = text.trim().trim_end_matches("ms").trim();
    match text.parse::<f64>() {
        Ok(ms) if ms.is_finite() && (0.0..=1e12).contains(&ms) => Ok((ms * 1e6).round() as u64),
        Ok(_) => Err(format!(
            "{text} ms is not a time in this session: give 0 or more"
        )),
        Err(_) => Err(format!("“{text}” is not a number of milliseconds")),
    }
}

#[derive(Properties, PartialEq)]
struct LegendProps {
    /// How many arrows are in each legend group.
    counts: [usize; 4],
}

/// What the colours and marks mean, with how many arrows show each.
#[component]
fn Legend(props: &LegendProps) -> Html {
    let counts = props.counts;
    html! {
        <div class="legend" id="timeline-legend">
            <span><i class="sw delivered"></i>{ format!("delivered ({})", counts[0]) }</span>
            <span><i class="sw lost"></i>{ format!("✕ lost ({})", counts[1]) }</span>
            <span><i class="sw reordered"></i>{ format!("◯ reordered or late ({})", counts[2]) }</span>
            <span><i class="sw duplicated"></i>{ format!("● duplicate copy ({})", counts[3]) }</span>
            <span><i class="sw echo"></i>{ "echo request / reply" }</span>
            <span><i class="sw pending"></i>{ "in flight / from outside" }</span>
            <span class="hint">{ "Drag or wheel to pan, Ctrl + wheel or +/− to zoom, click an arrow to inspect it; keys (click the timeline first): 0 fits the whole run, n and p go to the next and previous loss, g goes to a time; Shift + drag selects a time range and shows its figures (Esc clears it). When more arrows are in view than pixel rows to draw them, a line that stands for many datagrams is drawn brighter than one that stands for few. A cross on a link lane: the link dropped it. A boxed cross on the receiver's lane: it arrived and the kernel dropped it there (receive buffer full). A cross where it arrived: nobody is bound to that port. A cross at the end of a long arrow: it was not received within the loss timeout. TCP: an arrow per write, ending where its last byte reached the reader (writes read together end together); the handshake and the end of a stream (FIN) in grey, a reset as a red cross." }</span>
        </div>
    }
}

#[cfg(test)]
mod tests {
    use super::parse_ms;

    #[test]
    fn a_time_is_typed_in_milliseconds() {
        assert_eq!(parse_ms("1500"), Ok(1_500_000_000));
        assert_eq!(parse_ms(" 2.25 ms "), Ok(2_250_000));
        assert_eq!(parse_ms("1.5e3"), Ok(1_500_000_000));
        assert_eq!(parse_ms("0"), Ok(0));
        assert!(parse_ms("-3").unwrap_err().contains("0 or more"));
        assert!(parse_ms("soon").unwrap_err().contains("not a number"));
        assert!(parse_ms("NaN").is_err());
    }
}
