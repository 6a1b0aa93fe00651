//! Unit tests of the parent module.

use super::*;

#[test]
fn buffer_sizes_read_as_a_person_writes_them() {
    for (text, want) in [
        ("", Ok(None)),
        ("  ", Ok(None)),
        ("4096", Ok(Some(4096))),
        ("64k", Ok(Some(65_536))),
        ("64 KiB", Ok(Some(65_536))),
        ("4M", Ok(Some(4 << 20))),
    ] {
        assert_eq!(parse_bytes(text), want, "{text:?}");
    }
    for bad in ["0", "-1", "lots", "4g", "99999999999999999999m"] {
        assert!(parse_bytes(bad).is_err(), "{bad:?}");
    }
}

#[test]
fn the_bind_form_brackets_ipv6_and_refuses_a_bad_port() {
    let bind = |address: &str, port: &str| {
        BindForm {
            address: address.into(),
            port: port.into(),
            ..BindForm::default()
        }
        .command()
    };
    let addr = |c: Result<Command, String>| match c {
        Ok(Command::Bind(BindSpec { addr, .. })) => Ok(addr),
        Ok(other) => panic!("{other:?}"),
        Err(e) => Err(e),
    };
    assert_eq!(addr(bind("127.0.0.1", "0")), Ok("127.0.0.1:0".into()));
    assert_eq!(addr(bind("::1", " 5000 ")), Ok("[::1]:5000".into()));
    assert_eq!(addr(bind("[::1]", "5000")), Ok("[::1]:5000".into()));
    assert!(
        addr(bind("127.0.0.1", "70000"))
            .unwrap_err()
            .contains("not a port")
    );
    let buffer = BindForm {
        recv_buffer: "lots".into(),
        ..BindForm::default()
    };
    assert!(buffer.command().unwrap_err().contains("buffer size"));
}

#[test]
fn the_read_size_is_whole_datagrams_or_a_number_of_bytes() {
    let read = |text: &str| match (BindForm {
        read_size: text.into(),
        ..BindForm::default()
    })
    .command()
    {
        Ok(Command::Bind(BindSpec { recv_size, .. })) => Ok(recv_size),
        Ok(other) => panic!("{other:?}"),
        Err(e) => Err(e),
    };
    assert_eq!(read(""), Ok(None));
    assert_eq!(read(" 16 "), Ok(Some(16)));
    assert_eq!(read("65536"), Ok(Some(65_536)));
    for bad in ["0", "65537", "16k", "-1"] {
        let e = read(bad).unwrap_err();
        assert!(e.contains("read size"), "{bad}: {e}");
    }
}

#[test]
fn the_bind_form_opens_each_kind_of_socket() {
    let spec = |kind, nodelay| match (BindForm {
        kind,
        nodelay,
        broadcast: true,
        ..BindForm::default()
    })
    .command()
    {
        Ok(Command::Bind(spec)) => spec,
        other => panic!("{other:?}"),
    };
    let udp = spec(SocketKind::Udp, true);
    assert_eq!(
        (udp.proto, udp.listen, udp.nodelay, udp.broadcast),
        (Proto::Udp, false, false, true)
    );
    let listen = spec(SocketKind::TcpListen, false);
    assert_eq!(
        (listen.proto, listen.listen, listen.broadcast),
        (Proto::Tcp, true, false),
        "broadcast is not a TCP option"
    );
    let connect = spec(SocketKind::TcpConnect, true);
    assert_eq!(
        (connect.proto, connect.listen, connect.nodelay),
        (Proto::Tcp, false, true)
    );
    let unix = spec(SocketKind::Unix, true);
    assert_eq!(
        (unix.proto, unix.addr.as_str(), unix.broadcast, unix.nodelay),
        (Proto::Unix, "unix:", false, false),
        "empty: a name the kernel picks; no IP or TCP options"
    );
    for kind in SocketKind::ALL {
        assert_eq!(SocketKind::from_value(kind.value()), kind);
    }
}

#[test]
fn the_bind_form_names_a_unix_socket_in_the_sessions_directory_or_abstractly() {
    let command = |name: &str| {
        BindForm {
            kind: SocketKind::Unix,
            unix_name: name.into(),
            read_size: "4".into(),
            ..BindForm::default()
        }
        .command()
    };
    for (name, addr) in [(" echo ", "unix:echo"), ("@echo", "unix:@echo")] {
        match command(name) {
            Ok(Command::Bind(spec)) => {
                assert_eq!((spec.addr.as_str(), spec.recv_size), (addr, Some(4)));
            }
            other => panic!("{other:?}"),
        }
    }
    let refused = command("/tmp/echo").unwrap_err();
    assert!(refused.contains("without '/'"), "{refused}");
}

