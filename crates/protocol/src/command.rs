//! Commands: what a client asks the server to do.

use serde::{Deserialize, Serialize};

use crate::flow::GeneratorSpec;
use crate::ids::{GeneratorId, LinkId, SocketId};
use crate::link::LinkSettings;
use crate::payload::Payload;

/// The kind of socket to open.
#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[serde(rename_all = "snake_case")]
pub enum Proto {
    /// A UDP socket (`SOCK_DGRAM`): datagrams.
    Udp,
    /// A TCP socket (`SOCK_STREAM`): a byte stream over a connection.
    Tcp,
    /// A Unix domain datagram socket (`AF_UNIX`, `SOCK_DGRAM`): datagrams between
    /// programs on this machine, named by a path or an abstract name, never lost.
    Unix,
}

/// Which half of a TCP connection `shutdown` ends.
#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[serde(rename_all = "snake_case")]
pub enum ShutdownHow {
    /// No more reading (SHUT_RD).
    Read,
    /// No more writing: the peer reads the end of the stream (SHUT_WR, a FIN).
    Write,
    /// Both (SHUT_RDWR).
    Both,
}

/// One command from a client. On the wire: a JSON object whose `"type"` names the
/// variant in snake_case.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Command {
    /// Open a socket and bind it. Success: a `bound` event.
    Bind(BindSpec),
    /// Close a socket of the session. Success: a `closed` event.
    Close {
        /// The socket to close.
        socket: SocketId,
    },
    /// Connect a socket to a peer. UDP: its default destination (a `send` without
    /// `to` goes there), and the only address it receives from (the kernel discards
    /// datagrams from any other); connecting again changes the peer. TCP (a socket
    /// bound without `listen`): open a connection (the three-way handshake).
    /// Success: a `connected` event.
    Connect {
        /// The socket.
        socket: SocketId,
        /// The peer, `"host:port"`.
        to: String,
    },
    /// Send one datagram. Success: a `datagram` event with `dir: "out"`.
    Send {
        /// The sending socket.
        socket: SocketId,
        /// The destination, `"host:port"`; absent: the connected peer (`connect`).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        to: Option<String>,
        /// The datagram's bytes.
        payload: Payload,
    },
    /// Stop or resume reading a socket, as a program busy elsewhere would: while
    /// paused, what arrives waits in the kernel's receive buffer (UDP: until it is
    /// full and the kernel drops; TCP: until the window closes and the sender must
    /// wait), and is read, as much as each read takes, once resumed. Success: a
    /// `paused` event.
    Pause {
        /// The socket.
        socket: SocketId,
        /// Stop (true) or resume (false) reading.
        paused: bool,
    },
    /// Join a multicast group on a UDP socket bound with `multicast`: datagrams sent to
    /// the group (and the socket's port) are received. Success: a `membership` event.
    Join {
        /// The socket.
        socket: SocketId,
        /// The group's address (224.0.0.0/4, ff00::/8).
        group: String,
        /// The interface: IPv4, one of its addresses; IPv6, its name or index. Absent:
        /// the one the kernel picks (by its routes).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        interface: Option<String>,
    },
    /// Leave a multicast group the socket joined. Success: a `membership` event.
    Leave {
        /// The socket.
        socket: SocketId,
        /// The group's address.
        group: String,
        /// The interface it was joined on, as given to `join`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        interface: Option<String>,
    },
    /// End one or both halves of a TCP connection. Success: a `shut_down` event.
    Shutdown {
        /// The socket.
        socket: SocketId,
        /// Which half.
        how: ShutdownHow,
    },
    /// Create a link: an impairing UDP relay from `listen` to `target`. Success: a
    /// `link_created` event.
    LinkCreate {
        /// Where clients send to: `"host:port"` (port 0: any free port).
        listen: String,
        /// Where the link forwards to: `"host:port"`.
        target: String,
        /// What it does to datagrams (default: nothing).
        #[serde(default)]
        settings: LinkSettings,
    },
    /// Create a TCP link: a proxy from `listen` to `target` that delays, throttles,
    /// slices, holds the end of, or resets the byte streams crossing it. Success: a
    /// `tcp_link_created` event. `link_delete` deletes it.
    TcpLinkCreate {
        /// Where clients connect to: `"host:port"` (port 0: any free port).
        listen: String,
        /// Where the link connects for each client: `"host:port"`.
        target: String,
        /// What it does (default: nothing).
        #[serde(default)]
        settings: crate::link::TcpLinkSettings,
    },
    /// Change a link's settings while it runs. Success: a `link_updated` event.
    LinkUpdate {
        /// The link.
        link: LinkId,
        /// The new settings (all of them).
        settings: LinkSettings,
    },
    /// Delete a link, closing its sockets. Success: a `link_deleted` event.
    LinkDelete {
        /// The link.
        link: LinkId,
    },
    /// Start the server-side traffic generator. Success: `generator_started`, then the
    /// datagrams, then `generator_done`.
    Generate(GeneratorSpec),
    /// Stop a running generator early. Success: its `generator_done`.
    GenerateStop {
        /// The generator.
        generator: GeneratorId,
    },
    /// Change how long a datagram may be in flight before it counts as lost.
    /// Success: `analysis_config`.
    SetLossTimeout {
        /// Milliseconds (1 to 600,000).
        ms: u64,
    },
    /// Name the part of each payload that identifies a datagram (a sequence number the
    /// person's protocol carries), so that a reply is paired with the request whose
    /// same part is equal; absent: no such part. Success: `analysis_config`.
    SetMatchField {
        /// The part, or none.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        field: Option<crate::flow::MatchField>,
    },
    /// Start recording the session into the server's store: every event the session's
    /// log still holds, then every new one, until `record_stop` or the session's end.
    /// Success: `recording_started`.
    RecordStart {
        /// The recording's name (at most 100 characters); absent: one made of the date.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        name: Option<String>,
    },
    /// Stop recording. Success: `recording_stopped`, once everything up to it is stored.
    RecordStop,
    /// Start a new run: from here on, figures per run count the datagrams sent after
    /// this moment (a 60 Hz test and a 5,000/s test no longer mix in one p99). Success:
    /// `run_marked`. A generator's start marks a run too.
    MarkRun {
        /// The run's name (at most 100 characters); absent: `run N`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        name: Option<String>,
    },
    /// How this viewer is sent the session's events from now on. With `behind` (at
    /// least 1,000), a viewer that falls more than `behind` events behind the session
    /// is no longer sent the events about single datagrams it is behind on (`datagram`
    /// without its own `req`, `link_packet`, `link_sent`, `fate`): a `thinned` event
    /// says which it was not sent, everything else still comes, and it is current again
    /// at once. Absent or 0: every event (the default). Success: `keeping_up`.
    KeepUp {
        /// How many events behind a viewer may fall before it is thinned (0: never).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        behind: Option<u64>,
        /// How many events a second it takes at most (absent or 0: as many as come):
        /// past them it is thinned too, so a page is never handed more than it can
        /// read, however fast the session runs. At least
        /// [`crate::limits::MIN_KEEP_UP_RATE`]; needs `behind`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        rate: Option<u64>,
    },
    /// The session's datagrams counted per lane and time bucket, from the session's
    /// start (the server counts every one, whatever any viewer was sent). Success:
    /// `aggregates`, to this viewer alone.
    Aggregate {
        /// The first instant, ns since the session began.
        from_ns: u64,
        /// The last instant (exclusive), ns; more than `from_ns`.
        to_ns: u64,
        /// How many buckets to split it into (1 to 4,096); the server may answer with
        /// fewer, wider ones when it keeps the time that coarsely.
        buckets: u32,
    },
    /// The events the session's log still holds whose time is in a range, with the
    /// `fate`s of the datagrams sent in it. Success: `window`, to this viewer alone.
    Window {
        /// The first instant, ns since the session began.
        from_ns: u64,
        /// The last instant (inclusive), ns.
        to_ns: u64,
        /// The most events to answer with (1 to 10,000; absent: 10,000).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        limit: Option<u32>,
    },
    /// Run a recording again: its UDP and Unix sockets bound afresh (the OS picks the
    /// ports), its links made again with the same settings and seeds, and the datagrams
    /// its sockets sent sent again with its timing (`speed` times faster; absent: 1),
    /// into a new recording. Success: `recording_started`, then the new sockets and
    /// links, then the datagrams.
    RunAgain {
        /// The recording's id in the store.
        recording: i64,
        /// How much faster than the original timing (0.01 to 100).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        speed: Option<f64>,
    },
}

