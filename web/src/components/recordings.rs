//! The recordings kept in the server's store: a page of them at a time, newest first,
//! each with its counts, a rename, a delete, and its files (pcapng, CSV, JSON).

use serde::Deserialize;
use yew::prelude::*;

use super::use_ctx;
use crate::connection;

/// How many recordings one page of the list shows.
const PAGE: u32 = 20;

/// A recording as `GET /api/recordings` lists it.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Recording {
    id: i64,
    name: String,
    created_ms: i64,
    #[serde(default)]
    stopped_ms: Option<i64>,
    events: u64,
    datagrams: u64,
    bytes: u64,
    duration_ns: u64,
    #[serde(default)]
    note: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
struct Listing {
    total: u64,
    recordings: Vec<Recording>,
}

/// A refusal as the server's HTTP routes word it.
#[derive(Debug, Deserialize)]
struct Refusal {
    message: String,
}

/// `path` with the page's token added.
pub(crate) fn with_token(path: &str) -> String {
    let token = connection::token().unwrap_or_default();
    let sep = if path.contains('?') { '&' } else { '?' };
    format!("{path}{sep}token={token}")
}

/// The body of a refusal, or how the request failed.
async fn why(response: gloo_net::http::Response) -> String {
    match response.json::<Refusal>().await {
        Ok(r) => r.message,
        Err(_) => format!("the server answered {}", response.status()),
    }
}

async fn fetch_page(offset: u32) -> Result<Listing, String> {
    let response = gloo_net::http::Request::get(&with_token(&format!(
        "/api/recordings?offset={offset}&limit={PAGE}"
    )))
    .send()
    .await
    .map_err(|e| format!("cannot reach the server: {e}"))?;
    if !response.ok() {
        return Err(why(response).await);
    }
    response
        .json::<Listing>()
        .await
        .map_err(|e| format!("an answer the page cannot read: {e}"))
}

