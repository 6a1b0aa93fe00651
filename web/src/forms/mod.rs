//! The forms' state, without the page: what a person typed, as text, and the one
//! function per form that turns it into the command to send, or into a problem in
//! plain words shown under the form. Components only keep a form's struct and render
//! it; these tests check every field's reading without a browser.

pub mod impairments;

use socklab_protocol::flow::{Amount, GeneratorPace, GeneratorPayload, GeneratorSpec};
use socklab_protocol::limits::{self, max_udp_payload};
use socklab_protocol::link::{LinkSettings, presets};
use socklab_protocol::{BindSpec, Command, Payload, Proto, SocketId};

/// The most datagrams one click of "send" sends.
pub const MAX_BURST: u32 = 1000;

/// `host:port`, with brackets around an IPv6 host.
fn join_host_port(host: &str, port: &str) -> String {
    let (host, port) = (host.trim(), port.trim());
    if host.contains(':') && !host.starts_with('[') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

/// What kind of socket the bind form opens.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SocketKind {
    /// A UDP socket.
    Udp,
    /// A TCP socket that listens for connections.
    TcpListen,
    /// A TCP socket to connect from.
    TcpConnect,
    /// A Unix domain datagram socket.
    Unix,
}

impl SocketKind {
    /// Every kind, in the order the form offers them.
    pub const ALL: [SocketKind; 4] = [
        SocketKind::Udp,
        SocketKind::TcpListen,
        SocketKind::TcpConnect,
        SocketKind::Unix,
    ];

    /// Its value in the form's select.
    pub fn value(self) -> &'static str {
        match self {
            SocketKind::Udp => "udp",
            SocketKind::TcpListen => "tcp-listen",
            SocketKind::TcpConnect => "tcp-connect",
            SocketKind::Unix => "unix",
        }
    }

    /// Its name in the form.
    pub fn label(self) -> &'static str {
        match self {
            SocketKind::Udp => "UDP (datagrams)",
            SocketKind::TcpListen => "TCP, listening",
            SocketKind::TcpConnect => "TCP, to connect from",
            SocketKind::Unix => "Unix datagram (AF_UNIX)",
        }
    }

    /// The kind a select's value names (UDP for anything else).
    pub fn from_value(value: &str) -> SocketKind {
        SocketKind::ALL
            .into_iter()
            .find(|k| k.value() == value)
            .unwrap_or(SocketKind::Udp)
    }

    /// What the bind button says.
    pub fn button(self) -> &'static str {
        match self {
            SocketKind::Udp => "bind UDP",
            SocketKind::TcpListen => "listen TCP",
            SocketKind::TcpConnect => "bind TCP",
            SocketKind::Unix => "bind Unix",
        }
    }
}

/// The bind form.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BindForm {
    /// What kind of socket.
    pub kind: SocketKind,
    /// TCP_NODELAY (TCP only).
    pub nodelay: bool,
    /// The address to bind to (`127.0.0.1`, `::1`, or one typed).
    pub address: String,
    /// The port (0: any free port).
    pub port: String,
    /// The receive buffer to ask for (empty: the server's default).
    pub recv_buffer: String,
    /// How many bytes each receive reads (empty: whole datagrams).
    pub read_size: String,
    /// SO_BROADCAST.
    pub broadcast: bool,
    /// May join multicast groups.
    pub multicast: bool,
    /// SO_REUSEADDR.
    pub reuse_addr: bool,
    /// A Unix socket's name: a file name in the session's directory, `@` and an
    /// abstract name, or empty for one the kernel picks.
    pub unix_name: String,
}

impl Default for BindForm {
    fn default() -> Self {
        BindForm {
            kind: SocketKind::Udp,
            nodelay: false,
            address: "127.0.0.1".into(),
            port: "0".into(),
            recv_buffer: String::new(),
            read_size: String::new(),
            broadcast: false,
            multicast: false,
            reuse_addr: false,
            unix_name: String::new(),
        }
    }
}

