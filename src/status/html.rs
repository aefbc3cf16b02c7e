//! The status page's HTML: the overview, change and error pages rendered from plain data with
//! maud's `html!` templates, which escape every spliced value (`(value)`) by construction;
//! only [`STYLE`], a constant, is spliced unescaped. No script anywhere; one inline stylesheet,
//! allowed by its hash in the Content-Security-Policy.

use maud::{DOCTYPE, Markup, PreEscaped, html};

use crate::changes::{ChangeLine, ChangeView, StartView, short, when};
use crate::event::shown;
use crate::sources::poll::health::RepoHealth;
use crate::store::StartRow;

/// The page's only stylesheet.
pub const STYLE: &str = "\
:root{color-scheme:light dark;--fg:#1b1f24;--muted:#59636e;--line:#d1d9e0;--bg:#fff;--alt:#f6f8fa;--accent:#0969da}\
@media (prefers-color-scheme:dark){:root{--fg:#e6edf3;--muted:#9198a1;--line:#3d444d;--bg:#0d1117;--alt:#151b23;--accent:#4493f8}}\
*{box-sizing:border-box}\
body{margin:0;font:14px/1.45 system-ui,-apple-system,'Segoe UI',sans-serif;color:var(--fg);background:var(--bg)}\
header{display:flex;flex-wrap:wrap;gap:1em;align-items:center;justify-content:space-between;padding:.6em 1.5em;border-bottom:1px solid var(--line);background:var(--alt)}\
header .brand{font-weight:600;font-size:1.1em;color:var(--fg);text-decoration:none}\
main{padding:0 1.5em 2em;max-width:110em}\
h1{font-size:1.3em;margin:1em 0 .3em}h2{font-size:1.1em;margin:1.6em 0 .4em}\
a{color:var(--accent)}\
code,pre{font:12.5px/1.4 ui-monospace,SFMono-Regular,Menlo,monospace}\
pre{white-space:pre-wrap;word-break:break-word;margin:0}\
table{border-collapse:collapse;width:100%;margin:.3em 0}\
th,td{text-align:left;vertical-align:top;padding:.3em .6em;border-bottom:1px solid var(--line)}\
th{font-weight:600;color:var(--muted);font-size:.9em}\
tbody tr:nth-child(even){background:var(--alt)}\
.muted,.lag{color:var(--muted)}.lag{white-space:nowrap;font-size:.9em}\
.state{display:inline-block;padding:0 .5em;margin:0 .3em .2em 0;border-radius:1em;border:1px solid var(--line);font-size:.9em;white-space:nowrap}\
.succeeded,.start{background:#dafbe1;color:#116329;border-color:#aceebb}\
.dead,.failed{background:#ffebe9;color:#a40e26;border-color:#ffcecb}\
.pending,.running{background:#fff8c5;color:#7d4e00;border-color:#f5e0a0}\
.skip,.superseded,.dropped{background:var(--alt);color:var(--muted)}\
.notice{padding:.6em 1em;border:1px solid #aceebb;background:#dafbe1;color:#116329;border-radius:.4em;margin:1em 0}\
.problem{padding:.6em 1em;border:1px solid #ffcecb;background:#ffebe9;color:#a40e26;border-radius:.4em;margin:1em 0}\
.summary{font-weight:600}\
dl{display:grid;grid-template-columns:max-content auto;gap:.2em 1em;margin:.5em 0}dt{color:var(--muted)}dd{margin:0}\
form{display:inline}form.filter{display:flex;flex-wrap:wrap;gap:.5em;align-items:end;margin:.3em 0}\
label{font-size:.9em;color:var(--muted)}input,select,button{font:inherit}\
button{cursor:pointer;padding:.1em .7em;border-radius:.3em;border:1px solid var(--line);background:var(--bg);color:var(--fg)}\
button.danger{color:#a40e26}\
details{margin:1em 0}summary{cursor:pointer;color:var(--muted)}\
.when{white-space:nowrap}table.missed{width:auto;min-width:24em}";

/// Who is looking, as far as the page's actions go.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Viewer {
    /// No `operator_token` is configured: the page is read-only.
    ReadOnly,
    /// One is configured but cannot be read now (its reference, e.g. `env:NAME`).
    Unavailable(String),
    /// One is configured; this visitor has not logged in.
    Anonymous,
    /// A logged-in operator: the CSRF token its forms carry.
    Operator { csrf: String },
}

