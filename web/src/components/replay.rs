//! A recording opened in the page: its events read from the server's store, shown in
//! the same timeline, packet list, inspector and figures as the live session, read-only,
//! as of a cursor that steps from datagram to datagram or plays at a chosen speed.
//!
//! A recording of up to [`MAX_EVENTS`] events is read whole. A bigger one (a million
//! datagrams) opens a page at a time: its outline (sockets, links, figures, runs: no
//! event about a single datagram), and [`PAGE_EVENTS`] events around the cursor; the
//! time before the page is drawn from the recording's counts, and its arrows are
//! fetched from the store where the person zooms in, as a live session's are.

use std::rc::Rc;

use socklab_protocol::{Event, EventId, Thinned};
use yew::prelude::*;

use super::use_ctx;
use crate::model::{Action, State};

/// The most events a recording read whole may have (`?replay_whole=N` in the page's
/// address sets another, to see a small recording a page at a time).
pub const MAX_EVENTS: usize = 200_000;
/// How many events a page of a bigger recording holds.
pub const PAGE_EVENTS: usize = 10_000;
/// How often playing moves the cursor, ms.
const TICK_MS: u32 = 50;

/// A recording being replayed.
#[derive(Debug, Clone, PartialEq)]
pub struct Replay {
    /// Its id in the store.
    pub id: i64,
    /// Its name.
    pub name: String,
    /// Its events in id order: all of them, or (paged) the page around the cursor.
    pub events: Rc<Vec<Event>>,
    /// How many of them are shown (the cursor is after the last one shown).
    pub cursor: usize,
    /// Playing: the cursor moves on by itself.
    pub playing: bool,
    /// How much faster than real time it plays.
    pub speed: f64,
    /// A recording too big to read whole: what the page knows of the rest.
    pub paged: Option<Rc<Paged>>,
    /// A page is being read.
    pub loading: bool,
}

/// What the page knows of a recording it holds a page of.
#[derive(Debug, PartialEq)]
pub struct Paged {
    /// Its events a view is built on, all of them.
    pub outline: Rc<Vec<Event>>,
    /// Its first event's id and time (where its counts begin).
    pub start: (u64, u64),
    /// How many events and datagrams it holds.
    pub events: u64,
    /// See `events`.
    pub datagrams: u64,
    /// Whether events come before the page, and after it.
    pub before: bool,
    /// See `before`.
    pub after: bool,
}

impl Replay {
    /// The events' times (0 for those without one).
    fn t_ns(&self, i: usize) -> u64 {
        self.events.get(i).and_then(Event::t_ns).unwrap_or(0)
    }

    /// The id of the page's first event (0: none).
    fn page_key(&self) -> u64 {
        self.events.iter().find_map(Event::id).map_or(0, |i| i.0)
    }

    /// What goes before the page's events in the shown state: the outline up to the
    /// page, and, where events come before it, a `thinned` saying which (so the
    /// timeline draws the recording's counts there and fetches its arrows).
    fn before_page(&self) -> Vec<Event> {
        let Some(p) = &self.paged else {
            return Vec::new();
        };
        let first = self.page_key();
        let mut setup: Vec<Event> = p
            .outline
            .iter()
            .filter(|e| e.id().is_none_or(|i| i.0 < first))
            .cloned()
            .collect();
        let first_t = self
            .events
            .iter()
            .find_map(Event::t_ns)
            .unwrap_or(p.start.1);
        if p.before && first > p.start.0 {
            setup.push(Event::Thinned(Thinned {
                from: EventId(p.start.0),
                to: EventId(first - 1),
                count: first - p.start.0,
                from_ns: p.start.1,
                to_ns: first_t.saturating_sub(1).max(p.start.1),
            }));
        }
        setup
    }
}

fn is_datagram(e: &Event) -> bool {
    matches!(e, Event::Datagram(_))
}

/// A page of a recording's events as the server's `/events` gives it.
#[derive(serde::Deserialize)]
struct Page {
    events: Vec<Event>,
    more: bool,
}

