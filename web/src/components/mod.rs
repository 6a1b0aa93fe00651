//! The page's views. Each panel reads the shared [`Ctx`] and sends commands through it.

mod flows;
mod header;
mod inspector;
mod links;
mod packets;
mod send;
mod sockets;
mod timeline;

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
pub use timeline::TimelinePanel;

/// What every panel can reach: the state and the way to send commands.
#[derive(Clone, PartialEq)]
pub struct Ctx {
    /// The page state.
    pub state: UseReducerHandle<State>,
    /// Sends commands to the server.
    pub commands: Commands,
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
    let ctx = Ctx {
        state,
        commands: (*commands).clone(),
    };
    html! {
        <ContextProvider<Ctx> context={ctx}>
            <Header />
            <main class="layout">
                <div class="column">
                    <SocketsPanel />
                    <SendPanel />
                    <LinksPanel />
                </div>
                <Workspace />
            </main>
        </ContextProvider<Ctx>>
    }
}

/// The right-hand side: the timeline (with the flows' figures) or the packet list,
/// and the inspector under either.
#[component]
fn Workspace() -> Html {
    let tab = use_state(|| "timeline");
    let pick = |name: &'static str| {
        let tab = tab.clone();
        Callback::from(move |_| tab.set(name))
    };
    html! {
        <section class="panel workspace">
            <div class="tabs" role="tablist">
                <button id="tab-timeline" role="tab" class={classes!("tab", (*tab == "timeline").then_some("on"))} onclick={pick("timeline")}>{ "Timeline" }</button>
                <button id="tab-packets" role="tab" class={classes!("tab", (*tab == "packets").then_some("on"))} onclick={pick("packets")}>{ "Packets" }</button>
            </div>
            if *tab == "timeline" {
                <TimelinePanel />
                <FlowsPanel />
            } else {
                <PacketsPanel />
            }
            <Inspector />
        </section>
    }
}

/// The message shown under a form when something was refused.
#[derive(Properties, PartialEq)]
pub struct FormErrorProps {
    /// The element id, for tests and screen readers.
    pub id: AttrValue,
    /// The message, if any.
    pub message: Option<String>,
}

/// A refusal shown next to the form that caused it.
#[component]
pub fn FormError(props: &FormErrorProps) -> Html {
    match &props.message {
        Some(message) => html! {
            <p id={props.id.clone()} class="form-error" role="alert">{ message }</p>
        },
        None => html! {},
    }
}
