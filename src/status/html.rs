//! The status page's HTML: escaping, and the overview, change and error pages rendered from
//! plain data. No script anywhere; one inline stylesheet ([`STYLE`], allowed by its hash in
//! the Content-Security-Policy); every value that came from a payload, a definition, a runner
//! or a request goes through [`Esc`].

use std::fmt::{self, Write as _};

use crate::changes::{ChangeLine, ChangeView, StartView, short, when};
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

/// Text escaped for HTML, for element content and quoted attribute values alike.
#[derive(Clone, Copy, Debug)]
pub struct Esc<'a>(pub &'a str);

impl fmt::Display for Esc<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut rest = self.0;
        while let Some(i) = rest.find(['&', '<', '>', '"', '\'']) {
            f.write_str(&rest[..i])?;
            f.write_str(match rest.as_bytes()[i] {
                b'&' => "&amp;",
                b'<' => "&lt;",
                b'>' => "&gt;",
                b'"' => "&quot;",
                _ => "&#39;",
            })?;
            rest = &rest[i + 1..];
        }
        f.write_str(rest)
    }
}

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
fn page(title: &str, viewer: &Viewer, here: Option<&str>, body: &str) -> String {
    let mut out = String::with_capacity(body.len() + STYLE.len() + 1024);
    let _ = write!(
        out,
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>{} · switchyard</title><link rel=\"icon\" href=\"data:,\">\
         <style>{STYLE}</style></head>\n<body><header><a class=\"brand\" href=\"/\">switchyard</a>\
         <span class=\"who\">",
        Esc(title)
    );
    match viewer {
        Viewer::ReadOnly => {
            out.push_str("<span class=\"muted\">read-only (no operator_token configured)</span>")
        }
        Viewer::Unavailable(reference) => {
            let _ = write!(
                out,
                "<span class=\"muted\">read-only: the operator token ({}) cannot be read</span>",
                Esc(reference)
            );
        }
        Viewer::Anonymous => match here {
            Some(here) => login_form(&mut out, here),
            None => out.push_str("<span class=\"muted\">not logged in</span>"),
        },
        Viewer::Operator { csrf } => {
            let _ = write!(
                out,
                "operator <form method=\"post\" action=\"/logout\">\
                 <input type=\"hidden\" name=\"csrf\" value=\"{}\">\
                 <button type=\"submit\">log out</button></form>",
                Esc(csrf)
            );
        }
    }
    out.push_str("</span></header>\n<main>\n");
    out.push_str(body);
    out.push_str("</main></body></html>\n");
    out
}

fn login_form(out: &mut String, next: &str) {
    let _ = write!(
        out,
        "<form class=\"login\" method=\"post\" action=\"/login\">\
         <input type=\"hidden\" name=\"next\" value=\"{}\">\
         <label>operator token <input type=\"password\" name=\"token\" \
         autocomplete=\"current-password\" required></label> \
         <button type=\"submit\">log in</button></form>",
        Esc(next)
    );
}

/// A start's state as a badge.
fn state(out: &mut String, label: &str, state: &str) {
    let _ = write!(
        out,
        "<span class=\"state {}\">{}</span>",
        Esc(state),
        Esc(label)
    );
}

/// A run: a link when it is an http(s) URL, else its id as code.
fn run(out: &mut String, run: Option<&str>) {
    match run {
        Some(r) if is_http_url(r) => {
            let _ = write!(
                out,
                "<a href=\"{0}\" rel=\"noopener noreferrer\">{0}</a>",
                Esc(r)
            );
        }
        Some(r) => {
            let _ = write!(out, "<code>{}</code>", Esc(r));
        }
        None => out.push_str("<span class=\"muted\">–</span>"),
    }
}

/// Whether `text` is an `http://` or `https://` URL (any case), the only runs made links.
pub fn is_http_url(text: &str) -> bool {
    let lower = text.get(..8).unwrap_or(text).to_ascii_lowercase();
    (lower.starts_with("http://") && text.len() > 7) || (lower == "https://" && text.len() > 8)
}

/// The retry and drop buttons of a start, for an operator, when the start is dead or failed.
fn start_actions(out: &mut String, viewer: &Viewer, id: &str, state: &str, change: &str) {
    let Some(csrf) = viewer.csrf() else {
        return;
    };
    if state != "dead" && state != "failed" {
        return;
    }
    for (action, class) in [("retry", ""), ("drop", " class=\"danger\"")] {
        let _ = write!(
            out,
            "<form method=\"post\" action=\"/starts/{}/{action}\">\
             <input type=\"hidden\" name=\"csrf\" value=\"{}\">\
             <input type=\"hidden\" name=\"change\" value=\"{}\">\
             <button type=\"submit\" name=\"action\" value=\"{action}\"{class}>{action}</button></form> ",
            Esc(id),
            Esc(csrf),
            Esc(change)
        );
    }
}