/// Reads `/api/recordings/{id}/events` with `query`.
async fn page(id: i64, query: &str) -> Result<Page, String> {
    let path = super::recordings::with_token(&format!("/api/recordings/{id}/events?{query}"));
    let response = gloo_net::http::Request::get(&path)
        .send()
        .await
        .map_err(|e| format!("cannot reach the server: {e}"))?;
    if !response.ok() {
        return Err(format!("the server answered {}", response.status()));
    }
    response
        .json()
        .await
        .map_err(|e| format!("an answer the page cannot read: {e}"))
}

/// Reads recording `id`'s events after `after` (of its outline only, if so), a page at
/// a time, at most [`MAX_EVENTS`].
async fn load_all(id: i64, outline: bool) -> Result<Vec<Event>, String> {
    let mut events = Vec::new();
    let mut after = 0;
    loop {
        let page = page(id, &format!("after={after}&limit=10000&outline={outline}")).await?;
        if let Some(last) = page.events.iter().rev().find_map(|e| e.id()) {
            after = last.0;
        }
        events.extend(page.events);
        if events.len() > MAX_EVENTS {
            return Err(format!(
                "this recording has more than {MAX_EVENTS} events{}, more than the page opens; download it (pcapng, fates.csv) instead",
                if outline {
                    " besides its datagrams"
                } else {
                    ""
                }
            ));
        }
        if !page.more {
            return Ok(events);
        }
    }
}

/// How many events a recording may have to be read whole here.
fn whole_up_to() -> usize {
    crate::connection::address_param("replay_whole")
        .and_then(|n| n.parse().ok())
        .unwrap_or(MAX_EVENTS)
}

/// Opens recording `id` (`name`, of `events` events and `datagrams` datagrams): read
/// whole, at its start; or, when bigger, its outline and its last page, at its end.
pub async fn open(
    id: i64,
    name: String,
    (events, datagrams): (u64, u64),
) -> Result<Replay, String> {
    let mut replay = Replay {
        id,
        name,
        events: Rc::new(Vec::new()),
        cursor: 0,
        playing: false,
        speed: 1.0,
        paged: None,
        loading: false,
    };
    if events <= whole_up_to() as u64 {
        replay.events = Rc::new(load_all(id, false).await?);
        return Ok(replay);
    }
    let outline = load_all(id, true).await?;
    let first = page(id, "after=0&limit=1").await?;
    let start = first.events.first().map_or((0, 0), |e| {
        (e.id().map_or(0, |i| i.0), e.t_ns().unwrap_or(0))
    });
    let last = page(id, &format!("before={}&limit={PAGE_EVENTS}", u64::MAX >> 1)).await?;
    replay.cursor = last.events.len();
    replay.events = Rc::new(last.events);
    replay.paged = Some(Rc::new(Paged {
        outline: Rc::new(outline),
        start,
        events,
        datagrams,
        before: last.more,
        after: false,
    }));
    Ok(replay)
}

/// Where a paged replay moves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Move {
    /// Past the next datagram after the page.
    Forward,
    /// Back a datagram, before the page.
    Back,
    /// To the recording's start.
    Start,
    /// To its end.
    End,
    /// On, keeping the cursor's place (playing past the page's end).
    Next,
}

/// Reads the page a move needs and moves there. Half the old page stays on the side
/// the move comes from, so what was just seen stays drawn as arrows.
async fn turn(mut r: Replay, to: Move) -> Result<Replay, String> {
    let Some(paged) = r.paged.clone() else {
        return Ok(r);
    };
    let half = PAGE_EVENTS / 2;
    let last_id = r.events.iter().rev().find_map(Event::id).map_or(0, |i| i.0);
    let (events, cursor, before, after) = match to {
        Move::Start => {
            let p = page(r.id, &format!("after=0&limit={PAGE_EVENTS}")).await?;
            (p.events, 0, false, p.more)
        }
        Move::End => {
            let p = page(
                r.id,
                &format!("before={}&limit={PAGE_EVENTS}", u64::MAX >> 1),
            )
            .await?;
            let n = p.events.len();
            (p.events, n, p.more, false)
        }
        Move::Forward | Move::Next => {
            let p = page(r.id, &format!("after={last_id}&limit={half}")).await?;
            let keep = r.events.len().saturating_sub(half);
            let mut events = r.events[keep..].to_vec();
            let joined = events.len();
            events.extend(p.events);
            let cursor = match to {
                Move::Forward => events[joined..]
                    .iter()
                    .position(is_datagram)
                    .map_or(events.len(), |i| joined + i + 1),
                _ => r.cursor.saturating_sub(keep),
            };
            (events, cursor, true, p.more)
        }
        Move::Back => {
            let first_id = r.page_key();
            let p = page(r.id, &format!("before={first_id}&limit={half}")).await?;
            let more = p.more;
            let mut events = p.events;
            let joined = events.len();
            events.extend(r.events[..r.events.len().min(half)].iter().cloned());
            // Just past the datagram before the last one shown.
            let shown: Vec<usize> = events[..joined + r.cursor.min(half)]
                .iter()
                .enumerate()
                .filter(|(_, e)| is_datagram(e))
                .map(|(i, _)| i)
                .collect();
            let cursor = match shown.len() {
                0 | 1 => 0,
                n => shown[n - 2] + 1,
            };
            (events, cursor, more, true)
        }
    };
    r.events = Rc::new(events);
    r.cursor = cursor.min(r.events.len());
    r.paged = Some(Rc::new(Paged {
        outline: paged.outline.clone(),
        before,
        after,
        ..*paged
    }));
    r.loading = false;
    Ok(r)
}