/// What to bind: the `bind` command's fields.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct BindSpec {
    /// Which kind of socket.
    pub proto: Proto,
    /// `"host:port"`, `"[v6]:port"`; port 0 lets the OS pick a free port.
    pub addr: String,
    /// Allow sending to broadcast addresses (SO_BROADCAST); the server's policy must
    /// allow the address too (`--allow-net`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub broadcast: bool,
    /// Allow sending to multicast groups; the server's policy must allow the group
    /// too (`--allow-net`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub multicast: bool,
    /// The receive buffer to ask the kernel for (SO_RCVBUF), bytes; absent: the
    /// server's default (4 MiB). The kernel caps it at `net.core.rmem_max` and
    /// doubles it for its own bookkeeping; `bound` reports what it granted. A small
    /// one shows what a full buffer does: the kernel drops what does not fit
    /// (`kernel_drops`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recv_buffer_bytes: Option<u64>,
    /// How many bytes each receive reads (1 to 65,536), as the `bufsize` of
    /// `recvfrom(bufsize)`: a longer datagram is cut to it and the rest is gone
    /// (MSG_TRUNC); its `in` event says how long it was (`truncated_from`). Absent:
    /// every datagram is read whole.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recv_size: Option<u32>,
    /// TCP: listen for connections (bind + listen); each accepted one is a socket of
    /// its own (`accepted`). Without it, the socket is bound to `connect` from.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub listen: bool,
    /// TCP: send each write at once (TCP_NODELAY), instead of letting Nagle's
    /// algorithm hold small writes back while data is unacknowledged.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub nodelay: bool,
    /// SO_REUSEADDR: other sockets may bind the same address and port, as the
    /// receivers of one multicast group do (each that joined gets every datagram).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub reuse_addr: bool,
    /// UDP: how many routers a multicast datagram may cross (IP_MULTICAST_TTL, IPv6:
    /// IPV6_MULTICAST_HOPS), 0 to 255; absent: the OS's 1 (this network only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub multicast_ttl: Option<u32>,
    /// UDP: whether this machine's own members of a group get the multicast datagrams
    /// this socket sends (IP_MULTICAST_LOOP); absent: the OS's yes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub multicast_loop: Option<bool>,
}