/// The overview: recent changes, dead letters, polled repositories, missed changes.
pub fn overview(o: &Overview<'_>) -> String {
    let mut b = String::new();
    b.push_str("<h1>Recent changes</h1>\n<form class=\"filter\" method=\"get\" action=\"/\">");
    for (name, value) in &o.filter {
        let _ = write!(
            b,
            "<label>{name}<br><input name=\"{name}\" value=\"{}\" size=\"{}\"></label>",
            Esc(value),
            if *name == "repository" { 28 } else { 10 }
        );
    }
    b.push_str("<button type=\"submit\">show</button> <a href=\"/api/changes\">JSON</a></form>\n");
    if o.changes.is_empty() {
        b.push_str("<p class=\"muted\">No changes stored (for this filter).</p>\n");
    } else {
        b.push_str(
            "<table class=\"changes\"><thead><tr><th>change</th><th>received</th>\
             <th>repository</th><th>ref</th><th>sha</th><th>seen by</th><th>starts</th>\
             </tr></thead><tbody>\n",
        );
        for l in o.changes {
            let _ = write!(
                b,
                "<tr><td><a href=\"/changes/{0}\"><code>{1}</code></a></td><td><span class=\"when\">{2}</span><br>\
                 <span class=\"muted\">{3}</span></td><td>{4}</td><td><code>{5}</code></td>\
                 <td><code>{6}</code></td><td>",
                Esc(&l.id),
                Esc(short(&l.id, 12)),
                Esc(&l.received_at),
                Esc(&ago(o.now_ms, parse_ms(&l.received_at).unwrap_or(o.now_ms))),
                Esc(&l.repository),
                Esc(&l.git_ref),
                Esc(short(&l.sha, 7)),
            );
            let _ = write!(b, "{}", Esc(&l.first_source));
            for s in l.lags.iter().skip(1) {
                let _ = write!(
                    b,
                    "<br><span class=\"lag\">{} {}</span>",
                    Esc(&s.source),
                    Esc(&lag(s.lag_ms))
                );
            }
            b.push_str("</td><td>");
            if l.starts.is_empty() {
                b.push_str("<span class=\"muted\">none</span>");
            }
            for s in &l.starts {
                let label = if s.replay > 0 {
                    format!("{}: {} (replay {})", s.pipeline, s.state, s.replay)
                } else {
                    format!("{}: {}", s.pipeline, s.state)
                };
                state(&mut b, &label, &s.state);
            }
            b.push_str("</td></tr>\n");
        }
        b.push_str("</tbody></table>\n");
    }

    let _ = writeln!(b, "<h2>Dead letters ({})</h2>", o.dead_total);
    if o.dead.is_empty() {
        b.push_str(
            "<p class=\"muted\">None: every start either started or is still being tried.</p>\n",
        );
    } else {
        if o.dead_total > o.dead.len() {
            let _ = writeln!(
                b,
                "<p class=\"muted\">The newest {} of {}; <code>switchyard outbox list</code> lists them all.</p>",
                o.dead.len(),
                o.dead_total
            );
        }
        b.push_str(
            "<table class=\"dead-letters\"><thead><tr><th>start</th><th>pipeline</th><th>change</th>\
             <th>attempts</th><th>last error</th><th>updated</th><th></th></tr></thead><tbody>\n",
        );
        for s in o.dead {
            let _ = write!(
                b,
                "<tr><td><code>{}</code></td><td>{}</td><td><a href=\"/changes/{}\"><code>{}</code></a></td>\
                 <td>{}</td><td><pre>{}</pre></td><td>{}</td><td>",
                Esc(short(&s.id, 12)),
                Esc(&s.pipeline),
                Esc(&s.change_id),
                Esc(short(&s.change_id, 12)),
                s.attempts,
                Esc(s.last_error.as_deref().unwrap_or("")),
                Esc(&when(s.updated_ms)),
            );
            start_actions(&mut b, o.viewer, &s.id, s.state.as_str(), &s.change_id);
            b.push_str("</td></tr>\n");
        }
        b.push_str("</tbody></table>\n");
    }

    b.push_str("<h2>Polled repositories</h2>\n");
    if o.polls.is_empty() {
        b.push_str(
            "<p class=\"muted\">None configured (<code>poll:</code> in switchyard.yaml).</p>\n",
        );
    } else {
        b.push_str(
            "<table class=\"polls\"><thead><tr><th>repository</th><th>interval</th>\
             <th>last poll</th><th>last success</th><th>result</th></tr></thead><tbody>\n",
        );
        for p in o.polls {
            let _ = write!(
                b,
                "<tr><td>{}</td><td>{}</td><td>",
                Esc(&p.repository),
                Esc(&duration(p.interval))
            );
            let at = |b: &mut String, ms: Option<i64>| match ms {
                Some(ms) => {
                    let _ = write!(
                        b,
                        "<span class=\"when\">{}</span><br><span class=\"muted\">{}</span>",
                        Esc(&when(ms)),
                        Esc(&ago(o.now_ms, ms))
                    );
                }
                None => b.push_str("<span class=\"muted\">not yet</span>"),
            };
            at(&mut b, p.last_poll_ms);
            b.push_str("</td><td>");
            at(&mut b, p.last_ok_ms);
            b.push_str("</td><td>");
            match (&p.last_error, p.last_poll_ms) {
                (Some(e), _) => {
                    let label = format!("error, {} in a row", p.failures);
                    state(&mut b, &label, "failed");
                    let _ = write!(b, "<pre>{}</pre>", Esc(e));
                }
                (None, None) => b.push_str("<span class=\"muted\">–</span>"),
                (None, Some(_)) if p.elsewhere => {
                    b.push_str("<span class=\"muted\">polled by another replica</span>");
                }
                (None, Some(_)) => state(&mut b, "ok", "succeeded"),
            }
            b.push_str("</td></tr>\n");
        }
        b.push_str("</tbody></table>\n");
    }

    b.push_str(
        "<h2>Missed by push sources</h2>\n<p class=\"muted\">Changes polling found that a push \
         source delivering for the repository never announced (<code>switchyard_missed_total</code>, \
         since this process started).</p>\n<table class=\"missed\"><thead><tr><th>source</th>\
         <th>missed</th></tr></thead><tbody>\n",
    );
    for (source, n) in o.missed {
        let _ = writeln!(b, "<tr><td>{}</td><td>{n}</td></tr>", Esc(source));
    }
    b.push_str("</tbody></table>\n");
    page("status", o.viewer, Some("/"), &b)
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
    let mut b = String::new();
    if let Some(notice) = &c.notice {
        let _ = writeln!(b, "<p class=\"notice\">{}</p>", Esc(notice));
    }
    let _ = write!(
        b,
        "<h1>Change <code>{}</code></h1>\n<p class=\"muted\"><code>{}</code> · \
         <a href=\"/api/changes/{}\">JSON</a></p>\n",
        Esc(short(&v.id, 12)),
        Esc(&v.id),
        Esc(&v.id)
    );
    if let Some(summary) = &v.summary {
        let _ = writeln!(b, "<p class=\"summary\">{}</p>", Esc(summary));
    }
    event_summary(&mut b, v);

    b.push_str(
        "<h2>Sightings</h2>\n<table class=\"sightings\"><thead><tr><th>source</th>\
                <th>provider</th><th>delivery id</th><th>at</th><th>lag</th></tr></thead><tbody>\n",
    );
    for (i, s) in v.sightings.iter().enumerate() {
        let _ = writeln!(
            b,
            "<tr><td>{}</td><td>{}</td><td><code>{}</code></td><td>{}</td><td>{}</td></tr>",
            Esc(&s.source),
            Esc(s.provider.as_deref().unwrap_or("–")),
            Esc(s.delivery_id.as_deref().unwrap_or("–")),
            Esc(&s.at),
            if i == 0 {
                "first".to_owned()
            } else {
                Esc(&lag(s.lag_ms)).to_string()
            },
        );
    }
    b.push_str("</tbody></table>\n");

    b.push_str("<h2>Decisions</h2>\n");
    match &v.decisions {
        None => b.push_str(
            "<p class=\"muted\">No decision log: the change is waiting for its changed paths, \
             or was stored before switchyard kept one.</p>\n",
        ),
        Some(d) if d.is_empty() => {
            b.push_str("<p class=\"muted\">No pipeline watched its repository.</p>\n");
        }
        Some(decisions) => {
            b.push_str(
                "<table class=\"decisions\"><thead><tr><th>pipeline</th><th>decision</th>\
                 <th>reason</th></tr></thead><tbody>\n",
            );
            for d in decisions {
                let verdict = if d.start { "start" } else { "skip" };
                let _ = write!(b, "<tr><td>{}</td><td>", Esc(&d.pipeline));
                state(&mut b, verdict, verdict);
                let _ = writeln!(b, "</td><td>{}</td></tr>", Esc(&d.reason));
            }
            b.push_str("</tbody></table>\n");
        }
    }

    b.push_str("<h2>Starts</h2>\n");
    if v.starts.is_empty() {
        b.push_str("<p class=\"muted\">None.</p>\n");
    } else {
        b.push_str(
            "<table class=\"starts\"><thead><tr><th>start</th><th>pipeline</th><th>state</th>\
             <th>attempts</th><th>last error</th><th>run</th><th>updated</th><th></th></tr>\
             </thead><tbody>\n",
        );
        for s in &v.starts {
            start_row(&mut b, c.viewer, s, &v.id);
        }
        b.push_str("</tbody></table>\n");
    }
    replay_form(&mut b, c);

    if let Ok(json) = serde_json::to_string_pretty(&v.event) {
        let _ = writeln!(
            b,
            "<details><summary>the change event as stored</summary><pre>{}</pre></details>",
            Esc(&json)
        );
    }
    let title = format!("change {}", short(&v.id, 12));
    page(&title, c.viewer, Some(&format!("/changes/{}", v.id)), &b)
}

