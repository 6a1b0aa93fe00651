//! Links: create impairing relays, tune them live, watch their counters.

use socklab_protocol::Command;
use socklab_protocol::link::{
    Impairments, JitterDist, LinkCounters, LinkSettings, Loss, MtuAction, presets,
};
use web_sys::{HtmlInputElement, HtmlSelectElement};
use yew::prelude::*;

use super::{
    Destinations, FormError, on_input, on_select, submit, use_clear_error_on_change, use_ctx,
};
use crate::forms::LinkForm;
use crate::forms::impairments::{
    Field, loss_model, with_jitter_dist, with_loss_model, with_mtu_action,
};
use crate::model::{LinkInfo, Origin};

const GE_HELP: &str = "Bursty loss (Gilbert-Elliott): the link is either good or bad. After each \
datagram it turns bad with probability p and good again with probability r, so bad spells last \
1/r datagrams on average and the link is bad p/(p+r) of the time. Each state has its own loss \
(typically 0 % when good, 100 % when bad): losses come in bursts, as on a real radio link.";

/// The links panel: the create form and one card per link.
#[component]
pub fn LinksPanel() -> Html {
    let ctx = use_ctx();
    let form = use_state(LinkForm::default);
    use_clear_error_on_change(&ctx, Origin::CreateLink, (*form).clone());
    let on_create = {
        let (ctx, form) = (ctx.clone(), form.clone());
        Callback::from(move |e: SubmitEvent| {
            e.prevent_default();
            submit(&ctx, Origin::CreateLink, form.command());
        })
    };

    let on_pick = {
        let form = form.clone();
        Callback::from(move |addr: socklab_protocol::Endpoint| {
            form.set(LinkForm {
                target: addr.to_string(),
                ..(*form).clone()
            })
        })
    };
    let all_presets = presets();
    let chosen = all_presets.iter().find(|p| p.name == form.preset).copied();

    html! {
        <section class="panel" aria-labelledby="links-title">
            <h2 id="links-title">{ "Links" }</h2>
            <p class="hint">{ "A link is a real UDP relay you put between two endpoints: send to its listen address and it forwards to the target (and the target's replies back), losing, delaying, reordering, duplicating or throttling datagrams on the way, and saying why." }</p>
            <form class="stack" onsubmit={on_create}>
                <div class="row">
                    <label>{ "listen on" }
                        <select id="link-host" onchange={on_select(&form, |f, v| f.host = v)}>
                            <option value="127.0.0.1" selected={form.host == "127.0.0.1"}>{ "127.0.0.1" }</option>
                            <option value="::1" selected={form.host == "::1"}>{ "::1" }</option>
                        </select>
                    </label>
                    <label>{ "port" }
                        <input id="link-port" class="mono" size="6" value={form.port.clone()} oninput={on_input(&form, |f, v| f.port = v)} />
                    </label>
                    <label class="grow">{ "target" }
                        <input id="link-target" class="mono" placeholder="127.0.0.1:9000" value={form.target.clone()} oninput={on_input(&form, |f, v| f.target = v)} />
                    </label>
                </div>
                <Destinations id="link-chips" {on_pick} links={false} />
                <div class="row">
                    <label>{ "preset" }
                        <select id="link-preset" onchange={on_select(&form, |f, v| f.preset = v)}>
                            { for all_presets.iter().map(|p| html! {
                                <option value={p.name} selected={p.name == form.preset}>{ p.name }</option>
                            }) }
                        </select>
                    </label>
                    <label>{ "seed" }
                        <input id="link-seed" class="mono" size="8" value={form.seed.clone()} oninput={on_input(&form, |f, v| f.seed = v)}
                            title="The same seed and the same datagrams give the same decisions" />
                    </label>
                    <button id="link-create" type="submit">{ "create link" }</button>
                </div>
                if let Some(p) = chosen {
                    <p class="hint">{ format!("{}: {}", p.name, p.description) }</p>
                }
            </form>
            <FormError id="link-error" message={ctx.state.error(&Origin::CreateLink).map(str::to_owned)} code={ctx.state.error_code(&Origin::CreateLink)} />
            <div id="link-list">
                { for ctx.state.links.iter().map(|l| html! { <LinkCard key={l.id.to_string()} link={l.clone()} /> }) }
            </div>
        </section>
    }
}

fn preset_named(name: &str) -> Impairments {
    presets()
        .into_iter()
        .find(|p| p.name == name)
        .map(|p| p.impairments)
        .unwrap_or_default()
}