impl BindForm {
    /// The `bind` command, or what is wrong with the form.
    pub fn command(&self) -> Result<Command, String> {
        if self.kind == SocketKind::Unix {
            let name = self.unix_name.trim();
            if name.contains('/') {
                return Err(format!(
                    "{name:?}: give a name without '/' (the socket is made in this session's own directory), or @name for an abstract one"
                ));
            }
            return Ok(Command::Bind(BindSpec {
                proto: Proto::Unix,
                addr: format!("{}{name}", socklab_protocol::endpoint::UNIX_PREFIX),
                recv_size: parse_read_size(&self.read_size)?,
                ..BindSpec::default()
            }));
        }
        let port = self.port.trim().parse::<u16>().map_err(|_| {
            format!(
                "{:?} is not a port: use a number from 0 to 65535 (0 = any free port)",
                self.port.trim()
            )
        })?;
        let udp = self.kind == SocketKind::Udp;
        Ok(Command::Bind(BindSpec {
            proto: if udp { Proto::Udp } else { Proto::Tcp },
            addr: join_host_port(&self.address, &port.to_string()),
            broadcast: udp && self.broadcast,
            multicast: udp && self.multicast,
            recv_buffer_bytes: parse_bytes(&self.recv_buffer)?,
            recv_size: parse_read_size(&self.read_size)?,
            listen: self.kind == SocketKind::TcpListen,
            nodelay: !udp && self.nodelay,
            reuse_addr: self.reuse_addr,
            multicast_ttl: None,
            multicast_loop: None,
        }))
    }
}

/// A read size as typed: empty for whole datagrams, else 1 to 65,536 bytes.
fn parse_read_size(text: &str) -> Result<Option<u32>, String> {
    let t = text.trim();
    if t.is_empty() {
        return Ok(None);
    }
    t.parse::<u32>()
        .ok()
        .filter(|n| (1..=limits::MAX_RECV_SIZE).contains(n))
        .map(Some)
        .ok_or_else(|| {
            format!(
                "{t:?} is not a read size: give 1 to {} bytes, or leave it empty to read every datagram whole",
                limits::MAX_RECV_SIZE
            )
        })
}

/// A buffer size as a person writes it: bytes, or a number with k or m; empty: none.
pub fn parse_bytes(text: &str) -> Result<Option<u64>, String> {
    let t = text.trim().to_ascii_lowercase();
    if t.is_empty() {
        return Ok(None);
    }
    let (digits, unit) = match t.strip_suffix('k').or_else(|| t.strip_suffix("kib")) {
        Some(d) => (d, 1024),
        None => match t.strip_suffix('m').or_else(|| t.strip_suffix("mib")) {
            Some(d) => (d, 1024 * 1024),
            None => (t.as_str(), 1),
        },
    };
    digits
        .trim()
        .parse::<u64>()
        .ok()
        .and_then(|n| n.checked_mul(unit))
        .filter(|&n| n > 0)
        .map(Some)
        .ok_or_else(|| {
            format!(
                "{:?} is not a buffer size: give bytes, or a number with k or m (for example 64k)",
                text.trim()
            )
        })
}

/// How a payload is typed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Notation {
    /// UTF-8 text.
    Text,
    /// Hex digits (spaces allowed).
    Hex,
    /// Standard base64.
    Base64,
}

impl Notation {
    /// Every notation, in the order the form offers them.
    pub const ALL: [Notation; 3] = [Notation::Text, Notation::Hex, Notation::Base64];

    /// Its name in the form.
    pub fn label(self) -> &'static str {
        match self {
            Notation::Text => "text",
            Notation::Hex => "hex",
            Notation::Base64 => "base64",
        }
    }

    /// What was typed, as a payload in this notation.
    pub fn wrap(self, typed: String) -> Payload {
        match self {
            Notation::Text => Payload::Text(typed),
            Notation::Hex => Payload::Hex(typed),
            Notation::Base64 => Payload::Base64(typed),
        }
    }

    /// An example of "hello" in this notation.
    pub fn placeholder(self) -> &'static str {
        match self {
            Notation::Text => "hello",
            Notation::Hex => "68 65 6c 6c 6f",
            Notation::Base64 => "aGVsbG8=",
        }
    }
}