/// The recordings panel.
#[component]
pub fn RecordingsPanel() -> Html {
    let ctx = use_ctx();
    let offset = use_state(|| 0u32);
    let listing = use_state(|| None::<Result<Listing, String>>);
    // Bumped to read the list again (after a change here, or a recording that stopped).
    let reload = use_state(|| 0u32);
    let problem = use_state(|| None::<String>);
    let editing = use_state(|| None::<(i64, String)>);
    {
        let (listing, offset) = (listing.clone(), *offset);
        let stopped = ctx.live.recorded.as_ref().map(|r| r.id);
        use_effect_with((offset, *reload, stopped), move |_| {
            wasm_bindgen_futures::spawn_local(async move {
                listing.set(Some(fetch_page(offset).await));
            });
        });
    }
    let refresh = {
        let reload = reload.clone();
        move || reload.set(*reload + 1)
    };
    let delete = |id: i64| {
        let (problem, refresh) = (problem.clone(), refresh.clone());
        Callback::from(move |_: MouseEvent| {
            let (problem, refresh) = (problem.clone(), refresh.clone());
            wasm_bindgen_futures::spawn_local(async move {
                let sent =
                    gloo_net::http::Request::delete(&with_token(&format!("/api/recordings/{id}")))
                        .send()
                        .await;
                match sent {
                    Ok(r) if r.ok() => problem.set(None),
                    Ok(r) => problem.set(Some(why(r).await)),
                    Err(e) => problem.set(Some(format!("cannot reach the server: {e}"))),
                }
                refresh();
            });
        })
    };
    let save_name = {
        let (problem, refresh, editing) = (problem.clone(), refresh.clone(), editing.clone());
        Callback::from(move |e: SubmitEvent| {
            e.prevent_default();
            let Some((id, name)) = (*editing).clone() else {
                return;
            };
            let (problem, refresh, editing) = (problem.clone(), refresh.clone(), editing.clone());
            wasm_bindgen_futures::spawn_local(async move {
                let body = serde_json::json!({ "name": name }).to_string();
                let sent =
                    gloo_net::http::Request::patch(&with_token(&format!("/api/recordings/{id}")))
                        .header("Content-Type", "application/json")
                        .body(body);
                let answer = match sent {
                    Ok(request) => request.send().await,
                    Err(e) => {
                        problem.set(Some(e.to_string()));
                        return;
                    }
                };
                match answer {
                    Ok(r) if r.ok() => {
                        problem.set(None);
                        editing.set(None);
                    }
                    Ok(r) => problem.set(Some(why(r).await)),
                    Err(e) => problem.set(Some(format!("cannot reach the server: {e}"))),
                }
                refresh();
            });
        })
    };
    let on_name = {
        let editing = editing.clone();
        Callback::from(move |e: InputEvent| {
            if let Some((id, _)) = *editing {
                let value = e
                    .target_unchecked_into::<web_sys::HtmlInputElement>()
                    .value();
                editing.set(Some((id, value)));
            }
        })
    };
    let imported = use_state(|| None::<String>);
    let run_again = |id: i64| {
        let ctx = ctx.clone();
        Callback::from(move |_: MouseEvent| {
            ctx.replay.set(None);
            ctx.commands.send(
                &ctx.live.dispatcher(),
                crate::model::Origin::Record,
                socklab_protocol::Command::RunAgain {
                    recording: id,
                    speed: None,
                },
            );
        })
    };
    // Up to two recordings picked for comparing, and the comparison once made.
    let picked = use_state(Vec::<i64>::new);
    let compared = use_state(|| None::<serde_json::Value>);
    let pick = |id: i64| {
        let picked = picked.clone();
        Callback::from(move |_: MouseEvent| {
            let mut now = (*picked).clone();
            match now.iter().position(|p| *p == id) {
                Some(i) => {
                    now.remove(i);
                }
                None => {
                    now.push(id);
                    if now.len() > 2 {
                        now.remove(0);
                    }
                }
            }
            picked.set(now);
        })
    };
    let run_compare = {
        let (picked, compared, problem) = (picked.clone(), compared.clone(), problem.clone());
        Callback::from(move |_: MouseEvent| {
            let [a, b] = picked.as_slice() else { return };
            let (a, b) = (*a.min(b), *a.max(b));
            let (compared, problem) = (compared.clone(), problem.clone());
            wasm_bindgen_futures::spawn_local(async move {
                let answer =
                    gloo_net::http::Request::get(&with_token(&format!("/api/compare?a={a}&b={b}")))
                        .send()
                        .await;
                match answer {
                    Ok(r) if r.ok() => match r.json::<serde_json::Value>().await {
                        Ok(v) => {
                            problem.set(None);
                            compared.set(Some(v));
                        }
                        Err(e) => problem.set(Some(format!("an answer the page cannot read: {e}"))),
                    },
                    Ok(r) => problem.set(Some(why(r).await)),
                    Err(e) => problem.set(Some(format!("cannot reach the server: {e}"))),
                }
            });
        })
    };
    let open = |id: i64, name: String, size: (u64, u64)| {
        let (problem, replay) = (problem.clone(), ctx.replay.clone());
        Callback::from(move |_: MouseEvent| {
            let (problem, replay, name) = (problem.clone(), replay.clone(), name.clone());
            wasm_bindgen_futures::spawn_local(async move {
                match super::replay::open(id, name, size).await {
                    Ok(opened) => {
                        problem.set(None);
                        replay.set(Some(opened));
                    }
                    Err(e) => problem.set(Some(e)),
                }
            });
        })
    };
    let on_import = {
        let (problem, refresh, imported) = (problem.clone(), refresh.clone(), imported.clone());
        Callback::from(move |e: Event| {
            let input = e.target_unchecked_into::<web_sys::HtmlInputElement>();
            let Some(file) = input.files().and_then(|files| files.get(0)) else {
                return;
            };
            input.set_value("");
            let (problem, refresh, imported) = (problem.clone(), refresh.clone(), imported.clone());
            wasm_bindgen_futures::spawn_local(async move {
                let name = file.name();
                // A shared recording keeps its own name; a capture is named after its file.
                let path = if name.ends_with(".socklab") {
                    "/api/recordings/import".to_string()
                } else {
                    format!(
                        "/api/recordings/import?name={}",
                        js_sys::encode_uri_component(&name)
                    )
                };
                let request = gloo_net::http::Request::post(&with_token(&path))
                    .body(wasm_bindgen::JsValue::from(file));
                let answer = match request {
                    Ok(request) => request.send().await,
                    Err(e) => {
                        problem.set(Some(e.to_string()));
                        return;
                    }
                };
                match answer {
                    Ok(r) if r.ok() => {
                        problem.set(None);
                        let made: serde_json::Value = r.json().await.unwrap_or_default();
                        let note = made["note"]
                            .as_str()
                            .filter(|n| !n.is_empty())
                            .map(|n| format!(" ({n})"))
                            .unwrap_or_default();
                        imported.set(Some(format!(
                            "{name}: {} datagrams imported{note}",
                            made["datagrams"].as_u64().unwrap_or(0)
                        )));
                    }
                    Ok(r) => problem.set(Some(why(r).await)),
                    Err(e) => problem.set(Some(format!("cannot reach the server: {e}"))),
                }
                refresh();
            });
        })
    };
    let body = match &*listing {
        None => html! { <p class="empty">{ "Reading the recordings…" }</p> },
        Some(Err(e)) => html! { <p id="recordings-error" class="form-error">{ e.clone() }</p> },
        Some(Ok(l)) if l.total == 0 => html! {
            <p class="empty">{ "No recordings yet. The top bar's ● record keeps this session; --record keeps every session." }</p>
        },
        Some(Ok(l)) => {
            let rows = l.recordings.iter().map(|r| {
                let id = r.id;
                let start_edit = {
                    let (editing, name) = (editing.clone(), r.name.clone());
                    Callback::from(move |_: MouseEvent| editing.set(Some((id, name.clone()))))
                };
                let file = |name: &str| with_token(&format!("/api/recordings/{id}/{name}"));
                let is_editing = editing.as_ref().is_some_and(|(e, _)| *e == id);
                html! {
                    <tr class="recording-row" data-recording={id.to_string()} key={id}>
                        <td>
                            <input type="checkbox" id={format!("pick-{id}")} checked={picked.contains(&id)} onclick={pick(id)}
                                title="Pick two recordings of the same traffic to compare them" />
                        </td>
                        <td class="name">
                            if is_editing {
                                <form class="row" onsubmit={save_name.clone()}>
                                    <input id={format!("rename-{id}")} value={editing.as_ref().map(|(_, n)| n.clone()).unwrap_or_default()} oninput={on_name.clone()} size="20" />
                                    <button class="small" type="submit">{ "save" }</button>
                                </form>
                            } else {
                                <span title={r.note.clone().unwrap_or_default()}>{ r.name.clone() }</span>
                                if r.stopped_ms.is_none() {
                                    <span class="recording" title="Still being recorded, or the server stopped before it could finish it">{ " ●" }</span>
                                }
                            }
                        </td>
                        <td class="num date">{ date(r.created_ms) }</td>
                        <td class="num" title={format!("{} events in all", r.events)}>{ r.datagrams }</td>
                        <td class="num">{ format!("{:.3} s", r.duration_ns as f64 / 1e9) }</td>
                        <td class="num">{ size(r.bytes) }</td>
                        <td class="files">
                            <a class="small" href={file("capture.pcapng")} download={format!("socklab-recording-{id}.pcapng")}
                                title="The datagrams as a loopback capture for Wireshark, each with the lab's account as its comment">{ "pcapng" }</a>
                            <a class="small" href={file("fates.csv")} download={format!("socklab-recording-{id}-fates.csv")} title="What became of each datagram, a row each">{ "fates.csv" }</a>
                            <a class="small" href={file("flows.json")} download={format!("socklab-recording-{id}-flows.json")} title="The flows' figures">{ "flows.json" }</a>
                            <a class="small" href={file("recording.socklab")} download={format!("socklab-recording-{id}.socklab")} title="The whole recording as one file, to share: another socklab imports it">{ "file" }</a>
                            <button class="small" onclick={open(id, r.name.clone(), (r.events, r.datagrams))} id={format!("open-{id}")}
                                title="Show it in the timeline, the packets and the inspector, read-only, stepping or playing through it">{ "open" }</button>
                            <button class="small" onclick={run_again(id)} id={format!("again-{id}")}
                                title="Send its datagrams (and its TCP connects, writes and shutdowns) again with its timing, from fresh sockets, through its links made again with the same seeds, into a new recording (stop it with ■ when done)">{ "run again" }</button>
                            <button class="small" onclick={start_edit} id={format!("rename-button-{id}")}>{ "rename" }</button>
                            <button class="small" onclick={delete(id)} id={format!("delete-{id}")}>{ "delete" }</button>
                        </td>
                    </tr>
                }
            });
            let first = *offset + 1;
            let last = (*offset as u64 + l.recordings.len() as u64).min(l.total);
            let prev = {
                let offset = offset.clone();
                Callback::from(move |_| offset.set(offset.saturating_sub(PAGE)))
            };
            let next = {
                let offset = offset.clone();
                Callback::from(move |_| offset.set(*offset + PAGE))
            };
            html! {
                <>
                    <table id="recordings-list" class="recordings">
                        <thead><tr><th></th><th>{ "name" }</th><th>{ "date" }</th><th>{ "datagrams" }</th><th>{ "duration" }</th><th>{ "size" }</th><th>{ "files" }</th></tr></thead>
                        <tbody>{ for rows }</tbody>
                    </table>
                    <div class="row">
                        <button class="small" id="compare-button" onclick={run_compare} disabled={picked.len() != 2}
                            title="The datagrams whose fate changed between the two, and both runs' figures">{ "compare the two picked" }</button>
                    </div>
                    <div class="row pager">
                        <button class="small" id="recordings-prev" onclick={prev} disabled={*offset == 0}>{ "newer" }</button>
                        <span id="recordings-range" class="hint">{ format!("{first}–{last} of {}", l.total) }</span>
                        <button class="small" id="recordings-next" onclick={next} disabled={last >= l.total}>{ "older" }</button>
                    </div>
                </>
            }
        }
    };
    html! {
        <div class="recordings-panel">
            <h3>{ "Recordings" }</h3>
            <p class="hint">{ "Sessions kept in the server's store, newest first. Each downloads as a capture for Wireshark (a packet per datagram on the wire, the lab's account in each comment) or as the analysis' figures." }</p>
            <label class="import" title="A .socklab file (a recording someone shared) imports whole; a pcap or pcapng capture (tcpdump, Wireshark) imports its UDP datagrams">
                { "import a recording or a capture" }
                <input id="import-file" type="file" accept=".socklab,.pcap,.pcapng,.cap" onchange={on_import} />
            </label>
            if let Some(done) = &*imported {
                <p id="import-done" class="hint">{ done.clone() }</p>
            }
            if let Some(p) = &*problem {
                <p id="recordings-problem" class="form-error" role="alert">{ p.clone() }</p>
            }
            { body }
            if let Some(v) = &*compared {
                <Comparison value={v.clone()} />
            }
        </div>
    }
}