impl Viewer {
    fn csrf(&self) -> Option<&str> {
        match self {
            Viewer::Operator { csrf } => Some(csrf),
            _ => None,
        }
    }
}

/// What the overview shows.
#[derive(Debug)]
pub struct Overview<'a> {
    pub viewer: &'a Viewer,
    pub now_ms: i64,
    /// The filter as asked (`repository`, `pipeline`, `since`, `limit`), to fill the form.
    pub filter: [(&'static str, String); 4],
    pub changes: &'a [ChangeLine],
    /// The link to the older changes, when this page is full.
    pub older: Option<String>,
    /// The newest dead letters first, and how many there are in all.
    pub dead: &'a [StartRow],
    pub dead_total: usize,
    pub polls: &'a [RepoHealth],
    /// `switchyard_missed_total` by push source.
    pub missed: &'a [(&'static str, u64)],
}

/// What a change's page shows.
#[derive(Debug)]
pub struct ChangePage<'a> {
    pub viewer: &'a Viewer,
    pub view: &'a ChangeView,
    /// The pipelines that watch its repository today (the replay form's choices).
    pub watching: &'a [String],
    /// What the last action did, when the page follows one.
    pub notice: Option<String>,
}

/// An error page: its status, what went wrong, how to fix it.
#[derive(Debug, Default)]
pub struct ErrorPage {
    pub status: u16,
    pub title: String,
    pub message: String,
    pub hint: Option<String>,
    /// Changes an ambiguous prefix names (links to each).
    pub candidates: Vec<String>,
    /// A 401: show the login form, which returns to this path.
    pub login_next: Option<String>,
    /// Where "back" goes.
    pub back: Option<String>,
}

/// A duration as the configuration writes it (`30s`, `5m`, `2h`).
fn duration(d: std::time::Duration) -> String {
    let s = d.as_secs();
    match s {
        0 => format!("{}ms", d.as_millis()),
        s if s % 3600 == 0 => format!("{}h", s / 3600),
        s if s % 60 == 0 => format!("{}m", s / 60),
        s => format!("{s}s"),
    }
}

/// How long before `now_ms` `at_ms` was.
fn ago(now_ms: i64, at_ms: i64) -> String {
    let s = (now_ms - at_ms).max(0) / 1000;
    match s {
        0 => "just now".to_owned(),
        s if s < 120 => format!("{s} s ago"),
        s if s < 2 * 3600 => format!("{} min ago", s / 60),
        s if s < 48 * 3600 => format!("{} h ago", s / 3600),
        s => format!("{} d ago", s / 86_400),
    }
}

/// A source's lag behind the first: `+120 ms`, `+2.50 s`.
fn lag(ms: i64) -> String {
    if ms < 1000 {
        format!("+{ms} ms")
    } else {
        format!("+{:.2} s", ms as f64 / 1000.0)
    }
}

/// The frame every page shares: head, stylesheet, header with the operator's state (with a
/// login form returning to `here`, unless the body has one: `None`).
fn page(title: &str, viewer: &Viewer, here: Option<&str>, body: Markup) -> String {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · switchyard" }
                link rel="icon" href="data:,";
                // A constant of this file: the one unescaped splice, allowed by its hash.
                style { (PreEscaped(STYLE)) }
            }
            body {
                header {
                    a.brand href="/" { "switchyard" }
                    span.who {
                        @match viewer {
                            Viewer::ReadOnly => {
                                span.muted { "read-only (no operator_token configured)" }
                            }
                            Viewer::Unavailable(reference) => {
                                span.muted {
                                    "read-only: the operator token (" (reference) ") cannot be read"
                                }
                            }
                            Viewer::Anonymous => {
                                @match here {
                                    Some(here) => (login_form(here)),
                                    None => span.muted { "not logged in" },
                                }
                            }
                            Viewer::Operator { csrf } => {
                                "operator "
                                form method="post" action="/logout" {
                                    input type="hidden" name="csrf" value=(csrf);
                                    button type="submit" { "log out" }
                                }
                            }
                        }
                    }
                }
                main { (body) }
            }
        }
    }
    .into_string()
}