/// The send form (the socket it sends from is chosen beside it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SendForm {
    /// The destination, `host:port`.
    pub to: String,
    /// How the payload is typed.
    pub notation: Notation,
    /// The payload as typed.
    pub typed: String,
    /// How many datagrams one click sends.
    pub count: String,
}

impl Default for SendForm {
    fn default() -> Self {
        SendForm {
            to: String::new(),
            notation: Notation::Text,
            typed: "hello".into(),
            count: "1".into(),
        }
    }
}

impl SendForm {
    /// The payload's size in bytes, if it decodes and fits in one datagram to `to`.
    pub fn payload_len(&self) -> Result<usize, String> {
        let bytes = self
            .notation
            .wrap(self.typed.clone())
            .decode()
            .map_err(|e| e.to_string())?;
        let ipv6 = self.to.trim_start().starts_with('[');
        let max = max_udp_payload(ipv6);
        if bytes.len() > max {
            return Err(format!(
                "payload is {} bytes; one UDP datagram to an {} address carries at most {max}",
                bytes.len(),
                if ipv6 { "IPv6" } else { "IPv4" }
            ));
        }
        Ok(bytes.len())
    }

    /// The form in notation `to`, with what was typed converted: "hello" becomes
    /// "68 65 6c 6c 6f", not bad hex. Bytes that are not UTF-8 cannot become text;
    /// what does not decode is kept as typed (there is nothing to convert).
    pub fn with_notation(&self, to: Notation) -> Result<SendForm, String> {
        let Ok(bytes) = self.notation.wrap(self.typed.clone()).decode() else {
            return Ok(SendForm {
                notation: to,
                ..self.clone()
            });
        };
        let typed = match to {
            Notation::Text => String::from_utf8(bytes).map_err(|_| {
                format!(
                    "these bytes are not UTF-8 text, so they stay in {}",
                    self.notation.label()
                )
            })?,
            Notation::Hex => bytes
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect::<Vec<_>>()
                .join(" "),
            Notation::Base64 => socklab_protocol::payload::encode_base64(&bytes),
        };
        Ok(SendForm {
            notation: to,
            typed,
            ..self.clone()
        })
    }

    /// How many datagrams one click sends.
    pub fn repeat(&self) -> Result<u32, String> {
        match self.count.trim().parse::<u32>() {
            Ok(n) if (1..=MAX_BURST).contains(&n) => Ok(n),
            _ => Err(format!("count must be a number from 1 to {MAX_BURST}")),
        }
    }

    /// The `send` commands of one click from `socket` (`connected`: it is connected,
    /// so an empty destination means its peer; `stream`: a TCP socket, whose bytes go to
    /// its connection's peer whatever the form says): in a text payload, `{n}` numbers
    /// the datagrams of a burst 1, 2, 3…
    pub fn commands(
        &self,
        socket: &SocketId,
        connected: bool,
        stream: bool,
    ) -> Result<Vec<Command>, String> {
        self.payload_len()?;
        let repeat = self.repeat()?;
        let to = Some(self.to.trim().to_string()).filter(|t| !t.is_empty() && !stream);
        if to.is_none() && !connected && !stream {
            return Err(
                "give an address to send to, such as 127.0.0.1:9000 (or connect the socket to one)"
                    .into(),
            );
        }
        Ok((1..=repeat)
            .map(|n| {
                let typed = if self.notation == Notation::Text {
                    self.typed.replace("{n}", &n.to_string())
                } else {
                    self.typed.clone()
                };
                Command::Send {
                    socket: socket.clone(),
                    to: to.clone(),
                    payload: self.notation.wrap(typed),
                }
            })
            .collect())
    }
}

impl SendForm {
    /// The `connect` command for `socket` to the form's address.
    pub fn connect(&self, socket: &SocketId) -> Result<Command, String> {
        let to = self.to.trim();
        if to.is_empty() {
            return Err("give the address to connect to, such as 127.0.0.1:9000".into());
        }
        Ok(Command::Connect {
            socket: socket.clone(),
            to: to.to_string(),
        })
    }
}

/// What the generator's count field means.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AmountKind {
    /// A number of datagrams.
    Count,
    /// A duration, milliseconds.
    Duration,
}

