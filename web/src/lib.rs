//! socklab's web app: forms to bind sockets and send datagrams, and a live list of every
//! packet, talking to the server only through `socklab-protocol` types.
//!
//! # Layout
//! - [`model`]: the page's state: actions and received events applied in place, with a
//!   version counter per shared part so views redraw only what changed; unit-tested
//!   without a browser.
//! - [`connection`]: the WebSocket to the server, reconnecting on its own, and the
//!   [`connection::Commands`] handle components send commands through.
//! - [`components`]: the views: header, sockets, send form, packet list, inspector.
//! - [`hexdump`]: hex + ASCII dumps and one-line payload previews.
//! - [`timeline`]: the timeline's pure model: lanes, arrows and their fates, hit
//!   testing.
//! - [`view`]: the timeline's time window and what zoom, pan and follow do to it.
//! - [`forms`]: the forms' state, each turning what a person typed into a command or a
//!   plain-words problem.
//! - [`lessons`]: learning mode: lessons whose steps are checked against the session's
//!   real events.
#![forbid(unsafe_code)]

pub mod components;
pub mod connection;
pub mod forms;
pub mod hexdump;
pub mod lessons;
pub mod model;
#[cfg(test)]
mod testing;
pub mod timeline;
pub mod view;

use wasm_bindgen::prelude::*;

/// Starts the app in the page's body.
#[wasm_bindgen(start)]
pub fn start() {
    yew::Renderer::<components::App>::new().render();
}
