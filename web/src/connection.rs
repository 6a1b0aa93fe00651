//! The WebSocket to the server. One long-lived task connects, feeds every frame to the
//! reducer, and reconnects with a growing delay when the connection drops. When an
//! attempt fails before the server said hello, it asks the server why (`/ws/access`:
//! a browser's WebSocket never sees an HTTP refusal) and tells the page; when trying
//! again cannot help (no token, a wrong one) it waits for the person to give one.

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
const RECONNECT_MAX: Duration = Duration::from_secs(30);

/// What components use to send commands. Cloning it is cheap; every clone sends on the
/// current connection.
#[derive(Clone, Default)]
pub struct Commands {
    outbox: Rc<RefCell<Option<mpsc::UnboundedSender<String>>>>,
    next_req: Rc<Cell<i64>>,
    /// Where a token the person gives goes (the connection task waits on it when the
    /// server refused the page's token).
    tokens: Rc<RefCell<Option<mpsc::UnboundedSender<String>>>>,
}

impl PartialEq for Commands {
    fn eq(&self, other: &Self) -> bool {
        Rc::ptr_eq(&self.outbox, &other.outbox)
    }
}

impl Commands {
    /// Connects again with this launch token (from the page's token form).
    pub fn use_token(&self, token: String) {
        if let Some(tokens) = self.tokens.borrow().as_ref() {
            let _ = tokens.unbounded_send(token);
        }
    }

    /// Asks the server something whose answer the page takes by its kind, whoever
    /// asked (`aggregate`, `window`): no `req`, nothing to wait for. Returns false when
    /// there is no connection right now.
    pub fn ask(&self, command: Command) -> bool {
        let text = Request::new(command).to_json();
        self.outbox
            .borrow()
            .as_ref()
            .is_some_and(|outbox| outbox.unbounded_send(text).is_ok())
    }

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

/// Where the page keeps the launch token and its session across reloads (this tab only).
const TOKEN_KEY: &str = "socklab.token";
const SESSION_KEY: &str = "socklab.session";

/// What the page needs to (re)join its session.
#[derive(Debug, Default)]
struct Resume {
    token: Option<String>,
    session: Option<String>,
    /// The newest event id this page has; a reconnection asks for what follows it.
    last_id: u64,
}

/// Whether the page keeps itself current by being spared single datagrams when it
/// falls behind (the default); `?keep_up=0` in its address takes every event, however
/// far behind that leaves it (to measure the page itself, or to watch a moderate run
/// arrive whole on a slow machine).
fn keeps_up() -> bool {
    !matches!(
        address_param("keep_up").as_deref(),
        Some("0" | "off" | "false")
    )
}

/// A parameter of the page's own address (`?name=value`), if it has one.
pub fn address_param(name: &str) -> Option<String> {
    web_sys::window()
        .and_then(|w| w.location().search().ok())
        .and_then(|q| web_sys::UrlSearchParams::new_with_str(&q).ok())
        .and_then(|p| p.get(name))
}

/// How many events a second the page asks to be sent at most: [`KEEP_UP_RATE`], or
/// `?keep_up_rate=N` in its address (0: as many as come, thinned only when behind; to
/// measure the page against it).
///
/// [`KEEP_UP_RATE`]: crate::timeline::scale::KEEP_UP_RATE
fn keep_up_rate() -> u64 {
    address_param("keep_up_rate")
        .and_then(|n| n.parse().ok())
        .unwrap_or(crate::timeline::scale::KEEP_UP_RATE)
}

/// The launch token the page keeps (for the server's HTTP routes, which need it too).
pub fn token() -> Option<String> {
    storage().and_then(|s| s.get_item(TOKEN_KEY).ok().flatten())
}

fn storage() -> Option<web_sys::Storage> {
    web_sys::window()?.session_storage().ok()?
}

/// Takes the token out of the address bar once the page has stored it, so it does not
/// end up in bookmarks, screenshots or a projected screen.
fn forget_token_in_address_bar() {
    let Some(window) = web_sys::window() else {
        return;
    };
    let location = window.location();
    let (Ok(path), Ok(search), Ok(hash)) =
        (location.pathname(), location.search(), location.hash())
    else {
        return;
    };
    let Ok(params) = web_sys::UrlSearchParams::new_with_str(&search) else {
        return;
    };
    params.delete("token");
    let rest: String = params.to_string().into();
    let query = if rest.is_empty() {
        String::new()
    } else {
        format!("?{rest}")
    };
    if let Ok(history) = window.history() {
        let _ = history.replace_state_with_url(
            &wasm_bindgen::JsValue::NULL,
            "",
            Some(&format!("{path}{query}{hash}")),
        );
    }
}

impl Resume {
    /// On page load: the token from the URL the server printed (kept for reloads), and
    /// the session this tab had before a reload, replayed from its start.
    fn from_page() -> Resume {
        let from_url = web_sys::window()
            .and_then(|w| w.location().search().ok())
            .and_then(|q| web_sys::UrlSearchParams::new_with_str(&q).ok())
            .and_then(|p| p.get("token"));
        let stored = |key: &str| storage().and_then(|s| s.get_item(key).ok().flatten());
        let in_url = from_url.is_some();
        let token = from_url.or_else(|| stored(TOKEN_KEY));
        if let (Some(token), Some(storage)) = (&token, storage()) {
            let _ = storage.set_item(TOKEN_KEY, token);
        }
        if in_url {
            forget_token_in_address_bar();
        }
        Resume {
            token,
            session: stored(SESSION_KEY),
            last_id: 0,
        }
    }

