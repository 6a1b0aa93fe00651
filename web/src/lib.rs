//! socklab's web app: forms to bind sockets and send datagrams, and a live list of every
//! packet, talking to the server only through `socklab-protocol` types.
//!
//! # Layout
//! - [`model`]: the page state as a pure reducer (actions in, state out), unit-tested
//!   without a browser.
//! - [`connection`]: the WebSocket to the server, reconnecting on its own, and the
//!   [`connection::Commands`] handle components send commands through.
//! - [`components`]: the views: header, sockets, send form, packet list, inspector.
//! - [`hexdump`]: hex + ASCII dumps and one-line payload previews.
//! - [`timeline`]: the timeline's pure model: lanes, arrows and their fates, the view's
//!   time window, hit testing.
#![forbid(unsafe_code)]

pub mod components;
pub mod connection;
pub mod hexdump;
pub mod model;
pub mod timeline;

use wasm_bindgen::prelude::*;

/// Starts the app in the page's body.
#[wasm_bindgen(start)]
pub fn start() {
    yew::Renderer::<components::App>::new().render();
}