/// The properties of [`Comparison`].
#[derive(Properties, PartialEq)]
struct ComparisonProps {
    /// `GET /api/compare`'s answer.
    value: serde_json::Value,
}

/// Two runs side by side: their fate counts and the datagrams whose fate changed.
#[component]
fn Comparison(props: &ComparisonProps) -> Html {
    let v = &props.value;
    let c = &v["comparison"];
    let name = |side: &str| v[side]["name"].as_str().unwrap_or("?").to_string();
    let mut kinds: Vec<String> = ["a", "b"]
        .iter()
        .flat_map(|side| {
            c[*side]["fates"]
                .as_object()
                .map(|m| m.keys().cloned().collect::<Vec<_>>())
                .unwrap_or_default()
        })
        .collect();
    kinds.sort();
    kinds.dedup();
    let count = |side: &str, kind: &str| c[side]["fates"][kind].as_u64().unwrap_or(0);
    let rows = kinds.iter().map(|kind| {
        let (a, b) = (count("a", kind), count("b", kind));
        let diff = b as i64 - a as i64;
        html! {
            <tr class={classes!((diff != 0).then_some("changed"))}>
                <td>{ kind.clone() }</td><td class="num">{ a }</td><td class="num">{ b }</td>
                <td class="num">{ if diff == 0 { String::new() } else { format!("{diff:+}") } }</td>
            </tr>
        }
    });
    let changed = c["changed"].as_array().cloned().unwrap_or_default();
    let changed_rows = changed.iter().map(|d| {
        html! {
            <tr class="changed">
                <td class="num">{ d["index"].as_u64().unwrap_or(0) + 1 }</td>
                <td class="mono">{ d["payload"].as_str().unwrap_or("").to_string() }</td>
                <td>{ d["fate"][0].as_str().unwrap_or("").to_string() }</td>
                <td>{ d["fate"][1].as_str().unwrap_or("").to_string() }</td>
            </tr>
        }
    });
    html! {
        <div id="comparison" class="comparison">
            <h3>{ format!("“{}” against “{}”", name("a"), name("b")) }</h3>
            <p class="hint">{ format!(
                "{} datagrams paired in send order (the same bytes at the same place){}; {} changed fate.",
                c["paired"].as_u64().unwrap_or(0),
                match c["unpaired"].as_u64().unwrap_or(0) {
                    0 => String::new(),
                    n => format!(", {n} left unpaired where the runs' traffic differs"),
                },
                c["changed_count"].as_u64().unwrap_or(0),
            ) }</p>
            <table class="recordings">
                <thead><tr><th>{ "fate" }</th><th>{ name("a") }</th><th>{ name("b") }</th><th>{ "difference" }</th></tr></thead>
                <tbody>
                    <tr><td>{ "sent" }</td><td class="num">{ c["a"]["sent"].as_u64().unwrap_or(0) }</td><td class="num">{ c["b"]["sent"].as_u64().unwrap_or(0) }</td><td></td></tr>
                    { for rows }
                </tbody>
            </table>
            if !changed.is_empty() {
                <table id="comparison-changed" class="recordings">
                    <thead><tr><th>{ "#" }</th><th>{ "payload" }</th><th>{ name("a") }</th><th>{ name("b") }</th></tr></thead>
                    <tbody>{ for changed_rows }</tbody>
                </table>
            }
        </div>
    }
}

/// A date and time as the person's browser writes them.
fn date(ms: i64) -> String {
    js_sys::Date::new(&wasm_bindgen::JsValue::from_f64(ms as f64))
        .to_locale_string("default", &wasm_bindgen::JsValue::UNDEFINED)
        .into()
}

/// Bytes for a person.
fn size(bytes: u64) -> String {
    if bytes >= 1 << 20 {
        format!("{:.1} MiB", bytes as f64 / (1u64 << 20) as f64)
    } else {
        format!("{:.1} KiB", bytes as f64 / 1024.0)
    }
}