    /// Notes what a frame says: the session's id, the newest event id.
    fn saw(&mut self, event: &Event) {
        match event {
            Event::Hello(hello) => {
                if self.session.as_deref() != Some(hello.session.as_str()) {
                    // A new session: its ids start again.
                    self.last_id = 0;
                }
                self.session = Some(hello.session.to_string());
                if let Some(storage) = storage() {
                    let _ = storage.set_item(SESSION_KEY, hello.session.as_str());
                }
            }
            Event::Batch { events } => events.iter().for_each(|e| self.saw(e)),
            other => {
                if let Some(id) = other.id() {
                    self.last_id = self.last_id.max(id.0);
                }
            }
        }
    }

    /// The query `/ws` and `/ws/access` take: the token, the session and what the
    /// page already has of it.
    fn query(&self) -> String {
        let mut query = Vec::new();
        if let Some(token) = &self.token {
            let token = String::from(js_sys::encode_uri_component(token));
            query.push(format!("token={token}"));
        }
        if let Some(session) = &self.session {
            let session = String::from(js_sys::encode_uri_component(session));
            query.push(format!("session={session}&since={}", self.last_id));
        }
        query.join("&")
    }

    /// The WebSocket address of the server that served this page, with what it needs.
    fn url(&self) -> String {
        let location = web_sys::window().expect("a browser window").location();
        let host = location.host().unwrap_or_else(|_| "127.0.0.1:7070".into());
        let scheme = if location.protocol().ok().as_deref() == Some("https:") {
            "wss"
        } else {
            "ws"
        };
        format!("{scheme}://{host}/ws?{}", self.query())
    }