impl Default for BindSpec {
    /// A UDP socket on IPv4 loopback, any free port, no options.
    fn default() -> Self {
        BindSpec {
            proto: Proto::Udp,
            addr: "127.0.0.1:0".into(),
            broadcast: false,
            multicast: false,
            recv_buffer_bytes: None,
            recv_size: None,
            listen: false,
            nodelay: false,
            reuse_addr: false,
            multicast_ttl: None,
            multicast_loop: None,
        }
    }
}

/// A command with the client's optional `req` number, echoed on every reply or error it
/// causes.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct Request {
    /// Any integer the client picks.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub req: Option<i64>,
    /// What to do.
    #[serde(flatten)]
    pub command: Command,
}

impl Request {
    /// A request without a `req` number.
    pub fn new(command: Command) -> Self {
        Request { req: None, command }
    }

    /// A request that carries `req`.
    pub fn with_req(req: i64, command: Command) -> Self {
        Request {
            req: Some(req),
            command,
        }
    }

    /// The request's JSON text, as a client sends it.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("a request always serializes")
    }
}

/// A text frame that is not a valid command.
#[derive(thiserror::Error, Debug, Clone, PartialEq, Eq)]
#[error("{message}")]
pub struct DecodeError {
    /// The frame's `req`, when it could be read, so the error can be matched to it.
    pub req: Option<i64>,
    /// What is wrong, in plain words.
    pub message: String,
}