fn start_row(b: &mut String, viewer: &Viewer, s: &StartView, change: &str) {
    let replay = if s.replay > 0 {
        format!("<br><span class=\"muted\">replay {}</span>", s.replay)
    } else {
        String::new()
    };
    let _ = write!(
        b,
        "<tr><td><code title=\"{}\">{}</code></td><td>{}{replay}</td><td>",
        Esc(&s.id),
        Esc(short(&s.id, 12)),
        Esc(&s.pipeline),
    );
    state(b, &s.state, &s.state);
    if let Some(next) = &s.next_attempt_at {
        let _ = write!(
            b,
            "<br><span class=\"muted\">next attempt {}</span>",
            Esc(next)
        );
    }
    let _ = write!(
        b,
        "</td><td>{}</td><td><pre>{}</pre></td><td>",
        s.attempts,
        Esc(s.last_error.as_deref().unwrap_or(""))
    );
    run(b, s.run.as_deref());
    let _ = write!(b, "</td><td>{}</td><td>", Esc(&s.updated_at));
    start_actions(b, viewer, &s.id, &s.state, change);
    b.push_str("</td></tr>\n");
}

fn replay_form(b: &mut String, c: &ChangePage<'_>) {
    let Some(csrf) = c.viewer.csrf() else {
        if *c.viewer == Viewer::Anonymous {
            b.push_str(
                "<p class=\"muted\">Log in with the operator token to retry, drop or replay.</p>\n",
            );
        }
        return;
    };
    if c.watching.is_empty() {
        b.push_str("<p class=\"muted\">No pipeline watches this repository today: nothing to replay.</p>\n");
        return;
    }
    let _ = write!(
        b,
        "<h2>Replay</h2>\n<p class=\"muted\">Plans the change again with today's definitions: \
         each pipeline that starts it now gets a new start, unless one is waiting, running or \
         succeeded.</p>\n<form class=\"replay\" method=\"post\" action=\"/changes/{}/replay\">\
         <input type=\"hidden\" name=\"csrf\" value=\"{}\"><select name=\"pipeline\">\
         <option value=\"\">every watching pipeline</option>",
        Esc(&c.view.id),
        Esc(csrf)
    );
    for p in c.watching {
        let _ = write!(b, "<option value=\"{0}\">{0}</option>", Esc(p));
    }
    b.push_str("</select> <button type=\"submit\">replay</button></form>\n");
}

