//! A recording opened in the page: its events read from the server's store, shown in
//! the same timeline, packet list, inspector and figures as the live session, read-only,
//! as of a cursor that steps from datagram to datagram or plays at a chosen speed.

use std::rc::Rc;

use socklab_protocol::Event;
use yew::prelude::*;

use super::use_ctx;
use crate::model::{Action, State};

/// The most events a recording opened in the page may have.
pub const MAX_EVENTS: usize = 200_000;
/// How often playing moves the cursor, ms.
const TICK_MS: u32 = 50;

/// A recording being replayed.
#[derive(Debug, Clone, PartialEq)]
pub struct Replay {
    /// Its id in the store.
    pub id: i64,
    /// Its name.
    pub name: String,
    /// Its events, in id order.
    pub events: Rc<Vec<Event>>,
    /// How many of them are shown (the cursor is after the last one shown).
    pub cursor: usize,
    /// Playing: the cursor moves on by itself.
    pub playing: bool,
    /// How much faster than real time it plays.
    pub speed: f64,
}

impl Replay {
    /// The events' times (0 for those without one).
    fn t_ns(&self, i: usize) -> u64 {
        self.events.get(i).and_then(Event::t_ns).unwrap_or(0)
    }
}

fn is_datagram(e: &Event) -> bool {
    matches!(e, Event::Datagram(_))
}

/// Reads recording `id`'s events from the server, a page at a time.
pub async fn load(id: i64) -> Result<Vec<Event>, String> {
    #[derive(serde::Deserialize)]
    struct Page {
        events: Vec<Event>,
        more: bool,
    }
    let mut events = Vec::new();
    let mut after = 0;
    loop {
        let path = super::recordings::with_token(&format!(
            "/api/recordings/{id}/events?after={after}&limit=10000"
        ));
        let response = gloo_net::http::Request::get(&path)
            .send()
            .await
            .map_err(|e| format!("cannot reach the server: {e}"))?;
        if !response.ok() {
            return Err(format!("the server answered {}", response.status()));
        }
        let page: Page = response
            .json()
            .await
            .map_err(|e| format!("an answer the page cannot read: {e}"))?;
        if let Some(last) = page.events.iter().rev().find_map(|e| e.id()) {
            after = last.0;
        }
        events.extend(page.events);
        if events.len() > MAX_EVENTS {
            return Err(format!(
                "this recording has more than {MAX_EVENTS} events, more than the page opens; download it (pcapng, fates.csv) instead"
            ));
        }
        if !page.more {
            return Ok(events);
        }
    }
}

/// The properties of [`ReplayPanel`].
#[derive(Properties, PartialEq)]
pub struct ReplayProps {
    /// The state the panels show while replaying.
    pub replayed: UseReducerHandle<State>,
}

