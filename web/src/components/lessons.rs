//! Learning mode's card: the lessons of [`crate::lessons`], each step ticked when the
//! session's own events show it done, and then saying what the person just saw.

use std::rc::Rc;

use yew::prelude::*;

use super::use_ctx;
use crate::lessons::{CLIENT_PY, ECHO_PY, Facts, LESSONS};

/// How often the steps are checked again while events come, ms.
const CHECK_EVERY_MS: u32 = 500;

/// Where the page keeps which lesson is open.
const KEY: &str = "socklab.lesson";

/// The lesson the person left open (its id, kept in the browser's local storage).
fn remembered() -> Option<usize> {
    let id = web_sys::window()?
        .local_storage()
        .ok()??
        .get_item(KEY)
        .ok()??;
    LESSONS.iter().position(|l| l.id == id)
}

/// Keeps the lesson open (None: folded).
fn remember(open: Option<usize>) {
    let Some(storage) = web_sys::window().and_then(|w| w.local_storage().ok().flatten()) else {
        return;
    };
    let _ = match open.and_then(|i| LESSONS.get(i)) {
        Some(lesson) => storage.set_item(KEY, lesson.id),
        None => storage.remove_item(KEY),
    };
}

/// How long the part of the page a step is done with stays marked, ms.
const LOOK_MS: u32 = 2_500;

/// Brings `selector`'s element into view and marks it for a moment (`data-look`).
fn show(selector: &str) {
    let Some(element) = web_sys::window()
        .and_then(|w| w.document())
        .and_then(|d| d.query_selector(selector).ok().flatten())
    else {
        return;
    };
    let options = web_sys::ScrollIntoViewOptions::new();
    options.set_block(web_sys::ScrollLogicalPosition::Center);
    options.set_behavior(web_sys::ScrollBehavior::Smooth);
    element.scroll_into_view_with_scroll_into_view_options(&options);
    let _ = element.set_attribute("data-look", "");
    gloo_timers::callback::Timeout::new(LOOK_MS, move || {
        let _ = element.remove_attribute("data-look");
    })
    .forget();
}

/// The lessons, folded until the person opens them.
#[component]
pub fn LessonsPanel() -> Html {
    let ctx = use_ctx();
    let state = &ctx.state;
    // Open or folded, and which lesson: as the person left them (kept in the browser).
    let open = use_state(|| remembered().is_some());
    let chosen = use_state(|| remembered().unwrap_or(0));
    {
        let (open, chosen) = (*open, *chosen);
        use_effect_with((open, chosen), move |&(open, chosen)| {
            remember(open.then_some(chosen))
        });
    }
    // What the session shows, read again at most every CHECK_EVERY_MS while datagrams
    // come, and at once for new sockets and links; not at all while folded.
    let version = super::use_settled(
        state.timeline_version.wrapping_add(state.packets_version),
        CHECK_EVERY_MS,
    );
    // Started over: only what happens after this event counts (its datagrams, writes
    // and drops; the sockets and links made before still do).
    let since = use_state(|| 0u64);
    let facts = {
        let state = state.clone();
        use_memo(
            (
                *open,
                version,
                Rc::as_ptr(&state.sockets) as usize,
                Rc::as_ptr(&state.links) as usize,
                *since,
            ),
            move |&(open, _, _, _, since)| {
                if open {
                    Facts::since(&state, since)
                } else {
                    Facts::default()
                }
            },
        )
    };
    let on_start_over = {
        let (since, packets) = (since.clone(), state.packets.clone());
        Callback::from(move |_: MouseEvent| {
            let packets = packets.borrow();
            let newest = packets
                .len()
                .checked_sub(1)
                .and_then(|i| packets.nth(i))
                .map_or(0, |p| p.id);
            since.set(newest);
        })
    };
    let on_toggle = {
        let open = open.clone();
        Callback::from(move |_: MouseEvent| open.set(!*open))
    };
    let on_choose = {
        let chosen = chosen.clone();
        Callback::from(move |e: Event| {
            let value = e
                .target_unchecked_into::<web_sys::HtmlSelectElement>()
                .value();
            chosen.set(LESSONS.iter().position(|l| l.id == value).unwrap_or(0));
        })
    };
    let lesson = &LESSONS[(*chosen).min(LESSONS.len() - 1)];
    let done = lesson.progress(&facts);
    let current = done.iter().position(|d| !d);
    let next = {
        let chosen = chosen.clone();
        let index = *chosen;
        Callback::from(move |_: MouseEvent| chosen.set((index + 1) % LESSONS.len()))
    };
    let show_me = |look: &'static str| Callback::from(move |_: MouseEvent| show(look));
    let steps = lesson.steps.iter().enumerate().map(|(i, step)| {
        let is_done = done[i];
        let is_current = current == Some(i);
        let hint = (!is_done).then(|| (step.hint)(&facts)).flatten();
        html! {
            <li class={classes!("lesson-step", is_done.then_some("done"), is_current.then_some("current"))}
                data-done={is_done.to_string()}>
                <strong>{ if is_done { "✓ " } else { "○ " } }{ step.title }</strong>
                if is_done {
                    <p class="saw">{ (step.saw)(&facts) }</p>
                } else if is_current {
                    <p class="how">{ step.how }
                        if !step.look.is_empty() {
                            { " " }<button class="small lesson-look" onclick={show_me(step.look)}
                                title="Bring the part of the page this step is done with into view">{ "show me" }</button>
                        }
                    </p>
                    if lesson.id == "echo" && i == 1 {
                        <pre class="code" title="echo.py: run it with python3 echo.py">{ ECHO_PY }</pre>
                    }
                    if lesson.id == "client" && i == 1 {
                        <pre class="code" title="client.py: run it with python3 client.py">{ CLIENT_PY }</pre>
                    }
                }
                if let Some(hint) = hint {
                    <p class="hint warn">{ hint }</p>
                }
            </li>
        }
    });
    html! {
        <section class="panel lessons" id="lessons" aria-labelledby="lessons-title">
            <div class="panel-head">
                <h2 id="lessons-title">{ "Learn" }</h2>
                <button id="lessons-toggle" class="small" onclick={on_toggle} aria-expanded={open.to_string()}>
                    { if *open { "fold" } else { "lessons" } }</button>
            </div>
            if !*open {
                <p class="hint">{ "New to UDP? Eight short lessons, with a program of your own, show what it really does: each step is ticked when your sockets show it happened." }</p>
            } else {
                <select id="lesson-choice" onchange={on_choose} title="Which lesson">
                    { for LESSONS.iter().enumerate().map(|(i, l)| {
                        let finished = l.progress(&facts).iter().all(|d| *d);
                        html! {
                            <option value={l.id} selected={l.id == lesson.id}>
                                { format!("{}{}. {}", if finished { "✓ " } else { "" }, i + 1, l.name) }</option>
                        }
                    }) }
                </select>
                <p class="hint">{ lesson.intro }{ " " }
                    <button id="lesson-start-over" class="small" onclick={on_start_over}
                        title="Count only what you do from now on (the sockets and links you have still count)">{ "start over" }</button></p>
                <ol class="lesson-steps" id="lesson-steps">{ for steps }</ol>
                if current.is_none() {
                    <p id="lesson-done" class="lesson-done">{ "Done: every step happened on real sockets. " }
                        <button id="lesson-next" class="small" onclick={next}>{ "next lesson" }</button></p>
                }
            }
        </section>
    }
}
