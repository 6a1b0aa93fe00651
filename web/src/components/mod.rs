//! The page's views. Each panel reads the shared [`Ctx`] and sends commands through it.

mod flows;
mod header;
mod inspector;
mod lessons;
mod links;
mod packets;
mod recordings;
mod replay;
mod runs;
mod send;
mod sockets;
mod stats;
mod tcplinks;
mod timeline;

use socklab_protocol::Endpoint;
use yew::prelude::*;

use crate::connection::{self, Commands};
use crate::model::State;

pub use flows::FlowsPanel;
pub use header::Header;
pub use inspector::Inspector;
pub use links::LinksPanel;
pub use packets::PacketsPanel;
pub use send::SendPanel;
pub use sockets::SocketsPanel;
pub use tcplinks::TcpLinksPanel;
pub use timeline::TimelinePanel;

/// What every panel can reach: the state and the way to send commands.
#[derive(Clone, PartialEq)]
pub struct Ctx {
    /// What the panels show: the live session, or the recording being replayed.
    pub state: UseReducerHandle<State>,
    /// The live session (the top bar and the record button always show it).
    pub live: UseReducerHandle<State>,
    /// Sends commands to the server.
    pub commands: Commands,
    /// The recording being replayed, if one is.
    pub replay: UseStateHandle<Option<replay::Replay>>,
}

/// A canvas' 2D drawing context (None where the browser gives none).
pub(crate) fn context_2d(
    canvas: &web_sys::HtmlCanvasElement,
) -> Option<web_sys::CanvasRenderingContext2d> {
    use wasm_bindgen::JsCast as _;
    canvas
        .get_context("2d")
        .ok()
        .flatten()
        .and_then(|c| c.dyn_into().ok())
}

/// An input's callback that writes what was typed into one field of a form.
pub(crate) fn on_input<F: Clone + 'static>(
    form: &UseStateHandle<F>,
    set: fn(&mut F, String),
) -> Callback<InputEvent> {
    let form = form.clone();
    Callback::from(move |e: InputEvent| {
        let mut next = (*form).clone();
        set(&mut next, input_value(&e));
        form.set(next);
    })
}

/// A select's callback that writes the chosen value into one field of a form.
pub(crate) fn on_select<F: Clone + 'static>(
    form: &UseStateHandle<F>,
    set: fn(&mut F, String),
) -> Callback<Event> {
    let form = form.clone();
    Callback::from(move |e: Event| {
        let mut next = (*form).clone();
        set(
            &mut next,
            e.target_unchecked_into::<web_sys::HtmlSelectElement>()
                .value(),
        );
        form.set(next);
    })
}

/// A callback that changes a form (a checkbox, a chip, a toggle).
pub(crate) fn on_click<F: Clone + 'static, E>(
    form: &UseStateHandle<F>,
    change: impl Fn(&mut F) + 'static,
) -> Callback<E> {
    let form = form.clone();
    Callback::from(move |_| {
        let mut next = (*form).clone();
        change(&mut next);
        form.set(next);
    })
}

/// The value of the input or text area an input event came from.
fn input_value(e: &InputEvent) -> String {
    use wasm_bindgen::JsCast as _;
    match e.target() {
        Some(t) => match t.dyn_ref::<web_sys::HtmlTextAreaElement>() {
            Some(area) => area.value(),
            None => t.unchecked_into::<web_sys::HtmlInputElement>().value(),
        },
        None => String::new(),
    }
}

/// Takes a form's refusal away once the person changes the form: it spoke of what was
/// there before.
#[hook]
pub(crate) fn use_clear_error_on_change<T: PartialEq + 'static>(
    ctx: &Ctx,
    origin: crate::model::Origin,
    value: T,
) {
    let shown = ctx.state.error(&origin).is_some();
    let dispatch = ctx.state.dispatcher();
    let first = use_mut_ref(|| true);
    use_effect_with(value, move |_| {
        let first = std::mem::replace(&mut *first.borrow_mut(), false);
        if shown && !first {
            dispatch.dispatch(crate::model::Action::LocalError {
                origin,
                message: None,
            });
        }
    });
}