fn login_form(next: &str) -> Markup {
    html! {
        form.login method="post" action="/login" {
            input type="hidden" name="next" value=(next);
            label {
                "operator token "
                input type="password" name="token" autocomplete="current-password" required;
            }
            " "
            button type="submit" { "log in" }
        }
    }
}

/// A start's state as a badge.
fn state(label: &str, state: &str) -> Markup {
    html! { span class={ "state " (state) } { (label) } }
}

/// A run: a link when it is an http(s) URL, else its id as code.
fn run(run: Option<&str>) -> Markup {
    html! {
        @match run {
            Some(r) if is_http_url(r) => a href=(r) rel="noopener noreferrer" { (r) },
            Some(r) => code { (r) },
            None => span.muted { "–" },
        }
    }
}

/// Whether `text` is an `http://` or `https://` URL (any case), the only runs made links.
pub fn is_http_url(text: &str) -> bool {
    let lower = text.get(..8).unwrap_or(text).to_ascii_lowercase();
    (lower.starts_with("http://") && text.len() > 7) || (lower == "https://" && text.len() > 8)
}

/// The retry and drop buttons of a start, for an operator, when the start is dead or failed.
fn start_actions(viewer: &Viewer, id: &str, state: &str, change: &str) -> Markup {
    let csrf = viewer
        .csrf()
        .filter(|_| state == "dead" || state == "failed");
    html! {
        @if let Some(csrf) = csrf {
            @for (action, class) in [("retry", None), ("drop", Some("danger"))] {
                form method="post" action={ "/starts/" (id) "/" (action) } {
                    input type="hidden" name="csrf" value=(csrf);
                    input type="hidden" name="change" value=(change);
                    button type="submit" name="action" value=(action) class=[class] { (action) }
                }
                " "
            }
        }
    }
}

/// A time, and how long ago it was; "not yet" without one.
fn at(now_ms: i64, ms: Option<i64>) -> Markup {
    html! {
        @match ms {
            Some(ms) => { span.when { (when(ms)) } br; span.muted { (ago(now_ms, ms)) } }
            None => span.muted { "not yet" },
        }
    }
}

/// The overview: recent changes, dead letters, polled repositories, missed changes.
pub fn overview(o: &Overview<'_>) -> String {
    let body = html! {
        h1 { "Recent changes" }
        form.filter method="get" action="/" {
            @for (name, value) in &o.filter {
                label {
                    (name) br;
                    input name=(name) value=(value) size=(if *name == "repository" { 28 } else { 10 });
                }
            }
            button type="submit" { "show" }
            " "
            a href="/api/changes" { "JSON" }
        }
        @if o.changes.is_empty() {
            p.muted { "No changes stored (for this filter)." }
        } @else {
            table.changes {
                thead { tr {
                    th { "change" } th { "received" } th { "repository" } th { "ref" }
                    th { "sha" } th { "seen by" } th { "starts" }
                } }
                tbody { @for l in o.changes { (change_line(o.now_ms, l)) } }
            }
            @if let Some(older) = &o.older {
                p { a href=(older) rel="next" { "older changes" } }
            }
        }

        h2 { "Dead letters (" (o.dead_total) ")" }
        @if o.dead.is_empty() {
            p.muted { "None: every start either started or is still being tried." }
        } @else {
            @if o.dead_total > o.dead.len() {
                p.muted {
                    "The newest " (o.dead.len()) " of " (o.dead_total) "; "
                    code { "switchyard outbox list" } " lists them all."
                }
            }
            table.dead-letters {
                thead { tr {
                    th { "start" } th { "pipeline" } th { "change" } th { "attempts" }
                    th { "last error" } th { "updated" } th {}
                } }
                tbody {
                    @for s in o.dead {
                        tr {
                            td { code { (short(&s.id, 12)) } }
                            td { (s.pipeline) }
                            td { a href={ "/changes/" (s.change_id) } { code { (short(&s.change_id, 12)) } } }
                            td { (s.attempts) }
                            td { pre { (s.last_error.as_deref().unwrap_or("")) } }
                            td { (when(s.updated_ms)) }
                            td { (start_actions(o.viewer, &s.id, s.state.as_str(), &s.change_id)) }
                        }
                    }
                }
            }
        }

        h2 { "Polled repositories" }
        @if o.polls.is_empty() {
            p.muted { "None configured (" code { "poll:" } " in switchyard.yaml)." }
        } @else {
            table.polls {
                thead { tr {
                    th { "repository" } th { "interval" } th { "last poll" }
                    th { "last success" } th { "result" }
                } }
                tbody { @for p in o.polls { (poll_row(o.now_ms, p)) } }
            }
        }

        h2 { "Missed by push sources" }
        p.muted {
            "Changes polling found that a push source delivering for the repository never \
             announced (" code { "switchyard_missed_total" } ", since this process started)."
        }
        table.missed {
            thead { tr { th { "source" } th { "missed" } } }
            tbody { @for (source, n) in o.missed { tr { td { (source) } td { (n) } } } }
        }
    };
    page("status", o.viewer, Some("/"), body)
}