/// What the generator's rate field means.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PaceKind {
    /// Datagrams per second.
    Rate,
    /// Milliseconds between datagrams.
    Interval,
}

/// The traffic generator's form (the socket it sends from is chosen beside it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GeneratorForm {
    /// The destination, `host:port`.
    pub to: String,
    /// How many datagrams, or for how many milliseconds.
    pub amount: String,
    /// What `amount` means.
    pub amount_kind: AmountKind,
    /// How fast: per second, or milliseconds between datagrams.
    pub pace: String,
    /// What `pace` means.
    pub pace_kind: PaceKind,
    /// The payload size.
    pub size: String,
    /// A fixed text instead of zero bytes (empty: none).
    pub pattern: String,
    /// Put the sequence header in front of each payload.
    pub sequence: bool,
}

impl Default for GeneratorForm {
    fn default() -> Self {
        GeneratorForm {
            to: String::new(),
            amount: "200".into(),
            amount_kind: AmountKind::Count,
            pace: "1000".into(),
            pace_kind: PaceKind::Rate,
            size: "64".into(),
            pattern: String::new(),
            sequence: true,
        }
    }
}

impl GeneratorForm {
    /// The `generate` command from `socket`, or what is wrong with the form. (The
    /// server checks the numbers' ranges and says so in its own words.)
    pub fn command(&self, socket: Option<&SocketId>) -> Result<Command, String> {
        let socket = socket.ok_or("bind a socket to send from")?;
        let amount = self
            .amount
            .trim()
            .parse::<u64>()
            .map_err(|_| format!("count {:?} is not a whole number", self.amount.trim()))?;
        let pace = self
            .pace
            .trim()
            .parse::<f64>()
            .map_err(|_| format!("rate {:?} is not a number", self.pace.trim()))?;
        // A fixed text replaces the zero bytes of `size`, which is then not read.
        let payload = if self.pattern.is_empty() {
            let size = self
                .size
                .trim()
                .parse::<usize>()
                .map_err(|_| format!("size {:?} is not a whole number", self.size.trim()))?;
            GeneratorPayload::Size(size)
        } else {
            GeneratorPayload::Pattern(Payload::Text(self.pattern.clone()))
        };
        Ok(Command::Generate(GeneratorSpec {
            socket: socket.clone(),
            to: self.to.trim().to_string(),
            amount: match self.amount_kind {
                AmountKind::Count => Amount::Count(amount),
                AmountKind::Duration => Amount::DurationMs(amount),
            },
            pace: match self.pace_kind {
                PaceKind::Rate => GeneratorPace::Rate(pace),
                PaceKind::Interval => GeneratorPace::IntervalMs(pace),
            },
            payload,
            sequence: self.sequence,
        }))
    }
}

/// The loss timeout field's `set_loss_timeout` command.
pub fn loss_timeout_command(typed: &str) -> Result<Command, String> {
    typed
        .trim()
        .parse::<u64>()
        .map(|ms| Command::SetLossTimeout { ms })
        .map_err(|_| format!("{:?} is not a number of milliseconds", typed.trim()))
}

/// The match field's `set_match_field` command: the field's offset and length as
/// typed; both empty clears it.
pub fn match_field_command(offset: &str, len: &str) -> Result<Command, String> {
    let (offset, len) = (offset.trim(), len.trim());
    if offset.is_empty() && len.is_empty() {
        return Ok(Command::SetMatchField { field: None });
    }
    let number = |what: &str, typed: &str| {
        typed.parse::<u32>().map_err(|_| {
            format!("the match field's {what} must be a number of bytes, not {typed:?}")
        })
    };
    let field = socklab_protocol::flow::MatchField {
        offset: number("offset", offset)?,
        len: number("length", len)?,
    };
    field.check()?;
    Ok(Command::SetMatchField { field: Some(field) })
}

