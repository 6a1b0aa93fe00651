//! Every id on the wire, in one place. Each is a newtype, so a socket's id cannot be
//! passed where a link's is meant; on the wire each is its bare value (`"s1"`, `17`).

use std::fmt;

use serde::{Deserialize, Serialize};

/// A session's event id: strictly increasing, never reused.
#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[serde(transparent)]
pub struct EventId(pub u64);

impl EventId {
    /// The cursor before a session's first event (ids start at 1): reading after it
    /// reads from the start.
    pub const BEFORE_FIRST: EventId = EventId(0);
}

/// Declares a string id: `new`, `as_str` and `Display`.
macro_rules! string_id {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
        #[serde(transparent)]
        pub struct $name(pub String);

        impl $name {
            /// Wraps an id.
            pub fn new(id: impl Into<String>) -> Self {
                $name(id.into())
            }

            /// The id's text.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}

string_id! {
    /// A socket's id within its session, such as `"s1"`.
    SocketId
}

string_id! {
    /// A link's id within its session, such as `"l1"`.
    LinkId
}

string_id! {
    /// A traffic generator's id within its session, such as `"g1"`.
    GeneratorId
}

string_id! {
    /// A session's id, as `hello` announces it and `GET /ws?session=` names it.
    SessionId
}