/// A change of the overview's list.
fn change_line(now_ms: i64, l: &ChangeLine) -> Markup {
    let received = ago(now_ms, parse_ms(&l.received_at).unwrap_or(now_ms));
    html! {
        tr {
            td { a href={ "/changes/" (l.id) } { code { (short(&l.id, 12)) } } }
            td { span.when { (l.received_at) } br; span.muted { (received) } }
            td { (shown(&l.repository)) }
            td { code { (shown(&l.git_ref)) } }
            td { code { (short(&l.sha, 7)) } }
            td {
                (l.first_source)
                @for s in l.lags.iter().skip(1) { br; span.lag { (s.source) " " (lag(s.lag_ms)) } }
            }
            td {
                @if l.starts.is_empty() { span.muted { "none" } }
                @for s in &l.starts {
                    @let label = if s.replay > 0 {
                        format!("{}: {} (replay {})", s.pipeline, s.state, s.replay)
                    } else {
                        format!("{}: {}", s.pipeline, s.state)
                    };
                    (state(&label, &s.state))
                }
            }
        }
    }
}

/// A polled repository of the overview.
fn poll_row(now_ms: i64, p: &RepoHealth) -> Markup {
    html! {
        tr {
            td { (p.repository) }
            td { (duration(p.interval)) }
            td { (at(now_ms, p.last_poll_ms)) }
            td { (at(now_ms, p.last_ok_ms)) }
            td {
                @match (&p.last_error, p.last_poll_ms) {
                    (Some(e), _) => {
                        (state(&format!("error, {} in a row", p.failures), "failed"))
                        pre { (e) }
                    }
                    (None, None) => span.muted { "–" },
                    (None, Some(_)) if p.elsewhere => span.muted { "polled by another replica" },
                    (None, Some(_)) => (state("ok", "succeeded")),
                }
            }
        }
    }
}

/// The time of an RFC 3339 text, in Unix ms.
fn parse_ms(text: &str) -> Option<i64> {
    text.parse::<jiff::Timestamp>()
        .ok()
        .map(|t| t.as_millisecond())
}

/// One change: its event, sightings, the decision log, its starts and the operator's actions.
pub fn change(c: &ChangePage<'_>) -> String {
    let v = c.view;
    let body = html! {
        @if let Some(notice) = &c.notice { p.notice { (notice) } }
        h1 { "Change " code { (short(&v.id, 12)) } }
        p.muted { code { (v.id) } " · " a href={ "/api/changes/" (v.id) } { "JSON" } }
        @if let Some(summary) = &v.summary { p.summary { (shown(summary)) } }
        (event_summary(v))

        h2 { "Sightings" }
        table.sightings {
            thead { tr {
                th { "source" } th { "provider" } th { "delivery id" } th { "at" } th { "lag" }
            } }
            tbody {
                @for (i, s) in v.sightings.iter().enumerate() {
                    tr {
                        td { (s.source) }
                        td { (s.provider.as_deref().unwrap_or("–")) }
                        td { code { (s.delivery_id.as_deref().unwrap_or("–")) } }
                        td { (s.at) }
                        td { @if i == 0 { "first" } @else { (lag(s.lag_ms)) } }
                    }
                }
            }
        }

        h2 { "Decisions" }
        @match &v.decisions {
            None => p.muted {
                "No decision log: the change is waiting for its changed paths, or was stored \
                 before switchyard kept one."
            },
            Some(d) if d.is_empty() => p.muted { "No pipeline watched its repository." },
            Some(decisions) => table.decisions {
                thead { tr { th { "pipeline" } th { "decision" } th { "reason" } } }
                tbody {
                    @for d in decisions {
                        @let verdict = if d.start { "start" } else { "skip" };
                        tr { td { (d.pipeline) } td { (state(verdict, verdict)) } td { (shown(&d.reason)) } }
                    }
                }
            },
        }

        h2 { "Starts" }
        @if v.starts.is_empty() {
            p.muted { "None." }
        } @else {
            table.starts {
                thead { tr {
                    th { "start" } th { "pipeline" } th { "state" } th { "attempts" }
                    th { "last error" } th { "run" } th { "updated" } th {}
                } }
                tbody { @for s in &v.starts { (start_row(c.viewer, s, &v.id)) } }
            }
        }
        (replay_form(c))

        @if let Ok(json) = serde_json::to_string_pretty(&v.event) {
            details {
                summary { "the change event as stored" }
                pre { @for line in json.lines() { (shown(line)) "\n" } }
            }
        }
    };
    let title = format!("change {}", short(&v.id, 12));
    page(&title, c.viewer, Some(&format!("/changes/{}", v.id)), body)
}