fn event_summary(b: &mut String, v: &ChangeView) {
    let e = &v.event;
    let text = |key: &str| e.get(key).and_then(|x| x.as_str()).unwrap_or("");
    let flag = |key: &str| e.get(key).and_then(serde_json::Value::as_bool) == Some(true);
    b.push_str("<dl class=\"event\">");
    let mut row = |name: &str, value: &str| {
        let _ = write!(b, "<dt>{name}</dt><dd>{value}</dd>");
    };
    row("repository", &Esc(&v.repository).to_string());
    row("kind", &Esc(&v.kind).to_string());
    row("ref", &format!("<code>{}</code>", Esc(&v.git_ref)));
    let mut moved = format!(
        "<code>{}</code> → <code>{}</code>",
        Esc(short(text("before"), 12)),
        Esc(short(&v.sha, 12))
    );
    if flag("created") {
        moved.push_str(" (created)");
    }
    if flag("deleted") {
        moved.push_str(" (deleted)");
    }
    row("commits", &moved);
    if let Some(n) = e.get("commit_count").and_then(serde_json::Value::as_u64) {
        row("commit count", &n.to_string());
    }
    if let Some(pr) = e.get("pull_request").filter(|p| !p.is_null()) {
        let field = |k: &str| pr.get(k).map(|x| x.to_string()).unwrap_or_default();
        row(
            "pull request",
            &Esc(&format!(
                "#{} {} (base {})",
                field("number"),
                pr.get("action").and_then(|a| a.as_str()).unwrap_or(""),
                pr.get("base_ref").and_then(|a| a.as_str()).unwrap_or("")
            ))
            .to_string(),
        );
    }
    row("received", &Esc(&v.received_at).to_string());
    if !text("occurred_at").is_empty() {
        row("occurred", &Esc(text("occurred_at")).to_string());
    }
    if let Some(t) = &v.traceparent {
        row("traceparent", &format!("<code>{}</code>", Esc(t)));
    }
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
    let mut list = format!(
        "{} path{}{}",
        paths.len(),
        if paths.len() == 1 { "" } else { "s" },
        if complete {
            ""
        } else {
            " (incomplete: path filters pass)"
        }
    );
    if !paths.is_empty() {
        list.push_str("<br>");
        for p in paths.iter().take(SHOWN) {
            let _ = write!(list, "<code>{}</code><br>", Esc(p));
        }
        if paths.len() > SHOWN {
            let _ = write!(
                list,
                "<span class=\"muted\">and {} more</span>",
                paths.len() - SHOWN
            );
        }
    }
    row("changed paths", &list);
    b.push_str("</dl>\n");
}