#[derive(Properties, PartialEq)]
struct LinkCardProps {
    link: LinkInfo,
}

/// One link: where it listens and forwards, its settings (editable live), its counters.
#[component]
fn LinkCard(props: &LinkCardProps) -> Html {
    let ctx = use_ctx();
    let link = &props.link;
    let draft = use_state(|| link.settings);
    let editing = use_state(|| false);
    // When the server confirms new settings, start from them.
    {
        let draft = draft.clone();
        use_effect_with(link.settings, move |settings| draft.set(*settings));
    }
    let origin = Origin::Link(link.id.clone());
    let on_delete = {
        let (ctx, id, origin) = (ctx.clone(), link.id.clone(), origin.clone());
        Callback::from(move |_| {
            ctx.commands.send(
                &ctx.state.dispatcher(),
                origin.clone(),
                Command::LinkDelete { link: id.clone() },
            );
        })
    };
    let on_apply = {
        let (ctx, id, origin, draft) =
            (ctx.clone(), link.id.clone(), origin.clone(), draft.clone());
        Callback::from(move |_| {
            ctx.commands.send(
                &ctx.state.dispatcher(),
                origin.clone(),
                Command::LinkUpdate {
                    link: id.clone(),
                    settings: *draft,
                },
            );
        })
    };
    let on_preset = {
        let draft = draft.clone();
        Callback::from(move |e: Event| {
            let name = e.target_unchecked_into::<HtmlSelectElement>().value();
            if !name.is_empty() {
                let imp = preset_named(&name);
                draft.set(LinkSettings {
                    c2t: imp,
                    t2c: imp,
                    seed: draft.seed,
                });
            }
        })
    };
    let toggle = {
        let editing = editing.clone();
        Callback::from(move |_| editing.set(!*editing))
    };
    let set_c2t = {
        let draft = draft.clone();
        Callback::from(move |imp: Impairments| draft.set(LinkSettings { c2t: imp, ..*draft }))
    };
    let set_t2c = {
        let draft = draft.clone();
        Callback::from(move |imp: Impairments| draft.set(LinkSettings { t2c: imp, ..*draft }))
    };
    let changed = *draft != link.settings;

    html! {
        <div class={classes!("link-card", ctx.state.ended.is_some().then_some("gone"))} data-link={link.id.to_string()}>
            <div class="row link-head">
                <span class="badge">{ link.id.to_string() }</span>
                <code class="addr" title="send here">{ link.listen.to_string() }</code>
                <span class="arrow">{ "⇢" }</span>
                <code class="addr" title="forwards to">{ link.target.to_string() }</code>
                <span class="actions">
                    <button class="small" onclick={toggle}>{ if *editing { "hide settings" } else { "settings" } }</button>
                    <button class="small" onclick={on_delete}>{ "delete" }</button>
                </span>
            </div>
            <p class="hint">{ format!("client→target: {} · target→client: {} · seed {}",
                describe(&link.settings.c2t), describe(&link.settings.t2c), link.settings.seed) }</p>
            <p class="hint link-ends">
                { "upstream " }
                <code class="upstream" title="The link sends to the target from this address, and the target's replies must come back to it. A lab socket used as a server behind the link sees this as its peer.">{ link.upstream.to_string() }</code>
                { " · client " }
                <code class="client" title="Whoever last sent to the listen address: the target's replies go there. It changes when another address sends to the link.">{ link.client.map_or_else(|| "none yet (replies are dropped until someone sends to the link)".to_string(), |c| c.to_string()) }</code>
            </p>
            <Counters c2t={link.c2t} t2c={link.t2c} />
            <super::stats::LinkHistory link={link.id.to_string()} history={link.history.clone()} />
            if *editing {
                <div class="editor">
                    <div class="row">
                        <label>{ "apply a preset to both directions" }
                            <select class="link-preset-edit" onchange={on_preset}>
                                <option value="" selected=true>{ "choose…" }</option>
                                { for presets().iter().map(|p| html! { <option value={p.name}>{ format!("{}: {}", p.name, p.description) }</option> }) }
                            </select>
                        </label>
                    </div>
                    <div class="directions">
                        // Ids carry the link's id: two open editors never share one.
                        <ImpairmentsEditor title="client → target" prefix={format!("{}-c2t", link.id)} value={draft.c2t} on_change={set_c2t} />
                        <ImpairmentsEditor title="target → client" prefix={format!("{}-t2c", link.id)} value={draft.t2c} on_change={set_t2c} />
                    </div>
                    <div class="row">
                        <button class="link-apply" onclick={on_apply} disabled={!changed}>{ "apply (live)" }</button>
                        <span class="hint">{ "Changes apply to the next datagram; datagrams already in the link keep their fate." }</span>
                    </div>
                </div>
            }
            <FormError id={format!("link-error-{}", link.id)} message={ctx.state.error(&origin).map(str::to_owned)} code={ctx.state.error_code(&origin)} />
        </div>
    }
}