fn start_row(viewer: &Viewer, s: &StartView, change: &str) -> Markup {
    html! {
        tr {
            td { code title=(s.id) { (short(&s.id, 12)) } }
            td {
                (s.pipeline)
                @if s.replay > 0 { br; span.muted { "replay " (s.replay) } }
            }
            td {
                (state(&s.state, &s.state))
                @if let Some(next) = &s.next_attempt_at { br; span.muted { "next attempt " (next) } }
            }
            td { (s.attempts) }
            td { pre { (s.last_error.as_deref().unwrap_or("")) } }
            td { (run(s.run.as_deref())) }
            td { (s.updated_at) }
            td { (start_actions(viewer, &s.id, &s.state, change)) }
        }
    }
}

fn replay_form(c: &ChangePage<'_>) -> Markup {
    html! {
        @match c.viewer.csrf() {
            None if *c.viewer == Viewer::Anonymous => p.muted {
                "Log in with the operator token to retry, drop or replay."
            },
            None => {}
            Some(_) if c.watching.is_empty() => p.muted {
                "No pipeline watches this repository today: nothing to replay."
            },
            Some(csrf) => {
                h2 { "Replay" }
                p.muted {
                    "Plans the change again with today's definitions: each pipeline that starts \
                     it now gets a new start, unless one is waiting, running or succeeded."
                }
                form.replay method="post" action={ "/changes/" (c.view.id) "/replay" } {
                    input type="hidden" name="csrf" value=(csrf);
                    select name="pipeline" {
                        option value="" { "every watching pipeline" }
                        @for p in c.watching { option value=(p) { (p) } }
                    }
                    " "
                    button type="submit" { "replay" }
                }
            }
        }
    }
}

fn event_summary(v: &ChangeView) -> Markup {
    let e = &v.event;
    let text = |key: &str| e.get(key).and_then(|x| x.as_str()).unwrap_or("");
    let flag = |key: &str| e.get(key).and_then(serde_json::Value::as_bool) == Some(true);
    let pull_request = e.get("pull_request").filter(|p| !p.is_null()).map(|pr| {
        let field = |k: &str| pr.get(k).map(|x| x.to_string()).unwrap_or_default();
        let text = |k: &str| pr.get(k).and_then(|a| a.as_str()).unwrap_or("");
        format!(
            "#{} {} (base {})",
            field("number"),
            text("action"),
            text("base_ref")
        )
    });
    let paths: Vec<&str> = e
        .get("changed_paths")
        .and_then(|p| p.as_array())
        .map(|a| a.iter().filter_map(|p| p.as_str()).collect())
        .unwrap_or_default();
    let complete = e
        .get("changed_paths_complete")
        .and_then(serde_json::Value::as_bool)
        .unwrap_or(true);
    const SHOWN: usize = 200;
    html! {
        dl.event {
            dt { "repository" } dd { (shown(&v.repository)) }
            dt { "kind" } dd { (v.kind) }
            dt { "ref" } dd { code { (shown(&v.git_ref)) } }
            dt { "commits" }
            dd {
                code { (short(text("before"), 12)) } " → " code { (short(&v.sha, 12)) }
                @if flag("created") { " (created)" }
                @if flag("deleted") { " (deleted)" }
            }
            @if let Some(n) = e.get("commit_count").and_then(serde_json::Value::as_u64) {
                dt { "commit count" } dd { (n) }
            }
            @if let Some(pr) = pull_request { dt { "pull request" } dd { (pr) } }
            dt { "received" } dd { (v.received_at) }
            @if !text("occurred_at").is_empty() { dt { "occurred" } dd { (text("occurred_at")) } }
            @if let Some(t) = &v.traceparent { dt { "traceparent" } dd { code { (t) } } }
            dt { "changed paths" }
            dd {
                (paths.len()) " path" @if paths.len() != 1 { "s" }
                @if !complete { " (incomplete: path filters pass)" }
                @if !paths.is_empty() {
                    br;
                    @for p in paths.iter().take(SHOWN) { code { (shown(p)) } br; }
                    @if paths.len() > SHOWN {
                        span.muted { "and " (paths.len() - SHOWN) " more" }
                    }
                }
            }
        }
    }
}