/// An error page; a 401 carries the login form.
pub fn error(e: &ErrorPage, viewer: &Viewer) -> String {
    let mut b = String::new();
    let _ = write!(
        b,
        "<h1>{} {}</h1>\n<div class=\"problem\"><pre>{}</pre>",
        e.status,
        Esc(&e.title),
        Esc(&e.message)
    );
    if let Some(hint) = &e.hint {
        let _ = write!(b, "<pre>hint: {}</pre>", Esc(hint));
    }
    b.push_str("</div>\n");
    if !e.candidates.is_empty() {
        b.push_str("<p>It names these changes:</p>\n<ul class=\"candidates\">");
        for c in &e.candidates {
            let _ = write!(
                b,
                "<li><a href=\"/changes/{0}\"><code>{0}</code></a></li>",
                Esc(c)
            );
        }
        b.push_str("</ul>\n");
    }
    if let Some(next) = &e.login_next {
        b.push_str("<p>");
        login_form(&mut b, next);
        b.push_str("</p>\n");
    }
    let _ = writeln!(
        b,
        "<p><a href=\"{}\">back</a></p>",
        Esc(e.back.as_deref().unwrap_or("/"))
    );
    // The login form of a 401 page is its body's; the header shows the state only.
    let here = if e.login_next.is_some() {
        None
    } else {
        Some("/")
    };
    let title = format!("{} {}", e.status, e.title);
    page(&title, viewer, here, &b)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escaping_leaves_no_markup() {
        let cases = [
            ("plain text", "plain text"),
            (
                "refs/heads/x<script>alert(1)</script>",
                "refs/heads/x&lt;script&gt;alert(1)&lt;/script&gt;",
            ),
            ("a & b", "a &amp; b"),
            ("\"quoted\" 'single'", "&quot;quoted&quot; &#39;single&#39;"),
            ("<<>>", "&lt;&lt;&gt;&gt;"),
            ("ünïcödé → ok", "ünïcödé → ok"),
            ("", ""),
        ];
        for (input, want) in cases {
            assert_eq!(Esc(input).to_string(), want, "{input}");
        }
    }

    /// A value a payload, a runner or a definition might hold.
    const HOSTILE: &str = "<x onclick='1'>\"&";

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
        assert!(!page.contains("'1'"), "{page}");
        assert!(
            page.contains("&lt;x onclick=&#39;1&#39;&gt;&quot;&amp;"),
            "{page}"
        );
        assert!(
            page.contains("<a href=\"https://ci.example/&lt;x"),
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