/// `version` as a view that is costly to draw again should see it: at most once every
/// `every_ms` (a plot of every point of a fast flow need not change sixty times a
/// second), and always once more after the last change.
#[hook]
pub(crate) fn use_settled(version: u64, every_ms: u32) -> u64 {
    let shown = use_state_eq(|| version);
    let latest = use_mut_ref(|| version);
    let last_ms = use_mut_ref(|| f64::NEG_INFINITY);
    let waiting = use_mut_ref(|| false);
    *latest.borrow_mut() = version;
    {
        let shown = shown.clone();
        use_effect_with(version, move |&version| {
            let now = connection::now_ms().unwrap_or(0.0);
            let wait = *last_ms.borrow() + f64::from(every_ms) - now;
            if wait <= 0.0 {
                *last_ms.borrow_mut() = now;
                shown.set(version);
            } else if !std::mem::replace(&mut *waiting.borrow_mut(), true) {
                gloo_timers::callback::Timeout::new(wait as u32, move || {
                    *waiting.borrow_mut() = false;
                    *last_ms.borrow_mut() = connection::now_ms().unwrap_or(0.0);
                    shown.set(*latest.borrow());
                })
                .forget();
            }
        });
    }
    *shown
}

/// Sends a form's command, or shows what is wrong with it under the form.
pub(crate) fn submit(
    ctx: &Ctx,
    origin: crate::model::Origin,
    command: Result<socklab_protocol::Command, String>,
) {
    let dispatch = ctx.state.dispatcher();
    match command {
        Ok(command) => {
            ctx.commands.send(&dispatch, origin, command);
        }
        Err(message) => dispatch.dispatch(crate::model::Action::LocalError {
            origin,
            message: Some(message),
        }),
    }
}

/// The panels' shared context.
#[hook]
pub fn use_ctx() -> Ctx {
    use_context::<Ctx>().expect("panels are rendered inside App")
}

/// The whole page.
#[component]
pub fn App() -> Html {
    let state = use_reducer(State::default);
    let commands = use_state(Commands::default);
    {
        let commands = (*commands).clone();
        let dispatch = state.dispatcher();
        use_effect_with((), move |_| {
            wasm_bindgen_futures::spawn_local(connection::maintain(commands, dispatch));
        });
    }
    let replayed = use_reducer(State::default);
    let replay = use_state(|| None::<replay::Replay>);
    let replaying = replay.is_some();
    let ctx = Ctx {
        state: if replaying {
            replayed.clone()
        } else {
            state.clone()
        },
        live: state,
        commands: (*commands).clone(),
        replay,
    };
    html! {
        <ContextProvider<Ctx> context={ctx}>
            <Header />
            <main class="layout">
                <div class="column">
                    if replaying {
                        <replay::ReplayPanel replayed={replayed.clone()} />
                    } else {
                        <lessons::LessonsPanel />
                        <SocketsPanel />
                        <SendPanel />
                        <LinksPanel />
                        <TcpLinksPanel />
                    }
                </div>
                <Workspace />
            </main>
        </ContextProvider<Ctx>>
    }
}