/// The create-TCP-link form: what it does applies to both directions, except the
/// slicing, which cuts what the client sends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TcpLinkForm {
    /// Its listen port (0: any free port), on 127.0.0.1.
    pub port: String,
    /// Where it connects for each client.
    pub target: String,
    /// Latency, ms.
    pub latency_ms: String,
    /// Jitter, ms.
    pub jitter_ms: String,
    /// Bandwidth, kbit/s (empty or 0: unlimited).
    pub rate_kbps: String,
    /// Slice the client's bytes into pieces of this many bytes (empty or 0: no).
    pub slice_bytes: String,
    /// Between pieces, ms.
    pub slice_delay_ms: String,
    /// Hold the end of a stream, ms.
    pub close_delay_ms: String,
    /// Reset after this many bytes (empty or 0: never).
    pub reset_after: String,
}

impl Default for TcpLinkForm {
    fn default() -> Self {
        TcpLinkForm {
            port: "0".into(),
            target: String::new(),
            latency_ms: "0".into(),
            jitter_ms: "0".into(),
            rate_kbps: String::new(),
            slice_bytes: String::new(),
            slice_delay_ms: "0".into(),
            close_delay_ms: "0".into(),
            reset_after: String::new(),
        }
    }
}

impl TcpLinkForm {
    /// The `tcp_link_create` command, or what is wrong with the form.
    pub fn command(&self) -> Result<Command, String> {
        use socklab_protocol::link::{TcpImpairments, TcpLinkSettings};
        fn number<T: std::str::FromStr + Default>(text: &str, what: &str) -> Result<T, String> {
            let t = text.trim();
            if t.is_empty() {
                return Ok(T::default());
            }
            t.parse()
                .map_err(|_| format!("{what} {t:?} is not a number"))
        }
        if self.target.trim().is_empty() {
            return Err("give the target the link connects to, such as 127.0.0.1:9000".into());
        }
        let latency_ms: f64 = number(&self.latency_ms, "latency")?;
        let jitter_ms: f64 = number(&self.jitter_ms, "jitter")?;
        let rate_kbps: u64 = number(&self.rate_kbps, "bandwidth")?;
        let both = TcpImpairments {
            latency_ms,
            jitter_ms,
            rate_bps: rate_kbps.saturating_mul(1000),
            ..TcpImpairments::default()
        };
        let settings = TcpLinkSettings {
            c2t: TcpImpairments {
                slice_bytes: number(&self.slice_bytes, "slice size")?,
                slice_delay_ms: number(&self.slice_delay_ms, "slice delay")?,
                ..both
            },
            t2c: both,
            close_delay_ms: number(&self.close_delay_ms, "close delay")?,
            reset_after_bytes: number(&self.reset_after, "reset after")?,
            seed: 1,
        };
        if let Some(problem) = settings.problem() {
            return Err(problem);
        }
        Ok(Command::TcpLinkCreate {
            listen: format!("127.0.0.1:{}", self.port.trim()),
            target: self.target.trim().to_string(),
            settings,
        })
    }
}

/// The create-link form.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkForm {
    /// The address it listens on.
    pub host: String,
    /// Its port (0: any free port).
    pub port: String,
    /// Where it forwards to.
    pub target: String,
    /// The preset's name.
    pub preset: String,
    /// The seed of its decisions.
    pub seed: String,
}

impl Default for LinkForm {
    fn default() -> Self {
        LinkForm {
            host: "127.0.0.1".into(),
            port: "0".into(),
            target: String::new(),
            preset: "perfect".into(),
            seed: "1".into(),
        }
    }
}

impl LinkForm {
    /// The `link_create` command, or what is wrong with the form.
    pub fn command(&self) -> Result<Command, String> {
        let seed =
            self.seed.trim().parse::<u64>().map_err(|_| {
                format!("seed {:?} must be a whole number from 0", self.seed.trim())
            })?;
        let impairments = presets()
            .into_iter()
            .find(|p| p.name == self.preset)
            .map(|p| p.impairments)
            .unwrap_or_default();
        Ok(Command::LinkCreate {
            listen: join_host_port(&self.host, &self.port),
            target: self.target.trim().to_string(),
            settings: LinkSettings {
                seed,
                ..LinkSettings::symmetric(impairments)
            },
        })
    }
}

#[cfg(test)]
mod tests;
