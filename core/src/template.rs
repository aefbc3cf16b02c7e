//! Templates of start targets' values: text with `${name}` placeholders filled from the change
//! and the start (`${sha}`, `${branch}`, `${start_id}`, …).
//!
//! A template is parsed when a definition is read, so an unknown name is a `check` error, never
//! an empty value at start time. Rendering substitutes the values as plain text: the result is
//! data for a JSON body, a form field or a query parameter, never read again as a template and
//! never given to a shell. `$${` writes a literal `${`.

use std::fmt;

use crate::event::{ChangeEvent, ChangeKind};

/// The names a template may use, in the order `check`'s hint lists them.
pub const NAMES: &[&str] = &[
    "ref",
    "branch",
    "tag",
    "sha",
    "before",
    "repository",
    "pipeline",
    "start_id",
    "change_id",
    "pull_request.number",
];

/// One value a template can take from a start.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Var {
    /// The full ref (`refs/heads/main`); for a pull request, its head branch.
    Ref,
    /// The branch name of a `refs/heads/` ref, else empty.
    Branch,
    /// The tag name of a `refs/tags/` ref, else empty.
    Tag,
    /// The commit to build: `after` of a push, the head of a pull request.
    Sha,
    /// `before` of a push (empty for a pull request).
    Before,
    /// The repository id (`github.com/acme/api`).
    Repository,
    Pipeline,
    StartId,
    ChangeId,
    /// The pull request's number, else empty.
    PullRequestNumber,
}

impl Var {
    fn parse(name: &str) -> Option<Var> {
        Some(match name {
            "ref" => Var::Ref,
            "branch" => Var::Branch,
            "tag" => Var::Tag,
            "sha" => Var::Sha,
            "before" => Var::Before,
            "repository" => Var::Repository,
            "pipeline" => Var::Pipeline,
            "start_id" => Var::StartId,
            "change_id" => Var::ChangeId,
            "pull_request.number" => Var::PullRequestNumber,
            _ => return None,
        })
    }

    fn name(self) -> &'static str {
        match self {
            Var::Ref => "ref",
            Var::Branch => "branch",
            Var::Tag => "tag",
            Var::Sha => "sha",
            Var::Before => "before",
            Var::Repository => "repository",
            Var::Pipeline => "pipeline",
            Var::StartId => "start_id",
            Var::ChangeId => "change_id",
            Var::PullRequestNumber => "pull_request.number",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Part {
    Text(String),
    Var(Var),
}

/// A parsed template.
#[derive(Clone, PartialEq, Eq)]
pub struct Template {
    parts: Vec<Part>,
}

/// Why a template was refused: the byte offset in its text, what is wrong and what to do.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TemplateError {
    pub offset: usize,
    pub message: String,
    pub hint: String,
}

/// What a template is rendered for: the change and the start.
#[derive(Clone, Copy, Debug)]
pub struct Context<'a> {
    pub event: &'a ChangeEvent,
    pub pipeline: &'a str,
    pub start_id: &'a str,
}

impl<'a> Context<'a> {
    /// The value of `var` for this start.
    pub fn value(&self, var: Var) -> std::borrow::Cow<'a, str> {
        use std::borrow::Cow;
        let e = self.event;
        match var {
            Var::Ref => Cow::Borrowed(e.git_ref.as_str()),
            Var::Branch => Cow::Borrowed(e.git_ref.strip_prefix("refs/heads/").unwrap_or("")),
            Var::Tag => Cow::Borrowed(e.git_ref.strip_prefix("refs/tags/").unwrap_or("")),
            Var::Sha => Cow::Borrowed(e.sha()),
            Var::Before => Cow::Borrowed(if e.kind == ChangeKind::Push {
                e.before.as_str()
            } else {
                ""
            }),
            Var::Repository => Cow::Borrowed(e.repository.as_str()),
            Var::Pipeline => Cow::Borrowed(self.pipeline),
            Var::StartId => Cow::Borrowed(self.start_id),
            Var::ChangeId => Cow::Borrowed(e.id.as_str()),
            Var::PullRequestNumber => match &e.pull_request {
                Some(pr) if e.kind == ChangeKind::PullRequest => Cow::Owned(pr.number.to_string()),
                _ => Cow::Borrowed(""),
            },
        }
    }
}

impl Template {
    /// Parses `text`.
    pub fn parse(text: &str) -> Result<Template, TemplateError> {
        let mut parts = Vec::new();
        let mut literal = String::new();
        let mut rest = text;
        let mut offset = 0;
        while let Some(i) = rest.find('$') {
            literal.push_str(&rest[..i]);
            let after = &rest[i..];
            if let Some(tail) = after.strip_prefix("$${") {
                literal.push_str("${");
                offset += i + 3;
                rest = tail;
                continue;
            }
            let Some(body) = after.strip_prefix("${") else {
                literal.push('$');
                offset += i + 1;
                rest = &after[1..];
                continue;
            };
            let Some(end) = body.find('}') else {
                return Err(TemplateError {
                    offset: offset + i,
                    message: "`${` is not closed".to_owned(),
                    hint: "close the name with `}`, or write `$${` for a literal `${`".to_owned(),
                });
            };
            let name = body[..end].trim();
            let Some(var) = Var::parse(name) else {
                let suggestion = crate::diag::did_you_mean(name, NAMES);
                let hint = match suggestion {
                    Some(s) => format!("did you mean `${{{s}}}`? Names: {}", NAMES.join(", ")),
                    None => format!(
                        "use one of {}, or write `$${{` for a literal `${{`",
                        NAMES.join(", ")
                    ),
                };
                return Err(TemplateError {
                    offset: offset + i,
                    message: format!("unknown template name `${{{name}}}`"),
                    hint,
                });
            };
            if !literal.is_empty() {
                parts.push(Part::Text(std::mem::take(&mut literal)));
            }
            parts.push(Part::Var(var));
            offset += i + 2 + end + 1;
            rest = &body[end + 1..];
        }
        literal.push_str(rest);
        if !literal.is_empty() {
            parts.push(Part::Text(literal));
        }
        Ok(Template { parts })
    }