/// Decodes one text frame into a request. The `req` is read first, so even a malformed
/// command's error can carry it.
pub fn decode_request(text: &str) -> Result<Request, DecodeError> {
    let value: serde_json::Value = serde_json::from_str(text).map_err(|e| DecodeError {
        req: None,
        message: format!("the message is not valid JSON: {e}"),
    })?;
    let Some(object) = value.as_object() else {
        return Err(DecodeError {
            req: None,
            message: "a command must be a JSON object with a \"type\" field".into(),
        });
    };
    let req = match object.get("req") {
        None | Some(serde_json::Value::Null) => None,
        Some(v) => Some(v.as_i64().ok_or_else(|| DecodeError {
            req: None,
            message: format!("\"req\" must be an integer, not {v}"),
        })?),
    };
    if !object.contains_key("type") {
        return Err(DecodeError {
            req,
            message: "a command must have a \"type\" field, such as bind, close or send".into(),
        });
    }
    let command = Command::deserialize(&value).map_err(|e| DecodeError {
        req,
        message: format!("bad command: {e}"),
    })?;
    Ok(Request { req, command })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bind() -> Command {
        Command::Bind(BindSpec::default())
    }

    /// The wire form of every command. A change here is a change of the contract.
    #[test]
    fn wire_form_snapshots() {
        let cases = [
            (
                Request::with_req(1, bind()),
                r#"{"req":1,"type":"bind","proto":"udp","addr":"127.0.0.1:0"}"#,
            ),
            (
                Request::new(Command::Close {
                    socket: SocketId::new("s1"),
                }),
                r#"{"type":"close","socket":"s1"}"#,
            ),
            (
                Request::with_req(
                    3,
                    Command::Send {
                        socket: SocketId::new("s1"),
                        to: Some("127.0.0.1:40001".into()),
                        payload: Payload::Text("hello".into()),
                    },
                ),
                r#"{"req":3,"type":"send","socket":"s1","to":"127.0.0.1:40001","payload":{"text":"hello"}}"#,
            ),
            (
                Request::new(Command::Send {
                    socket: SocketId::new("s2"),
                    to: Some("[::1]:9".into()),
                    payload: Payload::Hex("dead".into()),
                }),
                r#"{"type":"send","socket":"s2","to":"[::1]:9","payload":{"hex":"dead"}}"#,
            ),
            (
                Request::new(Command::Send {
                    socket: SocketId::new("s2"),
                    to: Some("[::1]:9".into()),
                    payload: Payload::Base64("aGk=".into()),
                }),
                r#"{"type":"send","socket":"s2","to":"[::1]:9","payload":{"base64":"aGk="}}"#,
            ),
            (
                Request::with_req(
                    5,
                    Command::Connect {
                        socket: SocketId::new("s1"),
                        to: "127.0.0.1:9".into(),
                    },
                ),
                r#"{"req":5,"type":"connect","socket":"s1","to":"127.0.0.1:9"}"#,
            ),
            (
                Request::new(Command::Bind(BindSpec {
                    proto: Proto::Tcp,
                    listen: true,
                    nodelay: true,
                    ..BindSpec::default()
                })),
                r#"{"type":"bind","proto":"tcp","addr":"127.0.0.1:0","listen":true,"nodelay":true}"#,
            ),
            (
                Request::new(Command::Pause {
                    socket: SocketId::new("s2"),
                    paused: true,
                }),
                r#"{"type":"pause","socket":"s2","paused":true}"#,
            ),
            (
                Request::new(Command::Join {
                    socket: SocketId::new("s1"),
                    group: "239.1.2.3".into(),
                    interface: Some("127.0.0.1".into()),
                }),
                r#"{"type":"join","socket":"s1","group":"239.1.2.3","interface":"127.0.0.1"}"#,
            ),
            (
                Request::new(Command::Shutdown {
                    socket: SocketId::new("s3.1"),
                    how: ShutdownHow::Write,
                }),
                r#"{"type":"shutdown","socket":"s3.1","how":"write"}"#,
            ),
            (
                Request::new(Command::Send {
                    socket: SocketId::new("s1"),
                    to: None,
                    payload: Payload::Text("hi".into()),
                }),
                r#"{"type":"send","socket":"s1","payload":{"text":"hi"}}"#,
            ),
            (
                Request::with_req(
                    4,
                    Command::LinkCreate {
                        listen: "127.0.0.1:0".into(),
                        target: "127.0.0.1:5000".into(),
                        settings: LinkSettings::default(),
                    },
                ),
                r#"{"req":4,"type":"link_create","listen":"127.0.0.1:0","target":"127.0.0.1:5000","settings":{"c2t":{"loss":{"model":"none"},"delay_ms":0.0,"jitter_ms":0.0,"jitter_dist":"uniform","jitter_may_reorder":false,"reorder_pct":0.0,"reorder_gap":1,"reorder_timeout_ms":200.0,"duplicate_pct":0.0,"corrupt_pct":0.0,"rate_bps":0,"queue_packets":1000,"queue_bytes":0,"mtu":0,"mtu_action":"drop"},"t2c":{"loss":{"model":"none"},"delay_ms":0.0,"jitter_ms":0.0,"jitter_dist":"uniform","jitter_may_reorder":false,"reorder_pct":0.0,"reorder_gap":1,"reorder_timeout_ms":200.0,"duplicate_pct":0.0,"corrupt_pct":0.0,"rate_bps":0,"queue_packets":1000,"queue_bytes":0,"mtu":0,"mtu_action":"drop"},"seed":0}}"#,
            ),
            (
                Request::new(Command::LinkDelete {
                    link: LinkId::new("l1"),
                }),
                r#"{"type":"link_delete","link":"l1"}"#,
            ),
            (
                Request::with_req(
                    5,
                    Command::Generate(GeneratorSpec {
                        socket: SocketId::new("s1"),
                        to: "127.0.0.1:9".into(),
                        amount: crate::flow::Amount::Count(100),
                        pace: crate::flow::GeneratorPace::Rate(1000.0),
                        payload: crate::flow::GeneratorPayload::Size(64),
                        sequence: true,
                    }),
                ),
                r#"{"req":5,"type":"generate","socket":"s1","to":"127.0.0.1:9","amount":{"count":100},"rate":1000.0,"size":64,"sequence":true}"#,
            ),
            (
                Request::new(Command::SetLossTimeout { ms: 500 }),
                r#"{"type":"set_loss_timeout","ms":500}"#,
            ),
            (
                Request::new(Command::SetMatchField {
                    field: Some(crate::flow::MatchField { offset: 2, len: 4 }),
                }),
                r#"{"type":"set_match_field","field":{"offset":2,"len":4}}"#,
            ),
            (
                Request::new(Command::SetMatchField { field: None }),
                r#"{"type":"set_match_field"}"#,
            ),
            (
                Request::new(Command::RecordStart {
                    name: Some("run 1".into()),
                }),
                r#"{"type":"record_start","name":"run 1"}"#,
            ),
            (
                Request::new(Command::RecordStart { name: None }),
                r#"{"type":"record_start"}"#,
            ),
            (
                Request::new(Command::RecordStop),
                r#"{"type":"record_stop"}"#,
            ),
            (
                Request::new(Command::RunAgain {
                    recording: 7,
                    speed: Some(10.0),
                }),
                r#"{"type":"run_again","recording":7,"speed":10.0}"#,
            ),
            (
                Request::new(Command::Bind(BindSpec {
                    proto: Proto::Unix,
                    addr: "unix:@echo".into(),
                    ..BindSpec::default()
                })),
                r#"{"type":"bind","proto":"unix","addr":"unix:@echo"}"#,
            ),
        ];
        for (request, json) in cases {
            assert_eq!(request.to_json(), json);
            assert_eq!(decode_request(json), Ok(request), "{json}");
        }
    }

    /// The wire keeps its either/or fields; the type says which one was meant.
    #[test]
    fn a_generators_pace_and_payload_are_one_of_two_on_the_wire() {
        use crate::flow::{GeneratorPace, GeneratorPayload};
        let generate = |json: &str| match decode_request(json).unwrap().command {
            Command::Generate(spec) => (spec.pace, spec.payload),
            other => panic!("{other:?}"),
        };
        let base = r#"{"type":"generate","socket":"s1","to":"127.0.0.1:9","amount":{"count":1}"#;
        let cases = [
            (
                r#","rate":50}"#,
                (GeneratorPace::Rate(50.0), GeneratorPayload::Size(64)),
            ),
            // Clients that wrote both sent "rate":0 beside the interval, which sets it.
            (
                r#","rate":0,"interval_ms":20,"size":100}"#,
                (GeneratorPace::IntervalMs(20.0), GeneratorPayload::Size(100)),
            ),
            (
                r#","interval_ms":20,"size":100,"pattern":{"text":"hi"}}"#,
                (
                    GeneratorPace::IntervalMs(20.0),
                    GeneratorPayload::Pattern(crate::Payload::Text("hi".into())),
                ),
            ),
            // No pace at all is a rate of 0, which the server refuses by name.
            ("}", (GeneratorPace::Rate(0.0), GeneratorPayload::Size(64))),
        ];
        for (rest, expected) in cases {
            let json = format!("{base}{rest}");
            assert_eq!(generate(&json), expected, "{json}");
        }
        let spec = crate::flow::GeneratorSpec {
            socket: SocketId::new("s1"),
            to: "127.0.0.1:9".into(),
            amount: crate::flow::Amount::Count(1),
            pace: GeneratorPace::IntervalMs(20.0),
            payload: GeneratorPayload::Pattern(crate::Payload::Text("hi".into())),
            sequence: false,
        };
        assert_eq!(
            Request::new(Command::Generate(spec)).to_json(),
            format!(r#"{base},"interval_ms":20.0,"pattern":{{"text":"hi"}},"sequence":false}}"#),
            "only the field that was meant is written"
        );
    }

    #[test]
    fn link_settings_may_be_left_out_or_partial() {
        let json = r#"{"type":"link_create","listen":"127.0.0.1:0","target":"127.0.0.1:9"}"#;
        let Command::LinkCreate { settings, .. } = decode_request(json).unwrap().command else {
            panic!("a link_create");
        };
        assert_eq!(settings, LinkSettings::default());
        let json = r#"{"type":"link_update","link":"l1","settings":{"c2t":{"loss":{"model":"random","pct":50}}}}"#;
        let Command::LinkUpdate { settings, .. } = decode_request(json).unwrap().command else {
            panic!("a link_update");
        };
        assert_eq!(settings.c2t.loss, crate::link::Loss::Random { pct: 50.0 });
    }

    #[test]
    fn refuses_malformed_commands_keeping_req() {
        let cases: &[(&str, Option<i64>, &str)] = &[
            ("not json", None, "the message is not valid JSON"),
            ("[1,2]", None, "a command must be a JSON object"),
            (
                r#"{"req":"x","type":"bind"}"#,
                None,
                "\"req\" must be an integer",
            ),
            (
                r#"{"req":4}"#,
                Some(4),
                "a command must have a \"type\" field",
            ),
            (
                r#"{"req":5,"type":"dance"}"#,
                Some(5),
                "bad command: unknown variant `dance`, expected one of `bind`, `close`, `connect`, `send`, `pause`, `join`, `leave`, `shutdown`, `link_create`, `tcp_link_create`, `link_update`, `link_delete`, `generate`, `generate_stop`, `set_loss_timeout`, `set_match_field`",
            ),
            (
                r#"{"req":6,"type":"bind","proto":"udp"}"#,
                Some(6),
                "bad command: missing field `addr`",
            ),
            (
                r#"{"req":7,"type":"bind","proto":"sctp","addr":"127.0.0.1:0"}"#,
                Some(7),
                "bad command: unknown variant `sctp`, expected one of `udp`, `tcp`, `unix`",
            ),
            (
                r#"{"req":8,"type":"close","socket":12}"#,
                Some(8),
                "bad command: invalid type: integer `12`, expected a string",
            ),
            (
                r#"{"req":9,"type":"send","socket":"s1","to":"127.0.0.1:9","payload":{"text":"a","hex":"00"}}"#,
                Some(9),
                "bad command",
            ),
            (
                r#"{"req":10,"type":"send","socket":"s1","to":"127.0.0.1:9","payload":{"utf16":"a"}}"#,
                Some(10),
                "bad command: unknown variant `utf16`, expected one of `text`, `hex`, `base64`",
            ),
        ];
        for (text, req, message) in cases {
            let err = decode_request(text).expect_err(text);
            assert_eq!(err.req, *req, "{text}");
            assert!(
                err.message.starts_with(message),
                "{text}: {:?} should start with {message:?}",
                err.message
            );
        }
    }
}