/// A short description of one direction's impairments.
pub fn describe(imp: &Impairments) -> String {
    let mut parts = Vec::new();
    match imp.loss {
        Loss::None => {}
        Loss::Random { pct } => parts.push(format!("{pct} % loss")),
        Loss::GilbertElliott { p_pct, r_pct, .. } => {
            parts.push(format!("bursty loss (p {p_pct} %, r {r_pct} %)"))
        }
    }
    if imp.delay_ms > 0.0 || imp.jitter_ms > 0.0 {
        parts.push(format!("{} ms ± {} ms", imp.delay_ms, imp.jitter_ms));
    }
    if imp.reorder_pct > 0.0 {
        parts.push(format!(
            "{} % reordered by {}",
            imp.reorder_pct, imp.reorder_gap
        ));
    }
    if imp.duplicate_pct > 0.0 {
        parts.push(format!("{} % duplicated", imp.duplicate_pct));
    }
    if imp.corrupt_pct > 0.0 {
        parts.push(format!("{} % corrupted", imp.corrupt_pct));
    }
    if imp.rate_bps > 0 {
        parts.push(format!("{} kbit/s", imp.rate_bps / 1000));
    }
    if imp.mtu > 0 {
        parts.push(format!("MTU {}", imp.mtu));
    }
    if parts.is_empty() {
        "perfect".into()
    } else {
        parts.join(", ")
    }
}

#[derive(Properties, PartialEq)]
struct CountersProps {
    c2t: LinkCounters,
    t2c: LinkCounters,
}

#[component]
fn Counters(props: &CountersProps) -> Html {
    let row = |name: &'static str, c: &LinkCounters| {
        let reasons = [
            ("random loss", c.dropped_random),
            ("burst loss", c.dropped_burst),
            ("queue full", c.dropped_queue),
            ("over the MTU", c.dropped_mtu),
            ("no client yet", c.dropped_no_client),
            ("a loop", c.dropped_loop),
            ("over the forwarding limit", c.dropped_rate_limit),
            ("not from the target", c.dropped_not_from_target),
            ("the send failed", c.send_failed),
        ];
        let dropped: u64 = reasons.iter().map(|(_, n)| n).sum();
        let why: Vec<String> = reasons
            .iter()
            .filter(|(_, n)| *n > 0)
            .map(|(reason, n)| format!("{n} {reason}"))
            .collect();
        let late = (c.departed_late > 0).then(|| {
            format!(
                "{} left more than 1 ms after their planned time (up to {:.1} ms late: the machine was busy)",
                c.departed_late,
                c.late_max_ns as f64 / 1e6
            )
        });
        html! {
            <>
            <tr>
                <td class="way">{ name }</td>
                <td class="num">{ c.arrived }</td>
                <td class="num">{ c.forwarded }</td>
                <td class="num dropped">{ dropped }</td>
                <td class="num">{ c.duplicated }</td>
                <td class="num">{ c.reordered }</td>
                <td class="num">{ c.corrupted }</td>
                <td class="num">{ c.queue_depth }</td>
            </tr>
            if !why.is_empty() {
                <tr class="why"><td></td><td colspan="7">{ format!("dropped: {}", why.join(", ")) }</td></tr>
            }
            if let Some(late) = late {
                <tr class="why late"><td></td><td colspan="7">{ late }</td></tr>
            }
            </>
        }
    };
    html! {
        <table class="counters">
            <thead><tr>
                <th></th><th title="datagrams that reached the link">{ "in" }</th><th title="datagrams sent on">{ "sent on" }</th>
                <th title="datagrams the link dropped (why: in the line under)">{ "dropped" }</th>
                <th title="extra copies sent">{ "copies" }</th><th title="held back to be overtaken">{ "reordered" }</th>
                <th title="a byte changed">{ "corrupted" }</th><th title="waiting at the bottleneck now">{ "queued" }</th>
            </tr></thead>
            <tbody>{ row("client → target", &props.c2t) }{ row("target → client", &props.t2c) }</tbody>
        </table>
    }
}

