//! The WebSocket to the server. One long-lived task connects, feeds every frame to the
//! reducer, and reconnects with a growing delay when the connection drops.

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::time::Duration;

use futures_channel::mpsc;
use futures_util::{SinkExt as _, StreamExt as _, future};
use gloo_net::websocket::Message;
use gloo_net::websocket::futures::WebSocket;
use socklab_protocol::{Command, Event, Request};
use yew::UseReducerDispatcher;

use crate::model::{Action, Origin, State};

/// The first delay before reconnecting; it doubles up to [`RECONNECT_MAX`].
const RECONNECT_FIRST: Duration = Duration::from_millis(250);
/// The longest delay between reconnection attempts.
const RECONNECT_MAX: Duration = Duration::from_secs(5);

/// What components use to send commands. Cloning it is cheap; every clone sends on the
/// current connection.
#[derive(Clone, Default)]
pub struct Commands {
    outbox: Rc<RefCell<Option<mpsc::UnboundedSender<String>>>>,
    next_req: Rc<Cell<i64>>,
}

impl PartialEq for Commands {
    fn eq(&self, other: &Self) -> bool {
        Rc::ptr_eq(&self.outbox, &other.outbox)
    }
}

impl Commands {
    /// Sends `command` with a fresh `req`, remembering which part of the page sent it.
    /// Returns false when there is no connection right now.
    pub fn send(
        &self,
        dispatch: &UseReducerDispatcher<State>,
        origin: Origin,
        command: Command,
    ) -> bool {
        let req = self.next_req.get() + 1;
        self.next_req.set(req);
        let text = Request::with_req(req, command).to_json();
        let sent = self
            .outbox
            .borrow()
            .as_ref()
            .is_some_and(|outbox| outbox.unbounded_send(text).is_ok());
        if sent {
            dispatch.dispatch(Action::Sent { req, origin });
        } else {
            dispatch.dispatch(Action::LocalError {
                origin,
                message: Some("not connected to the socklab server; retrying".into()),
            });
        }
        sent
    }
}

/// The WebSocket address of the server that served this page.
fn ws_url() -> String {
    let location = web_sys::window().expect("a browser window").location();
    let host = location.host().unwrap_or_else(|_| "127.0.0.1:7070".into());
    let scheme = if location.protocol().ok().as_deref() == Some("https:") {
        "wss"
    } else {
        "ws"
    };
    format!("{scheme}://{host}/ws")
}

/// Keeps a connection to the server for the page's lifetime.
pub async fn maintain(commands: Commands, dispatch: UseReducerDispatcher<State>) {
    let url = ws_url();
    let mut delay = RECONNECT_FIRST;
    loop {
        if let Ok(ws) = WebSocket::open(&url) {
            let (mut sink, mut stream) = ws.split();
            let (outbox, mut queued) = mpsc::unbounded::<String>();
            *commands.outbox.borrow_mut() = Some(outbox);
            let reader = async {
                let mut heard = false;
                while let Some(Ok(message)) = stream.next().await {
                    if let Message::Text(text) = message {
                        match Event::from_json(&text) {
                            Ok(event) => {
                                heard = true;
                                dispatch.dispatch(Action::Received(Box::new(event)));
                            }
                            Err(e) => web_sys::console::warn_1(
                                &format!("socklab: cannot read a server frame: {e}").into(),
                            ),
                        }
                    }
                }
                heard
            };
            let writer = async {
                while let Some(text) = queued.next().await {
                    if sink.send(Message::Text(text)).await.is_err() {
                        break;
                    }
                }
            };
            let heard = match future::select(Box::pin(reader), Box::pin(writer)).await {
                future::Either::Left((heard, _)) => heard,
                future::Either::Right(((), _)) => true,
            };
            commands.outbox.borrow_mut().take();
            if heard {
                delay = RECONNECT_FIRST;
            }
        }
        dispatch.dispatch(Action::Disconnected);
        gloo_timers::future::sleep(delay).await;
        delay = (delay * 2).min(RECONNECT_MAX);
    }
}