#[test]
fn a_burst_numbers_its_text_datagrams() {
    let form = SendForm {
        to: " 127.0.0.1:9 ".into(),
        typed: "n={n}".into(),
        count: "3".into(),
        ..SendForm::default()
    };
    let texts: Vec<_> = form
        .commands(&SocketId::new("s1"), false, false)
        .unwrap()
        .into_iter()
        .map(|c| match c {
            Command::Send { to, payload, .. } => (to, payload),
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(
        texts,
        ["n=1", "n=2", "n=3"].map(|t| (Some("127.0.0.1:9".to_string()), Payload::Text(t.into())))
    );
    // A connected socket may leave the address out: its peer is the destination.
    let to_peer = SendForm {
        to: " ".into(),
        ..form.clone()
    };
    assert!(
        to_peer
            .commands(&SocketId::new("s1"), false, false)
            .is_err()
    );
    assert!(matches!(
        to_peer.commands(&SocketId::new("s1"), true, false).unwrap()[0],
        Command::Send { to: None, .. }
    ));
    assert!(
        to_peer.connect(&SocketId::new("s1")).is_err(),
        "connect needs an address"
    );
    assert_eq!(
        form.connect(&SocketId::new("s1")),
        Ok(Command::Connect {
            socket: SocketId::new("s1"),
            to: "127.0.0.1:9".into()
        })
    );
    let hex = SendForm {
        notation: Notation::Hex,
        typed: "{n}".into(),
        ..form.clone()
    };
    assert!(
        hex.commands(&SocketId::new("s1"), false, false).is_err(),
        "{{n}} is not hex"
    );
}

#[test]
fn the_send_form_says_what_is_wrong() {
    let s1 = SocketId::new("s1");
    let cases = [
        (
            SendForm {
                to: String::new(),
                ..SendForm::default()
            },
            "give an address",
        ),
        (
            SendForm {
                to: "127.0.0.1:9".into(),
                count: "0".into(),
                ..SendForm::default()
            },
            "count must be",
        ),
        (
            SendForm {
                to: "127.0.0.1:9".into(),
                typed: "x".repeat(65_508),
                ..SendForm::default()
            },
            "at most 65507",
        ),
        (
            SendForm {
                to: "127.0.0.1:9".into(),
                notation: Notation::Base64,
                typed: "@@".into(),
                ..SendForm::default()
            },
            "base64",
        ),
    ];
    for (form, problem) in cases {
        let error = form.commands(&s1, false, false).unwrap_err();
        assert!(error.contains(problem), "{form:?}: {error}");
    }
    let v6 = SendForm {
        to: "[::1]:9".into(),
        typed: "x".repeat(65_527),
        ..SendForm::default()
    };
    assert_eq!(v6.payload_len(), Ok(65_527), "IPv6 carries 20 bytes more");
}

#[test]
fn the_generator_form_becomes_a_generate_command() {
    let s1 = SocketId::new("s1");
    let form = GeneratorForm {
        to: "127.0.0.1:9".into(),
        ..GeneratorForm::default()
    };
    let spec = |c: Command| match c {
        Command::Generate(spec) => spec,
        other => panic!("{other:?}"),
    };
    let plain = spec(form.command(Some(&s1)).unwrap());
    assert_eq!(
        (plain.amount, plain.pace, plain.payload, plain.sequence),
        (
            Amount::Count(200),
            GeneratorPace::Rate(1000.0),
            GeneratorPayload::Size(64),
            true
        )
    );
    let by_time = spec(
        GeneratorForm {
            amount_kind: AmountKind::Duration,
            amount: "5000".into(),
            pace_kind: PaceKind::Interval,
            pace: "16.7".into(),
            pattern: "tick".into(),
            size: "not read".into(),
            ..form.clone()
        }
        .command(Some(&s1))
        .unwrap(),
    );
    assert_eq!(
        (by_time.amount, by_time.pace, by_time.payload),
        (
            Amount::DurationMs(5000),
            GeneratorPace::IntervalMs(16.7),
            GeneratorPayload::Pattern(Payload::Text("tick".into()))
        )
    );
    assert!(form.command(None).unwrap_err().contains("bind a socket"));
    for (bad, problem) in [
        (
            GeneratorForm {
                amount: "many".into(),
                ..form.clone()
            },
            "count",
        ),
        (
            GeneratorForm {
                pace: "fast".into(),
                ..form.clone()
            },
            "rate",
        ),
        (
            GeneratorForm {
                size: "big".into(),
                ..form.clone()
            },
            "size",
        ),
    ] {
        assert!(bad.command(Some(&s1)).unwrap_err().contains(problem));
    }
    assert_eq!(
        loss_timeout_command(" 500 "),
        Ok(Command::SetLossTimeout { ms: 500 })
    );
    assert!(loss_timeout_command("soon").is_err());
}

#[test]
fn the_link_form_takes_a_preset_and_a_seed() {
    let form = LinkForm {
        host: "::1".into(),
        port: "7000".into(),
        target: "[::1]:9".into(),
        preset: "wifi".into(),
        seed: "42".into(),
    };
    let Ok(Command::LinkCreate {
        listen,
        target,
        settings,
    }) = form.command()
    else {
        panic!("a link_create")
    };
    assert_eq!(
        (listen.as_str(), target.as_str()),
        ("[::1]:7000", "[::1]:9")
    );
    assert_eq!(settings.seed, 42);
    let wifi = presets().into_iter().find(|p| p.name == "wifi").unwrap();
    assert_eq!(
        (settings.c2t, settings.t2c),
        (wifi.impairments, wifi.impairments)
    );
    let bad_seed = LinkForm {
        seed: "-1".into(),
        ..form
    };
    assert!(bad_seed.command().unwrap_err().contains("seed"));
}

#[test]
fn switching_notation_converts_what_was_typed() {
    let text = SendForm {
        typed: "hello".into(),
        ..SendForm::default()
    };
    let hex = text.with_notation(Notation::Hex).unwrap();
    assert_eq!(hex.typed, "68 65 6c 6c 6f");
    let b64 = hex.with_notation(Notation::Base64).unwrap();
    assert_eq!(b64.typed, "aGVsbG8=");
    assert_eq!(b64.with_notation(Notation::Text).unwrap(), text);
    // Bytes that are not text stay where they are, and say why.
    let binary = SendForm {
        notation: Notation::Hex,
        typed: "ff 00".into(),
        ..SendForm::default()
    };
    let error = binary.with_notation(Notation::Text).unwrap_err();
    assert!(
        error.contains("not UTF-8") && error.ends_with("hex"),
        "{error}"
    );
    // What does not decode is kept as typed.
    let broken = SendForm {
        notation: Notation::Hex,
        typed: "zz".into(),
        ..SendForm::default()
    };
    assert_eq!(broken.with_notation(Notation::Text).unwrap().typed, "zz");
}

#[test]
fn the_match_field_is_two_numbers_or_nothing() {
    use socklab_protocol::flow::MatchField;
    assert_eq!(
        match_field_command(" 4", "2 "),
        Ok(Command::SetMatchField {
            field: Some(MatchField { offset: 4, len: 2 })
        })
    );
    assert_eq!(
        match_field_command("", ""),
        Ok(Command::SetMatchField { field: None })
    );
    assert_eq!(
        match_field_command("4", ""),
        Err("the match field's length must be a number of bytes, not \"\"".into())
    );
    assert_eq!(
        match_field_command("0", "0"),
        Err("the match field's length must be from 1 to 64 bytes, not 0".into())
    );
    assert!(match_field_command("-1", "2").is_err());
}

#[test]
fn the_tcp_link_form_reads_its_fields_and_says_what_is_wrong() {
    let form = TcpLinkForm {
        target: " 127.0.0.1:9000 ".into(),
        latency_ms: "50".into(),
        rate_kbps: "64".into(),
        slice_bytes: "3".into(),
        slice_delay_ms: "20".into(),
        reset_after: "".into(),
        ..TcpLinkForm::default()
    };
    match form.command() {
        Ok(Command::TcpLinkCreate {
            listen,
            target,
            settings,
        }) => {
            assert_eq!(
                (listen.as_str(), target.as_str()),
                ("127.0.0.1:0", "127.0.0.1:9000")
            );
            assert_eq!(
                (
                    settings.c2t.latency_ms,
                    settings.t2c.latency_ms,
                    settings.c2t.rate_bps
                ),
                (50.0, 50.0, 64_000)
            );
            assert_eq!((settings.c2t.slice_bytes, settings.t2c.slice_bytes), (3, 0));
            assert_eq!(settings.reset_after_bytes, 0);
        }
        other => panic!("{other:?}"),
    }
    let bad = TcpLinkForm {
        latency_ms: "slow".into(),
        ..form.clone()
    };
    assert!(bad.command().unwrap_err().contains("latency"));
    let too_long = TcpLinkForm {
        latency_ms: "70000".into(),
        ..form.clone()
    };
    assert!(too_long.command().unwrap_err().contains("latency_ms"));
    let nowhere = TcpLinkForm {
        target: " ".into(),
        ..form
    };
    assert!(nowhere.command().is_err());
}