    /// A template that is only `var`.
    pub fn var(var: Var) -> Template {
        Template {
            parts: vec![Part::Var(var)],
        }
    }

    /// The text with every name replaced by its value for `ctx`, as data.
    pub fn render(&self, ctx: &Context<'_>) -> String {
        match self.parts.as_slice() {
            [] => String::new(),
            [Part::Text(t)] => t.clone(),
            [Part::Var(v)] => ctx.value(*v).into_owned(),
            parts => {
                let mut out = String::new();
                for part in parts {
                    match part {
                        Part::Text(t) => out.push_str(t),
                        Part::Var(v) => out.push_str(&ctx.value(*v)),
                    }
                }
                out
            }
        }
    }

    /// True when the template holds no name (its text is the same for every start).
    pub fn is_constant(&self) -> bool {
        self.parts.iter().all(|p| matches!(p, Part::Text(_)))
    }
}

impl fmt::Debug for Template {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// The template as it would be written.
impl fmt::Display for Template {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for part in &self.parts {
            match part {
                Part::Text(t) => f.write_str(&t.replace("${", "$${"))?,
                Part::Var(v) => write!(f, "${{{}}}", v.name())?,
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(kind: &str) -> ChangeEvent {
        let json = match kind {
            "push" => serde_json::json!({
                "schema": "switchyard.change/v1",
                "repository": "github.com/acme/api",
                "kind": "push",
                "ref": "refs/heads/main",
                "before": "1111111111111111111111111111111111111111",
                "after": "2222222222222222222222222222222222222222",
                "created": false, "deleted": false, "commit_count": 1,
                "changed_paths": ["a"], "changed_paths_complete": true,
                "pull_request": null,
                "source": {"kind": "webhook", "provider": "github"},
                "occurred_at": null, "received_at": "2026-11-26T10:00:00.120Z"
            }),
            _ => serde_json::json!({
                "schema": "switchyard.change/v1",
                "repository": "github.com/acme/api",
                "kind": "pull_request",
                "ref": "refs/heads/main",
                "before": "1111111111111111111111111111111111111111",
                "after": "3333333333333333333333333333333333333333",
                "created": false, "deleted": false, "commit_count": null,
                "changed_paths": [], "changed_paths_complete": false,
                "pull_request": {"number": 42, "action": "opened", "merged": false,
                    "base_ref": "refs/heads/main", "base_sha": null,
                    "head_sha": "3333333333333333333333333333333333333333"},
                "source": {"kind": "webhook", "provider": "github"},
                "occurred_at": null, "received_at": "2026-11-26T10:00:00.120Z"
            }),
        };
        let source = crate::event::Source {
            kind: crate::event::SourceKind::Manual,
            provider: None,
            delivery_id: None,
        };
        ChangeEvent::from_json(json.to_string().as_bytes(), source).expect("a valid event")
    }

    fn render(text: &str, e: &ChangeEvent) -> String {
        let ctx = Context {
            event: e,
            pipeline: "api",
            start_id: "s1",
        };
        Template::parse(text).expect(text).render(&ctx)
    }

    #[test]
    fn names_are_filled_from_the_change_and_the_start() {
        let push = event("push");
        assert_eq!(
            render("${branch}@${sha} ${pipeline}/${start_id}", &push),
            "main@2222222222222222222222222222222222222222 api/s1"
        );
        assert_eq!(render("${tag}|${pull_request.number}", &push), "|");
        assert_eq!(
            render("${repository} ${ref}", &push),
            "github.com/acme/api refs/heads/main"
        );
        assert_eq!(render("${change_id}", &push), push.id);
        assert_eq!(render("${before}", &push), push.before);
        let pr = event("pull_request");
        assert_eq!(render("pr/${pull_request.number}", &pr), "pr/42");
        assert_eq!(
            render("${sha}", &pr),
            "3333333333333333333333333333333333333333"
        );
        assert_eq!(render("${before}", &pr), "");
    }

    #[test]
    fn values_are_data_and_dollars_stay_text() {
        let push = event("push");
        assert_eq!(
            render("cost $5, $${sha} and $", &push),
            "cost $5, ${sha} and $"
        );
        assert_eq!(render("", &push), "");
        assert!(Template::parse("plain").expect("plain").is_constant());
        assert!(!Template::parse("${sha}").expect("sha").is_constant());
        assert_eq!(
            Template::parse("a $${b} ${ sha }")
                .expect("parse")
                .to_string(),
            "a $${b} ${sha}"
        );
    }

    #[test]
    fn unknown_and_unclosed_names_are_errors_with_their_offset() {
        let e = Template::parse("x ${shaa}").expect_err("unknown");
        assert_eq!(e.offset, 2);
        assert_eq!(e.message, "unknown template name `${shaa}`");
        assert!(e.hint.starts_with("did you mean `${sha}`?"), "{}", e.hint);
        let e = Template::parse("ab${sha").expect_err("unclosed");
        assert_eq!(e.offset, 2);
        let e = Template::parse("${}").expect_err("empty");
        assert!(e.message.contains("`${}`"), "{}", e.message);
    }
}