    /// A new token from the person: kept for reloads, used from the next attempt.
    fn set_token(&mut self, token: String) {
        if let Some(storage) = storage() {
            let _ = storage.set_item(TOKEN_KEY, &token);
        }
        self.token = Some(token);
    }
}

/// What the server says of a connection the page could not make.
enum Access {
    /// Nothing answered.
    Unreachable,
    /// It would let the page in: the failure was passing (try again).
    Open,
    /// It refuses the page: its code and words.
    Refused { code: String, message: String },
}

/// Asks the server why `/ws` with `query` would fail.
async fn access(query: &str) -> Access {
    let Ok(response) = gloo_net::http::Request::get(&format!("/ws/access?{query}"))
        .send()
        .await
    else {
        return Access::Unreachable;
    };
    if response.ok() {
        return Access::Open;
    }
    #[derive(serde::Deserialize)]
    struct Refusal {
        code: String,
        message: String,
    }
    match response.json::<Refusal>().await {
        Ok(r) => Access::Refused {
            code: r.code,
            message: r.message,
        },
        Err(_) => Access::Refused {
            code: "refused".into(),
            message: format!("the server refused the page (HTTP {})", response.status()),
        },
    }
}

/// How often frames are handed to the page: however many arrive, the page updates at
/// most this often (a frame per event would make it re-render thousands of times a
/// second under load).
const DELIVER_EVERY_MS: f64 = 16.0;

/// The page updates less often when an update takes long (a fast session, a big page):
/// it waits this many times as long as the last update took, so that updating keeps at
/// most a fifth of the page's time and its frames stay smooth ...
const DELIVER_WAIT_PER_COST: f64 = 4.0;

/// ... but never longer than this: the picture stays current.
const DELIVER_EVERY_MAX_MS: f64 = 250.0;

/// Nor does the page wait once this many events are kept: a delivery's work stays
/// bounded, and it stays well under what the page takes for having fallen behind
/// ([`crate::timeline::scale::EVENTS_BEHIND`]).
const DELIVER_AT_EVENTS: usize = 1_000;

/// Frames received but not yet handed to the page.
struct Inbox {
    events: RefCell<Vec<Event>>,
    scheduled: Cell<bool>,
    dispatch: UseReducerDispatcher<State>,
    /// Whether the page spares itself single datagrams when it falls behind.
    keep_up: bool,
    /// How long the last delivery took, ms: the reducer, the render it caused and the
    /// effects after it.
    cost_ms: Cell<f64>,
}

impl Inbox {
    fn new(dispatch: UseReducerDispatcher<State>, keep_up: bool) -> Rc<Inbox> {
        Rc::new(Inbox {
            events: RefCell::default(),
            scheduled: Cell::new(false),
            dispatch,
            keep_up,
            cost_ms: Cell::new(0.0),
        })
    }

    /// Keeps a frame's events; the page gets them with the next delivery.
    fn push(self: &Rc<Self>, event: Event) {
        self.events.borrow_mut().extend(event.flatten());
        if self.events.borrow().len() >= DELIVER_AT_EVENTS {
            // The timer still set finds nothing to deliver, or the events after these.
            self.deliver();
            return;
        }
        if !self.scheduled.replace(true) {
            let inbox = self.clone();
            let wait = delivery_wait_ms(self.cost_ms.get());
            wasm_bindgen_futures::spawn_local(async move {
                gloo_timers::future::TimeoutFuture::new(wait).await;
                inbox.deliver();
            });
        }
    }

    /// Hands everything kept so far to the page, as one action.
    fn deliver(self: &Rc<Self>) {
        let started = now_ms();
        if !self.hand_over() {
            return;
        }
        // Yew renders in a task it queued when the action was dispatched; this one runs
        // after it (and after the effects of that render).
        let inbox = self.clone();
        wasm_bindgen_futures::spawn_local(async move {
            if let (Some(started), Some(now)) = (started, now_ms()) {
                inbox.cost_ms.set(now - started);
            }
        });
    }