/// The replay's controls, in place of the forms.
#[component]
pub fn ReplayPanel(props: &ReplayProps) -> Html {
    let ctx = use_ctx();
    let handle = ctx.replay.clone();
    // How many events the shown state holds, and of which recording.
    let applied = use_mut_ref(|| (0i64, 0usize));
    {
        let (replayed, applied) = (props.replayed.clone(), applied.clone());
        let replay = (*handle).clone();
        use_effect_with(replay.as_ref().map(|r| (r.id, r.cursor)), move |_| {
            if let Some(r) = replay {
                let mut done = applied.borrow_mut();
                let dispatch = replayed.dispatcher();
                if done.0 != r.id || r.cursor < done.1 {
                    dispatch.dispatch(Action::Reset);
                    *done = (r.id, 0);
                }
                if r.cursor > done.1 {
                    let batch = r.events[done.1..r.cursor].to_vec();
                    dispatch.dispatch(Action::Received(Box::new(Event::Batch { events: batch })));
                    done.1 = r.cursor;
                }
                // The inspector follows the cursor: the last datagram shown.
                let last = r.events[..r.cursor].iter().rev().find(|e| is_datagram(e));
                dispatch.dispatch(Action::Select(last.and_then(Event::id).map(|i| i.0)));
            }
        });
    }
    // Playing: a timer that moves the cursor on as the recording's clock runs.
    {
        let handle = handle.clone();
        let playing = handle.as_ref().is_some_and(|r| r.playing);
        let speed = handle.as_ref().map_or(1.0, |r| r.speed).to_bits();
        use_effect_with((playing, speed), move |&(playing, _)| {
            let interval = playing.then(|| {
                let started = js_sys::Date::now();
                let from = handle
                    .as_ref()
                    .map_or(0, |r| r.t_ns(r.cursor.saturating_sub(1)));
                gloo_timers::callback::Interval::new(TICK_MS, move || {
                    let Some(mut r) = (*handle).clone() else {
                        return;
                    };
                    let now = from + ((js_sys::Date::now() - started) * 1e6 * r.speed) as u64;
                    while r.cursor < r.events.len() && r.t_ns(r.cursor) <= now {
                        r.cursor += 1;
                    }
                    if r.cursor >= r.events.len() {
                        r.playing = false;
                    }
                    handle.set(Some(r));
                })
            });
            move || drop(interval)
        });
    }
    let Some(r) = (*handle).clone() else {
        return html! {};
    };
    let set = |f: fn(&mut Replay)| {
        let handle = handle.clone();
        Callback::from(move |_: MouseEvent| {
            if let Some(mut r) = (*handle).clone() {
                f(&mut r);
                handle.set(Some(r));
            }
        })
    };
    let forward = set(|r| {
        r.playing = false;
        // Past the next datagram (and what came before it).
        if let Some(i) = r.events[r.cursor..].iter().position(is_datagram) {
            r.cursor += i + 1;
        } else {
            r.cursor = r.events.len();
        }
    });
    let back = set(|r| {
        r.playing = false;
        // Back to just past the datagram before the last one shown.
        let shown: Vec<usize> = r.events[..r.cursor]
            .iter()
            .enumerate()
            .filter(|(_, e)| is_datagram(e))
            .map(|(i, _)| i)
            .collect();
        r.cursor = match shown.len() {
            0 | 1 => 0,
            n => shown[n - 2] + 1,
        };
    });
    let start = set(|r| {
        r.playing = false;
        r.cursor = 0;
    });
    let end = set(|r| {
        r.playing = false;
        r.cursor = r.events.len();
    });
    let play = set(|r| {
        if r.cursor >= r.events.len() {
            r.cursor = 0;
        }
        r.playing = !r.playing;
    });
    let close = {
        let handle = handle.clone();
        Callback::from(move |_| handle.set(None))
    };
    let on_speed = {
        let handle = handle.clone();
        Callback::from(move |e: Event_| {
            let value = e
                .target_unchecked_into::<web_sys::HtmlSelectElement>()
                .value();
            if let (Some(mut r), Ok(speed)) = ((*handle).clone(), value.parse::<f64>()) {
                r.speed = speed;
                handle.set(Some(r));
            }
        })
    };
    let datagrams = r.events.iter().filter(|e| is_datagram(e)).count();
    let shown = r.events[..r.cursor]
        .iter()
        .filter(|e| is_datagram(e))
        .count();
    let t = r.t_ns(r.cursor.saturating_sub(1)) as f64 / 1e9;
    html! {
        <section class="panel replay" aria-labelledby="replay-title">
            <h2 id="replay-title">{ "Recording" }</h2>
            <p id="replay-name"><strong>{ r.name.clone() }</strong>{ format!(" (recording {}), read-only", r.id) }</p>
            <p id="replay-cursor" class="mono">{ format!("datagram {shown} of {datagrams} · event {} of {} · t = {t:.6} s", r.cursor, r.events.len()) }</p>
            <div class="row">
                <button id="replay-start" class="small" onclick={start} title="Back to the start">{ "|◀" }</button>
                <button id="replay-back" class="small" onclick={back} title="One datagram back">{ "◀ step" }</button>
                <button id="replay-play" class="small" onclick={play} title="Play the recording with its own timing">{ if r.playing { "⏸ pause" } else { "▶ play" } }</button>
                <button id="replay-forward" class="small" onclick={forward} title="One datagram on">{ "step ▶" }</button>
                <button id="replay-end" class="small" onclick={end} title="To the end">{ "▶|" }</button>
                <label>{ "speed" }
                    <select id="replay-speed" onchange={on_speed}>
                        { for [0.1, 1.0, 10.0, 100.0].iter().map(|s| html! {
                            <option value={s.to_string()} selected={(r.speed - s).abs() < 1e-9}>{ format!("{s}×") }</option>
                        }) }
                    </select>
                </label>
            </div>
            <p class="hint">{ "The timeline, the packets, the inspector and the flows show the recording as of the cursor: what had happened by then. Its sockets and links are not live: the forms come back with the live session." }</p>
            <button id="replay-close" onclick={close}>{ "back to the live session" }</button>
        </section>
    }
}

type Event_ = yew::Event;