/// Asks the server about recording `id` what the timeline asks a live session
/// (`aggregate`, `window`), over HTTP; the answer, an event as the live one, goes to
/// `dispatch`. A refusal (the counts still being made: `busy`) is let go: the timeline
/// asks again. False: not a question for a recording.
pub fn ask(
    id: i64,
    command: &socklab_protocol::Command,
    dispatch: UseReducerDispatcher<State>,
) -> bool {
    ask_into(id, command, dispatch, |event| {
        Action::Received(Box::new(event))
    })
}

/// [`ask`], the answer handed to the page as `action` makes it (the packet list's own
/// window goes to the list alone).
pub fn ask_into(
    id: i64,
    command: &socklab_protocol::Command,
    dispatch: UseReducerDispatcher<State>,
    action: fn(Event) -> Action,
) -> bool {
    use socklab_protocol::Command;
    let path = match command {
        Command::Aggregate {
            from_ns,
            to_ns,
            buckets,
        } => {
            format!("/api/recordings/{id}/counts?from_ns={from_ns}&to_ns={to_ns}&buckets={buckets}")
        }
        Command::Window {
            from_ns,
            to_ns,
            limit,
        } => format!(
            "/api/recordings/{id}/window?from_ns={from_ns}&to_ns={to_ns}&limit={}",
            limit.unwrap_or(socklab_protocol::limits::MAX_WINDOW_EVENTS)
        ),
        _ => return false,
    };
    wasm_bindgen_futures::spawn_local(async move {
        let Ok(response) = gloo_net::http::Request::get(&super::recordings::with_token(&path))
            .send()
            .await
        else {
            return;
        };
        if !response.ok() {
            return;
        }
        if let Ok(text) = response.text().await
            && let Ok(event) = Event::from_json(&text)
        {
            dispatch.dispatch(action(event));
        }
    });
    true
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
    // Of which recording and page, and how many of its events, the shown state holds.
    let applied = use_mut_ref(|| (0i64, 0u64, 0usize));
    // A page that could not be read.
    let problem = use_state(|| None::<String>);
    // Counts the replays opened and closed: a page read for one that is gone is let go.
    let generation = use_mut_ref(|| 0u64);
    {
        let (replayed, applied) = (props.replayed.clone(), applied.clone());
        let replay = (*handle).clone();
        let deps = replay.as_ref().map(|r| (r.id, r.cursor, r.page_key()));
        use_effect_with(deps, move |_| {
            if let Some(r) = replay {
                let mut done = applied.borrow_mut();
                let dispatch = replayed.dispatcher();
                let key = r.page_key();
                if done.0 != r.id || done.1 != key || r.cursor < done.2 {
                    dispatch.dispatch(Action::Reset);
                    let setup = r.before_page();
                    if !setup.is_empty() {
                        dispatch
                            .dispatch(Action::Received(Box::new(Event::Batch { events: setup })));
                    }
                    *done = (r.id, key, 0);
                }
                if r.cursor > done.2 {
                    let batch = r.events[done.2..r.cursor].to_vec();
                    dispatch.dispatch(Action::Received(Box::new(Event::Batch { events: batch })));
                    done.2 = r.cursor;
                }
                // The inspector follows the cursor: the last datagram shown.
                let last = r.events[..r.cursor].iter().rev().find(|e| is_datagram(e));
                dispatch.dispatch(Action::Select(last.and_then(Event::id).map(|i| i.0)));
            }
        });
    }
    // Reads the page a move needs, then shows it (playing on if `play`).
    let go = {
        let (handle, problem, generation) = (handle.clone(), problem.clone(), generation.clone());
        move |mut r: Replay, to: Move, play: bool| {
            if r.loading {
                return;
            }
            r.loading = true;
            handle.set(Some(r.clone()));
            let (handle, problem, generation) =
                (handle.clone(), problem.clone(), generation.clone());
            let opened = *generation.borrow();
            wasm_bindgen_futures::spawn_local(async move {
                let turned = turn(r.clone(), to).await;
                if *generation.borrow() != opened {
                    return;
                }
                match turned {
                    Ok(mut next) => {
                        next.playing = play;
                        problem.set(None);
                        handle.set(Some(next));
                    }
                    Err(e) => {
                        r.loading = false;
                        r.playing = false;
                        problem.set(Some(e));
                        handle.set(Some(r));
                    }
                }
            });
        }
    };
    // Playing: a timer that moves the cursor on as the recording's clock runs (and,
    // paged, reads the next page at the end of this one).
    {
        let (handle, go) = (handle.clone(), go.clone());
        let playing = handle.as_ref().is_some_and(|r| r.playing);
        let speed = handle.as_ref().map_or(1.0, |r| r.speed).to_bits();
        let key = handle.as_ref().map_or(0, Replay::page_key);
        use_effect_with((playing, speed, key), move |&(playing, _, _)| {
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
                        if r.paged.as_ref().is_some_and(|p| p.after) {
                            go(r, Move::Next, true);
                            return;
                        }
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
    let set = |f: fn(&mut Replay) -> Option<(Move, bool)>| {
        let (handle, go) = (handle.clone(), go.clone());
        Callback::from(move |_: MouseEvent| {
            if let Some(mut r) = (*handle).clone() {
                match f(&mut r) {
                    Some((to, play)) => go(r, to, play),
                    None => handle.set(Some(r)),
                }
            }
        })
    };
    let forward = set(|r| {
        r.playing = false;
        // Past the next datagram (and what came before it).
        if let Some(i) = r.events[r.cursor..].iter().position(is_datagram) {
            r.cursor += i + 1;
        } else if r.paged.as_ref().is_some_and(|p| p.after) {
            return Some((Move::Forward, false));
        } else {
            r.cursor = r.events.len();
        }
        None
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
        if shown.len() < 2 && r.paged.as_ref().is_some_and(|p| p.before) {
            return Some((Move::Back, false));
        }
        r.cursor = match shown.len() {
            0 | 1 => 0,
            n => shown[n - 2] + 1,
        };
        None
    });
    let start = set(|r| {
        r.playing = false;
        if r.paged.as_ref().is_some_and(|p| p.before) {
            return Some((Move::Start, false));
        }
        r.cursor = 0;
        None
    });
    let end = set(|r| {
        r.playing = false;
        if r.paged.as_ref().is_some_and(|p| p.after) {
            return Some((Move::End, false));
        }
        r.cursor = r.events.len();
        None
    });
    let play = set(|r| {
        if r.cursor >= r.events.len() && !r.paged.as_ref().is_some_and(|p| p.after) {
            if r.paged.as_ref().is_some_and(|p| p.before) {
                return Some((Move::Start, true));
            }
            r.cursor = 0;
        }
        r.playing = !r.playing;
        None
    });
    let close = {
        let (handle, generation) = (handle.clone(), generation.clone());
        Callback::from(move |_| {
            *generation.borrow_mut() += 1;
            handle.set(None);
        })
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
    let t = r.t_ns(r.cursor.saturating_sub(1)) as f64 / 1e9;
    let cursor = match &r.paged {
        None => {
            let datagrams = r.events.iter().filter(|e| is_datagram(e)).count();
            let shown = r.events[..r.cursor]
                .iter()
                .filter(|e| is_datagram(e))
                .count();
            format!(
                "datagram {shown} of {datagrams} · event {} of {} · t = {t:.6} s",
                r.cursor,
                r.events.len()
            )
        }
        Some(p) => {
            let id = r.events[..r.cursor]
                .iter()
                .rev()
                .find_map(Event::id)
                .map_or(0, |i| i.0);
            format!(
                "event #{id} · t = {t:.6} s · a recording of {} events ({} datagrams){}",
                p.events,
                p.datagrams,
                if r.loading { " · reading…" } else { "" }
            )
        }
    };
    html! {
        <section class="panel replay" aria-labelledby="replay-title">
            <h2 id="replay-title">{ "Recording" }</h2>
            <p id="replay-name"><strong>{ r.name.clone() }</strong>{ format!(" (recording {}), read-only", r.id) }</p>
            <p id="replay-cursor" class="mono">{ cursor }</p>
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
            if let Some(p) = &r.paged {
                <p id="replay-paged" class="hint">{ format!(
                    "Too big to read whole ({} events): the page holds the {} around the cursor and the recording's outline (its sockets, links and figures). Before them the timeline draws the recording's counts per lane (bars, amber by the time axis); zoom in to fewer than {} datagrams and their arrows are read from the recording. Stepping past the page reads the next.",
                    p.events,
                    r.events.len(),
                    crate::timeline::scale::DETAIL_MAX,
                ) }</p>
            }
            if let Some(message) = &*problem {
                <p id="replay-problem" class="form-error" role="alert">{ message.clone() }</p>
            }
            <p class="hint">{ "The timeline, the packets, the inspector and the flows show the recording as of the cursor: what had happened by then. Its sockets and links are not live: the forms come back with the live session." }</p>
            <button id="replay-close" onclick={close}>{ "back to the live session" }</button>
        </section>
    }
}

type Event_ = yew::Event;

#[cfg(test)]
mod tests {
    use super::*;

    fn event(json: &str) -> Event {
        Event::from_json(json).unwrap()
    }

    fn bound(id: u64, t_ns: u64) -> Event {
        event(&format!(
            r#"{{"type":"bound","id":{id},"socket":"s{id}","proto":"udp","local":"127.0.0.1:{}","t_ns":{t_ns}}}"#,
            4000 + id
        ))
    }

    fn sent(id: u64, t_ns: u64) -> Event {
        event(&format!(
            r#"{{"type":"datagram","id":{id},"socket":"s1","dir":"out","local":"127.0.0.1:4001","peer":"127.0.0.1:4002","len":1,"payload_b64":"eA==","t_ns":{t_ns}}}"#
        ))
    }

    fn paged(page: Vec<Event>, before: bool) -> Replay {
        Replay {
            id: 1,
            name: "big".into(),
            cursor: page.len(),
            events: Rc::new(page),
            playing: false,
            speed: 1.0,
            paged: Some(Rc::new(Paged {
                // A socket bound before the page, one bound in it.
                outline: Rc::new(vec![bound(1, 0), bound(150, 2_000)]),
                start: (1, 0),
                events: 1_000,
                datagrams: 800,
                before,
                after: false,
            })),
            loading: false,
        }
    }

    #[test]
    fn a_page_is_shown_after_the_outline_before_it_and_the_counts_of_what_precedes_it() {
        let r = paged(
            vec![sent(100, 1_000), bound(150, 2_000), sent(151, 3_000)],
            true,
        );
        let before = r.before_page();
        // The outline up to the page (not the socket bound in it: the page has it),
        // then what came before the page, which the timeline draws as counts.
        assert_eq!(before.len(), 2);
        assert_eq!(before[0], bound(1, 0));
        match &before[1] {
            Event::Thinned(t) => {
                assert_eq!((t.from, t.to, t.count), (EventId(1), EventId(99), 99));
                assert_eq!((t.from_ns, t.to_ns), (0, 999));
            }
            other => panic!("expected thinned, got {other:?}"),
        }
        // A page at the recording's start: nothing precedes it.
        let first = paged(vec![bound(1, 0), sent(2, 1_000)], false);
        assert!(first.before_page().is_empty());
        // A recording read whole: nothing either.
        let whole = Replay {
            paged: None,
            ..paged(vec![sent(2, 1_000)], false)
        };
        assert!(whole.before_page().is_empty());
    }
}