/// The right-hand side: the timeline (with the flows' figures) or the packet list,
/// and the inspector docked under either, always in view. Both tabs stay mounted (the
/// hidden one is only hidden), so each keeps its zoom, filters and forms.
#[component]
fn Workspace() -> Html {
    let ctx = use_ctx();
    let tab = use_state(|| "timeline");
    {
        // A recording opened (or closed) shows on the timeline.
        let tab = tab.clone();
        let opened = ctx.replay.as_ref().map(|r| r.id);
        use_effect_with(opened, move |opened| {
            if opened.is_some() {
                tab.set("timeline");
            }
        });
    }
    {
        // Shown from the inspector: the tab where it is.
        let tab = tab.clone();
        use_effect_with(ctx.state.reveal, move |reveal| {
            if let Some(r) = reveal {
                tab.set(match r.place {
                    crate::model::Place::List => "packets",
                    crate::model::Place::Timeline => "timeline",
                });
            }
        });
    }
    let pick = |name: &'static str| {
        let tab = tab.clone();
        Callback::from(move |_| tab.set(name))
    };
    let on_timeline = *tab == "timeline";
    let on_packets = *tab == "packets";
    let on_recordings = *tab == "recordings";
    html! {
        <section class="panel workspace">
            <div class="tabs" role="tablist">
                <button id="tab-timeline" role="tab" aria-selected={on_timeline.to_string()} class={classes!("tab", on_timeline.then_some("on"))} onclick={pick("timeline")}>{ "Timeline" }</button>
                <button id="tab-packets" role="tab" aria-selected={on_packets.to_string()} class={classes!("tab", on_packets.then_some("on"))} onclick={pick("packets")}>{ "Packets" }</button>
                <button id="tab-recordings" role="tab" aria-selected={on_recordings.to_string()} class={classes!("tab", on_recordings.then_some("on"))} onclick={pick("recordings")}>{ "Recordings" }</button>
            </div>
            <div class="workspace-body">
                <div id="page-timeline" class="tab-page" role="tabpanel" hidden={!on_timeline}>
                    <TimelinePanel visible={on_timeline} />
                    <FlowsPanel visible={on_timeline} />
                </div>
                <div id="page-packets" class="tab-page" role="tabpanel" hidden={!on_packets}>
                    <PacketsPanel visible={on_packets} />
                </div>
                if on_recordings {
                    <div id="page-recordings" class="tab-page" role="tabpanel">
                        <recordings::RecordingsPanel />
                    </div>
                }
            </div>
            <Inspector />
        </section>
    }
}

/// What a destination chip list is told.
#[derive(Properties, PartialEq)]
pub struct DestinationsProps {
    /// Its element id.
    pub id: AttrValue,
    /// What a chip does: put its address in the form.
    pub on_pick: Callback<Endpoint>,
    /// The sending socket's address: not offered itself, and only addresses of its
    /// family are (a UDP socket cannot send to a Unix one).
    #[prop_or_default]
    pub exclude: Option<Endpoint>,
    /// Whether links are offered (a link may not forward to a link); without them
    /// only IP addresses are (a link carries UDP).
    #[prop_or(true)]
    pub links: bool,
}

/// The places a datagram can go, as chips: the same list in every form (lab sockets,
/// links' listen addresses, programs outside the lab seen recently).
#[component]
pub fn Destinations(props: &DestinationsProps) -> Html {
    let ctx = use_ctx();
    let chips: Vec<Html> = ctx
        .state
        .destinations()
        .into_iter()
        .filter(|d| match &props.exclude {
            Some(from) => d.addr != *from && d.addr.same_family(from),
            None => props.links || (!d.is_link && !d.addr.is_unix()),
        })
        .map(|d| {
            let addr = d.addr.clone();
            let pick = props.on_pick.reform(move |_: MouseEvent| addr.clone());
            html! { <button type="button" class="chip" title={d.addr.to_string()} onclick={pick}>{ d.label }</button> }
        })
        .collect();
    if chips.is_empty() {
        return html! {};
    }
    html! { <div id={props.id.clone()} class="chips">{ "to: " }{ for chips }</div> }
}

/// The message shown under a form when something was refused.
#[derive(Properties, PartialEq)]
pub struct FormErrorProps {
    /// The element id, for tests and screen readers.
    pub id: AttrValue,
    /// The message, if any.
    pub message: Option<String>,
    /// The server's error code, for those who script: shown on hover, not in the words.
    #[prop_or_default]
    pub code: Option<&'static str>,
}

/// A refusal shown next to the form that caused it.
#[component]
pub fn FormError(props: &FormErrorProps) -> Html {
    match &props.message {
        Some(message) => html! {
            <p id={props.id.clone()} class="form-error" role="alert" data-code={props.code}
                title={props.code.map(|c| format!("error code: {c}"))}>{ message }</p>
        },
        None => html! {},
    }
}