/// An error page; a 401 carries the login form.
pub fn error(e: &ErrorPage, viewer: &Viewer) -> String {
    let body = html! {
        h1 { (e.status) " " (e.title) }
        div.problem {
            pre { (e.message) }
            @if let Some(hint) = &e.hint { pre { "hint: " (hint) } }
        }
        @if !e.candidates.is_empty() {
            p { "It names these changes:" }
            ul.candidates {
                @for c in &e.candidates { li { a href={ "/changes/" (c) } { code { (c) } } } }
            }
        }
        @if let Some(next) = &e.login_next { p { (login_form(next)) } }
        p { a href=(e.back.as_deref().unwrap_or("/")) { "back" } }
    };
    // The login form of a 401 page is its body's; the header shows the state only.
    let here = if e.login_next.is_some() {
        None
    } else {
        Some("/")
    };
    let title = format!("{} {}", e.status, e.title);
    page(&title, viewer, here, body)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A value a payload, a runner or a definition might hold.
    const HOSTILE: &str = "<x onclick='1'>\"&";
    /// `HOSTILE` as the page must show it: text, never markup (a `'` needs no escaping, as
    /// every attribute value is in double quotes).
    const SHOWN: &str = "&lt;x onclick='1'&gt;&quot;&amp;";

    #[test]
    fn every_value_of_a_change_is_escaped() {
        use crate::changes::{SightingView, StartView};
        let h = || HOSTILE.to_owned();
        let view = ChangeView {
            id: "0123456789abcdef0123456789abcdef".into(),
            repository: h(),
            git_ref: h(),
            sha: h(),
            kind: h(),
            received_at: h(),
            traceparent: Some(h()),
            event: serde_json::json!({"before": h(), "changed_paths": [h()], "occurred_at": h(),
                "pull_request": {"number": 7, "action": h(), "base_ref": h()}}),
            sightings: vec![SightingView {
                source: h(),
                provider: Some(h()),
                delivery_id: Some(h()),
                at: h(),
                lag_ms: 0,
            }],
            decisions: Some(vec![crate::outcome::Decision {
                pipeline: h(),
                start: false,
                reason: h(),
            }]),
            starts: vec![StartView {
                id: h(),
                pipeline: h(),
                state: "dead".into(),
                attempts: 1,
                last_error: Some(h()),
                run: Some(format!("https://ci.example/{HOSTILE}")),
                replay: 0,
                created_at: h(),
                updated_at: h(),
                next_attempt_at: Some(h()),
            }],
            summary: Some(h()),
        };
        let viewer = Viewer::Operator { csrf: h() };
        let watching = vec![h()];
        let page = change(&ChangePage {
            viewer: &viewer,
            view: &view,
            watching: &watching,
            notice: Some(h()),
        });
        assert!(!page.contains("<x"), "{page}");
        // Every field above shows escaped: the ref, the reason, the error, the csrf value…
        assert!(page.matches(SHOWN).count() >= 20, "{page}");
        assert!(
            page.contains("<a href=\"https://ci.example/&lt;x"),
            "{page}"
        );
        assert!(
            page.contains(&format!("action=\"/starts/{SHOWN}/retry\"")),
            "{page}"
        );
        let missing = ErrorPage {
            status: 400,
            title: h(),
            message: h(),
            hint: Some(h()),
            candidates: vec![h()],
            login_next: Some(h()),
            back: Some(h()),
        };
        let page = error(&missing, &Viewer::Anonymous);
        assert!(!page.contains("<x"), "{page}");
        assert!(
            page.contains(&format!("<title>400 {SHOWN} · switchyard</title>")),
            "{page}"
        );
    }

    #[test]
    fn every_value_of_the_overview_is_escaped() {
        use crate::changes::{SourceLag, StartLine};
        use crate::store::StartState;
        let h = || HOSTILE.to_owned();
        let line = ChangeLine {
            id: h(),
            repository: h(),
            git_ref: h(),
            sha: h(),
            kind: h(),
            received_at: h(),
            first_source: h(),
            sightings: 2,
            lags: vec![
                SourceLag {
                    source: h(),
                    lag_ms: 0,
                },
                SourceLag {
                    source: h(),
                    lag_ms: 5,
                },
            ],
            starts: vec![StartLine {
                id: h(),
                pipeline: h(),
                state: h(),
                replay: 1,
                run: Some(h()),
            }],
        };
        let dead = StartRow {
            seq: 1,
            id: h(),
            change_id: h(),
            pipeline: h(),
            git_ref: h(),
            state: StartState::Dead,
            attempts: 3,
            next_attempt_ms: 0,
            last_error: Some(h()),
            run: None,
            created_ms: 0,
            updated_ms: 0,
            replay: 0,
        };
        let poll = RepoHealth {
            repository: h(),
            interval: std::time::Duration::from_secs(60),
            last_poll_ms: Some(0),
            last_ok_ms: None,
            last_error: Some(h()),
            failures: 2,
            elsewhere: false,
        };
        let viewer = Viewer::Unavailable(h());
        let page = overview(&Overview {
            viewer: &viewer,
            now_ms: 0,
            filter: ["repository", "pipeline", "since", "limit"].map(|k| (k, h())),
            changes: std::slice::from_ref(&line),
            older: Some(h()),
            dead: std::slice::from_ref(&dead),
            dead_total: 2,
            polls: std::slice::from_ref(&poll),
            missed: &[("webhook", 3)],
        });
        assert!(!page.contains("<x"), "{page}");
        assert!(page.matches(SHOWN).count() >= 15, "{page}");
        assert!(page.contains("<td>webhook</td><td>3</td>"), "{page}");
        assert!(page.contains("The newest 1 of 2;"), "{page}");
    }

    #[test]
    fn the_stylesheet_is_the_one_the_policy_allows() {
        // The Content-Security-Policy allows the hash of STYLE: the page must hold it verbatim.
        let page = error(&ErrorPage::default(), &Viewer::ReadOnly);
        assert!(page.contains(&format!("<style>{STYLE}</style>")), "{page}");
        assert!(
            page.starts_with("<!DOCTYPE html><html lang=\"en\">"),
            "{page}"
        );
        assert!(!page.contains("<script"), "{page}");
    }

    #[test]
    fn only_http_urls_become_links() {
        let cases = [
            ("https://ci.example.com/runs/7", true),
            ("HTTP://ci.example.com/", true),
            ("http://", false),
            ("https://", false),
            ("javascript:alert(1)", false),
            ("data:text/html,x", false),
            ("run-42", false),
            (" https://x", false),
        ];
        for (text, link) in cases {
            assert_eq!(is_http_url(text), link, "{text}");
        }
        assert_eq!(
            run(Some("javascript:alert(1)")).into_string(),
            "<code>javascript:alert(1)</code>"
        );
    }

    #[test]
    fn times_and_lags_read_as_people_say_them() {
        assert_eq!(ago(10_000, 10_000), "just now");
        assert_eq!(ago(70_000, 10_000), "60 s ago");
        assert_eq!(ago(3_600_000, 0), "60 min ago");
        assert_eq!(ago(3 * 86_400_000, 0), "3 d ago");
        assert_eq!(lag(120), "+120 ms");
        assert_eq!(lag(2_500), "+2.50 s");
        assert_eq!(duration(std::time::Duration::from_secs(30)), "30s");
        assert_eq!(duration(std::time::Duration::from_secs(300)), "5m");
        assert_eq!(duration(std::time::Duration::from_millis(250)), "250ms");
    }
}