#[derive(Properties, PartialEq)]
struct EditorProps {
    title: AttrValue,
    prefix: AttrValue,
    value: Impairments,
    on_change: Callback<Impairments>,
}

/// Edits one direction's impairments.
#[component]
fn ImpairmentsEditor(props: &EditorProps) -> Html {
    let v = props.value;
    let id = |key: &str| format!("{}-{}-{key}", props.prefix, "imp");
    // A number field that writes back when what was typed is a number of its kind.
    let number = |field: Field| {
        let on_change = props.on_change.clone();
        let onchange = Callback::from(move |e: Event| {
            let typed = e.target_unchecked_into::<HtmlInputElement>().value();
            if let Ok(next) = field.set(v, &typed) {
                on_change.emit(next);
            }
        });
        html! {
            <label>{ field.label() }<input id={id(field.key())} class="mono" size="7" value={field.get(&v)} {onchange} /></label>
        }
    };
    // A select that writes back through `with`.
    let choose = |with: fn(Impairments, &str) -> Impairments| {
        let on_change = props.on_change.clone();
        Callback::from(move |e: Event| {
            let value = e.target_unchecked_into::<HtmlSelectElement>().value();
            on_change.emit(with(v, &value));
        })
    };
    let model = loss_model(&v);
    let loss_fields = match v.loss {
        Loss::None => html! {},
        Loss::Random { .. } => html! { <>{ for Field::RANDOM.into_iter().map(number) }</> },
        Loss::GilbertElliott { .. } => html! {
            <>
                { for Field::GILBERT_ELLIOTT.into_iter().map(number) }
                <p class="hint">{ GE_HELP }</p>
            </>
        },
    };
    let on_may_reorder = {
        let on_change = props.on_change.clone();
        Callback::from(move |_| {
            on_change.emit(Impairments {
                jitter_may_reorder: !v.jitter_may_reorder,
                ..v
            })
        })
    };
    html! {
        <fieldset class="imp">
            <legend>{ props.title.clone() }</legend>
            <div class="row">
                <label>{ "loss" }
                    <select id={id("loss-model")} onchange={choose(with_loss_model)}>
                        <option value="none" selected={model == "none"}>{ "none" }</option>
                        <option value="random" selected={model == "random"}>{ "random (independent)" }</option>
                        <option value="gilbert_elliott" selected={model == "gilbert_elliott"}>{ "bursty (Gilbert-Elliott)" }</option>
                    </select>
                </label>
                { loss_fields }
            </div>
            <div class="row">
                { number(Field::DelayMs) }
                { number(Field::JitterMs) }
                <label>{ "jitter shape" }
                    <select id={id("dist")} onchange={choose(with_jitter_dist)}>
                        <option value="uniform" selected={v.jitter_dist == JitterDist::Uniform}>{ "uniform ±" }</option>
                        <option value="normal" selected={v.jitter_dist == JitterDist::Normal}>{ "normal (σ)" }</option>
                    </select>
                </label>
                <label class="check" title="Off: datagrams leave in the order they came, whatever the jitter">
                    <input type="checkbox" checked={v.jitter_may_reorder} onclick={on_may_reorder} />{ "jitter may reorder" }
                </label>
            </div>
            <div class="row">
                { for [Field::ReorderPct, Field::ReorderGap, Field::DuplicatePct, Field::CorruptPct].into_iter().map(number) }
            </div>
            <div class="row">
                { for [Field::RateBps, Field::QueuePackets, Field::QueueBytes, Field::Mtu].into_iter().map(number) }
                <label>{ "too big" }
                    <select id={id("mtu-action")} onchange={choose(with_mtu_action)}>
                        <option value="drop" selected={v.mtu_action == MtuAction::Drop}>{ "drop" }</option>
                        <option value="truncate" selected={v.mtu_action == MtuAction::Truncate}>{ "truncate" }</option>
                    </select>
                </label>
            </div>
            <p class="hint">{ "Reordering holds a datagram back until the given number of later ones have passed it (no delay needed). Rate limits queue datagrams behind a bottleneck; a full queue drops new ones." }</p>
        </fieldset>
    }
}