    /// Whether there was anything to hand over.
    fn hand_over(&self) -> bool {
        self.scheduled.set(false);
        let events = std::mem::take(&mut *self.events.borrow_mut());
        let events = if self.keep_up {
            use crate::timeline::scale::{EVENTS_BEHIND, EVENTS_KEPT, spare};
            spare(events, EVENTS_BEHIND, EVENTS_KEPT)
        } else {
            events
        };
        match events.len() {
            0 => return false,
            1 => {
                let event = events.into_iter().next().expect("one event");
                self.dispatch.dispatch(Action::Received(Box::new(event)));
            }
            _ => self
                .dispatch
                .dispatch(Action::Received(Box::new(Event::Batch { events }))),
        }
        true
    }
}

/// How long to wait before the next delivery, after one that took `cost_ms`.
fn delivery_wait_ms(cost_ms: f64) -> u32 {
    let wait = cost_ms * DELIVER_WAIT_PER_COST;
    if wait.is_nan() {
        return DELIVER_EVERY_MS as u32;
    }
    wait.clamp(DELIVER_EVERY_MS, DELIVER_EVERY_MAX_MS) as u32
}

/// The page's clock, ms (none outside a browser window).
pub(crate) fn now_ms() -> Option<f64> {
    Some(web_sys::window()?.performance()?.now())
}

/// Keeps a connection to the server for the page's lifetime.
pub async fn maintain(commands: Commands, dispatch: UseReducerDispatcher<State>) {
    let keep_up = keeps_up();
    let resume = RefCell::new(Resume::from_page());
    let (tokens_in, mut tokens) = mpsc::unbounded::<String>();
    *commands.tokens.borrow_mut() = Some(tokens_in);
    let mut delay = RECONNECT_FIRST;
    loop {
        let mut heard_hello = false;
        let url = resume.borrow().url();
        if let Ok(ws) = WebSocket::open(&url) {
            let (mut sink, mut stream) = ws.split();
            let (outbox, mut queued) = mpsc::unbounded::<String>();
            // A page takes in fewer events a second than a fast session makes: the
            // server spares it single datagrams once it falls behind or they come
            // faster than it reads, and says when.
            if keep_up {
                let ask = Command::KeepUp {
                    behind: Some(crate::timeline::scale::KEEP_UP_BEHIND),
                    rate: Some(keep_up_rate()).filter(|r| *r > 0),
                };
                let _ = outbox.unbounded_send(Request::new(ask).to_json());
            }
            *commands.outbox.borrow_mut() = Some(outbox);
            let inbox = Inbox::new(dispatch.clone(), keep_up);
            let reader = async {
                let mut heard = false;
                while let Some(Ok(message)) = stream.next().await {
                    if let Message::Text(text) = message {
                        match Event::from_json(&text) {
                            Ok(event) => {
                                heard = true;
                                resume.borrow_mut().saw(&event);
                                inbox.push(event);
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
            // What arrived before the connection dropped is shown before the drop.
            inbox.deliver();
            if heard {
                delay = RECONNECT_FIRST;
                heard_hello = true;
            }
        }
        dispatch.dispatch(Action::Disconnected);
        if !heard_hello {
            let query = resume.borrow().query();
            match access(&query).await {
                Access::Unreachable => dispatch.dispatch(Action::Unreachable),
                Access::Open => {}
                Access::Refused { code, message } => {
                    let hopeless = code != "bad_since" && !code.starts_with("too_many");
                    if code == "bad_since" {
                        // The page is ahead of the session it names: replay it whole.
                        resume.borrow_mut().last_id = 0;
                    }
                    dispatch.dispatch(Action::Refused { code, message });
                    if hopeless {
                        // Trying again cannot help: wait for the person's token.
                        let Some(token) = tokens.next().await else {
                            return;
                        };
                        resume.borrow_mut().set_token(token);
                        dispatch.dispatch(Action::Retrying);
                        delay = RECONNECT_FIRST;
                        continue;
                    }
                }
            }
        }
        gloo_timers::future::sleep(delay).await;
        delay = (delay * 2).min(RECONNECT_MAX);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_slow_update_makes_the_next_wait_longer_within_bounds() {
        assert_eq!(
            delivery_wait_ms(0.0),
            16,
            "at most about 60 updates a second"
        );
        assert_eq!(delivery_wait_ms(3.0), 16);
        assert_eq!(
            delivery_wait_ms(10.0),
            40,
            "four times what the last one took"
        );
        assert_eq!(
            delivery_wait_ms(500.0),
            250,
            "never staler than a quarter second"
        );
        assert_eq!(delivery_wait_ms(f64::NAN), 16);
    }
}
