//! The top bar: name, connection state, session.

use yew::prelude::*;

use super::use_ctx;
use crate::model::{Action, Connection};

/// The top bar with the connection state and any notices.
#[component]
pub fn Header() -> Html {
    let ctx = use_ctx();
    let state = &ctx.state;
    let (class, label) = match state.connection {
        Connection::Connecting => ("status connecting", "connecting…".to_string()),
        Connection::Connected => ("status connected", "connected".to_string()),
        Connection::Reconnecting { attempts } => (
            "status reconnecting",
            if attempts == 0 {
                "connection lost, reconnecting…".to_string()
            } else {
                format!("reconnecting… (attempt {})", attempts + 1)
            },
        ),
    };
    let dismiss = {
        let dispatch = state.dispatcher();
        Callback::from(move |_| dispatch.dispatch(Action::DismissNotices))
    };
    html! {
        <>
            <header class="topbar">
                <h1>{ "socklab" }</h1>
                <span class="tagline">{ "real sockets, every packet" }</span>
                <span id="conn-status" class={class} title="The page talks to the socklab server over a WebSocket">
                    { label }
                </span>
                if let Some(session) = &state.session {
                    <span class="session" title="Session id: your sockets belong to this session">
                        { format!("session {}", &session[..session.len().min(8)]) }
                    </span>
                }
                if let Some(server) = &state.server {
                    <span class="server">{ server.clone() }</span>
                }
            </header>
            if !state.notices.is_empty() {
                <div class="notices" role="status">
                    { for state.notices.iter().map(|n| html! { <p>{ n.clone() }</p> }) }
                    <button class="link" onclick={dismiss}>{ "dismiss" }</button>
                </div>
            }
        </>
    }
}
