//! What reading every kind's definition shares: templates and maps of them, required values,
//! credentials (only as `env:`/`file:` references), URLs and names.

use crate::diag::{Diagnostics, MapReader, scalar};
use crate::secret::{self, SecretRef};
use crate::template::Template;
use crate::yaml::{Node, Value};

/// `${branch}${tag}`: the branch or tag name of the ref (one of them is always empty), what
/// GitLab's `ref` and Buildkite's `branch` expect.
pub(super) fn branch_or_tag() -> Template {
    Template::parse("${branch}${tag}").expect("a valid template")
}

/// Reads one template value; `what` names it in messages.
pub(super) fn read_template(node: &Node, what: &str, d: &mut Diagnostics) -> Option<Template> {
    let text = template_text(node, what, d)?;
    match Template::parse(text) {
        Ok(t) => Some(t),
        Err(e) => {
            d.error(node.pos, format!("{what}: {}", e.message), e.hint);
            None
        }
    }
}

/// A scalar of any kind (a number or `true` is its text), but not a list, a mapping or nothing.
pub(super) fn template_text<'n>(
    node: &'n Node,
    what: &str,
    d: &mut Diagnostics,
) -> Option<&'n str> {
    match &node.value {
        Value::Scalar(s, _) if !node.is_null() => Some(s),
        _ => {
            d.error(
                node.pos,
                format!("{what} must be a single value, found {}", node.kind_name()),
                format!("write {what} as text; `${{sha}}` and the other names are filled in at each start"),
            );
            None
        }
    }
}

/// How the names of a map of templates are checked.
#[derive(Clone, Copy)]
pub(super) struct NameRule {
    /// Whether a character may appear in a name.
    pub(super) allowed: fn(char) -> bool,
    pub(super) max_len: usize,
    /// The most entries the runner accepts.
    pub(super) max_entries: usize,
    /// What a valid name looks like, for the hint.
    pub(super) shape: &'static str,
}

pub(super) const ENV_NAME: NameRule = NameRule {
    allowed: |c| c.is_ascii_alphanumeric() || c == '_',
    max_len: 255,
    max_entries: 100,
    shape: "letters, digits and `_`",
};

pub(super) const ANY_NAME: NameRule = NameRule {
    allowed: |c| !c.is_control(),
    max_len: 255,
    max_entries: 100,
    shape: "text without control characters",
};

/// Reads `NAME: TEMPLATE` entries.
pub(super) fn read_templates(
    node: &Node,
    what: &str,
    rule: NameRule,
    d: &mut Diagnostics,
) -> Option<Vec<(String, Template)>> {
    let Value::Map(entries) = &node.value else {
        d.error(
            node.pos,
            format!(
                "{what} must be a mapping of names to values, found {}",
                node.kind_name()
            ),
            format!("write {what} as `NAME: value` lines"),
        );
        return None;
    };
    let before = d.error_count();
    if entries.len() > rule.max_entries {
        d.error(
            node.pos,
            format!(
                "{what} has {} entries, more than the {} the runner accepts",
                entries.len(),
                rule.max_entries
            ),
            "the runner would refuse the start: pass fewer values",
        );
    }
    let mut out = Vec::with_capacity(entries.len());
    for (key, value) in entries {
        let Some(name) = key.as_str().filter(|_| !key.is_null()) else {
            d.error(
                key.pos,
                format!("{what} has a name that is not text"),
                "names are text",
            );
            continue;
        };
        if name.is_empty() || name.len() > rule.max_len || !name.chars().all(rule.allowed) {
            d.error(
                key.pos,
                format!("{what} name {name:?} is not valid"),
                format!("use {}, at most {} characters", rule.shape, rule.max_len),
            );
            continue;
        }
        if out.iter().any(|(n, _)| n == name) {
            d.error(key.pos, format!("{what} names {name:?} twice"), "keep one");
            continue;
        }
        if let Some(t) = read_template(value, &format!("{what}.{name}"), d) {
            out.push((name.to_owned(), t));
        }
    }
    (d.error_count() == before).then_some(out)
}

/// An optional map of templates (empty when absent).
pub(super) fn templates(
    m: &MapReader<'_>,
    key: &str,
    what: &str,
    rule: NameRule,
    d: &mut Diagnostics,
) -> Option<Vec<(String, Template)>> {
    match m.get(key) {
        Some(n) => read_templates(n, &format!("{what}.{key}"), rule, d),
        None => Some(Vec::new()),
    }
}

/// An optional template, `default` when absent.
pub(super) fn template_or(
    m: &MapReader<'_>,
    key: &str,
    what: &str,
    default: Template,
    d: &mut Diagnostics,
) -> Option<Template> {
    match m.get(key) {
        Some(n) => read_template(n, &format!("{what}.{key}"), d),
        None => Some(default),
    }
}

/// A required plain value matching `valid`; `example` shows a good one.
pub(super) fn required(
    m: &MapReader<'_>,
    key: &str,
    what: &str,
    valid: fn(&str) -> bool,
    example: &str,
    d: &mut Diagnostics,
) -> Option<String> {
    let Some(node) = m.get(key) else {
        d.error(
            m.node().pos,
            format!("{what} needs `{key}`"),
            format!("add `{key}: {example}`"),
        );
        return None;
    };
    let text = scalar(node, &format!("{what}.{key}"), d)?;
    if !valid(text) {
        d.error(
            node.pos,
            format!("{what}.{key} {text:?} is not valid"),
            format!("write it like `{key}: {example}`"),
        );
        return None;
    }
    Some(text.to_owned())
}

/// The credential of a target: required, and only as a reference.
pub(super) fn token(
    m: &MapReader<'_>,
    key: &str,
    what: &str,
    example: &str,
    d: &mut Diagnostics,
) -> Option<SecretRef> {
    let Some(node) = m.get(key) else {
        d.error(
            m.node().pos,
            format!("{what} needs `{key}`, the credential it starts with"),
            format!("add `{key}: {example}`; the value is read from there at each start and never logged"),
        );
        return None;
    };
    secret::read_ref(node, &format!("{what}.{key}"), d)
}

pub(super) fn url(text: &str) -> bool {
    text.split_once("://").is_some_and(|(scheme, rest)| {
        matches!(scheme, "http" | "https") && !rest.is_empty() && !rest.starts_with('/')
    })
}

pub(super) fn slug(text: &str) -> bool {
    !text.is_empty()
        && text
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

/// `a`, `b` as the hints list keys.
pub(super) fn quoted(keys: &[&str]) -> String {
    keys.iter()
        .map(|k| format!("`{k}`"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// A required URL of one of `schemes` (`{what}.{key}`).
pub(super) fn required_url(
    m: &MapReader<'_>,
    key: &str,
    what: &str,
    schemes: &[&str],
    d: &mut Diagnostics,
) -> Option<String> {
    let Some(node) = m.get(key) else {
        d.error(
            m.node().pos,
            format!("{what} needs `{key}`"),
            format!("add `{key}: https://...`"),
        );
        return None;
    };
    let url = scalar(node, key, d)?;
    let ok = url.split_once("://").is_some_and(|(scheme, rest)| {
        schemes.contains(&scheme) && !rest.is_empty() && !rest.starts_with('/')
    });
    if !ok {
        d.error(
            node.pos,
            format!(
                "{what}.{key} {url:?} is not an {} URL",
                schemes.join(" or ")
            ),
            format!(
                "write a full URL, e.g. {}://host/path",
                schemes[schemes.len() - 1]
            ),
        );
        return None;
    }
    Some(url.to_owned())
}
