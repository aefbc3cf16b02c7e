//! A YAML document as a tree of nodes that remember where they stand in the file.
//!
//! Built from saphyr-parser's events, so that every configuration error can name the exact
//! line and column. Scalars stay text: the schema code decides what a scalar means (YAML 1.1's
//! `on: yes` booleans do not exist here). Aliases are expanded within a node budget, so a
//! "billion laughs" file is an error, not an allocation storm.

use std::borrow::Cow;
use std::collections::HashMap;

use saphyr_parser::{Event, Parser, ScalarStyle, Span, SpannedEventReceiver};

/// A place in a file: 1-based line and column (in characters).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Pos {
    pub line: u32,
    pub col: u32,
}

/// One node of a YAML document.
#[derive(Clone, Debug, PartialEq)]
pub struct Node {
    pub value: Value,
    pub pos: Pos,
    /// For a scalar written on one line with no escapes: its text starts at this column, so a
    /// character offset into the value is a column offset in the file.
    exact_col: Option<u32>,
}

/// What a node holds.
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    /// A scalar as written, and whether it was plain (unquoted).
    Scalar(String, bool),
    Seq(Vec<Node>),
    Map(Vec<(Node, Node)>),
}

/// A document that is not well-formed YAML, or that this loader refuses.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct YamlError {
    pub pos: Pos,
    pub message: String,
    pub hint: &'static str,
}

/// Nodes one document may expand to (aliases included).
const NODE_BUDGET: usize = 200_000;

impl Node {
    /// The scalar's text, if this is a scalar.
    pub fn as_str(&self) -> Option<&str> {
        match &self.value {
            Value::Scalar(s, _) => Some(s),
            _ => None,
        }
    }

    /// YAML's null: an empty or `~`/`null` plain scalar.
    pub fn is_null(&self) -> bool {
        matches!(&self.value, Value::Scalar(s, true) if matches!(s.as_str(), "" | "~" | "null" | "Null" | "NULL"))
    }

    /// The position of the character at `offset` (in characters) inside a scalar's text, where it
    /// can be known exactly; otherwise the scalar's own position.
    pub fn pos_at(&self, offset: usize) -> Pos {
        match self.exact_col {
            Some(col) => Pos {
                line: self.pos.line,
                col: col + offset as u32,
            },
            None => self.pos,
        }
    }

    /// A word for the kind of node, for error messages.
    pub fn kind_name(&self) -> &'static str {
        match &self.value {
            Value::Scalar(..) if self.is_null() => "nothing",
            Value::Scalar(..) => "a scalar",
            Value::Seq(_) => "a list",
            Value::Map(_) => "a mapping",
        }
    }
}

/// Parses one YAML document. An empty document is a null scalar at 1:1.
pub fn parse(text: &str) -> Result<Node, YamlError> {
    let mut builder = Builder::default();
    let mut parser = Parser::new_from_str(text);
    if let Err(e) = parser.load(&mut builder, true) {
        let m = e.marker();
        return Err(YamlError {
            pos: Pos {
                line: m.line() as u32,
                col: m.col() as u32 + 1,
            },
            message: format!("invalid YAML: {}", e.info()),
            hint: "check the indentation and quoting around this spot",
        });
    }
    if let Some(err) = builder.error {
        return Err(err);
    }
    let mut docs = builder.docs;
    match docs.len() {
        0 => Ok(Node {
            value: Value::Scalar(String::new(), true),
            pos: Pos { line: 1, col: 1 },
            exact_col: None,
        }),
        1 => Ok(docs.remove(0)),
        _ => Err(YamlError {
            pos: docs[1].pos,
            message: "more than one YAML document in this file".to_owned(),
            hint: "keep one document per file: remove the `---` separator",
        }),
    }
}

enum Frame {
    Seq(Node, usize),
    Map(Node, usize, Option<Node>),
}

#[derive(Default)]
struct Builder {
    stack: Vec<Frame>,
    docs: Vec<Node>,
    anchors: HashMap<usize, Node>,
    nodes: usize,
    error: Option<YamlError>,
}

fn pos_of(span: &Span) -> Pos {
    Pos {
        line: span.start.line() as u32,
        col: span.start.col() as u32 + 1,
    }
}

impl Builder {
    fn fail(&mut self, pos: Pos, message: String, hint: &'static str) {
        if self.error.is_none() {
            self.error = Some(YamlError { pos, message, hint });
        }
    }

    fn count(&mut self, n: usize, pos: Pos) -> bool {
        self.nodes += n;
        if self.nodes > NODE_BUDGET {
            self.fail(
                pos,
                format!("the document expands to more than {NODE_BUDGET} nodes"),
                "aliases that repeat large anchors multiply the size: write the values out",
            );
            return false;
        }
        true
    }

    fn insert(&mut self, node: Node) {
        match self.stack.last_mut() {
            None => self.docs.push(node),
            Some(Frame::Seq(seq, _)) => {
                if let Value::Seq(items) = &mut seq.value {
                    items.push(node);
                }
            }
            Some(Frame::Map(map, _, pending_key)) => match pending_key.take() {
                None => *pending_key = Some(node),
                Some(key) => {
                    if let Value::Map(entries) = &mut map.value {
                        let duplicate = key.as_str().and_then(|k| {
                            entries.iter().find(|(other, _)| other.as_str() == Some(k))
                        });
                        if let Some((first, _)) = duplicate {
                            let (line, col) = (first.pos.line, first.pos.col);
                            let message = format!(
                                "duplicate key {:?} (first at line {line}, column {col})",
                                key.as_str().unwrap_or_default()
                            );
                            let pos = key.pos;
                            self.fail(pos, message, "keep one of the two entries");
                            return;
                        }
                        entries.push((key, node));
                    }
                }
            },
        }
    }

    fn finish_container(&mut self) {
        let (node, anchor) = match self.stack.pop() {
            Some(Frame::Seq(node, anchor)) => (node, anchor),
            Some(Frame::Map(node, anchor, _)) => (node, anchor),
            None => return,
        };
        if anchor != 0 {
            self.anchors.insert(anchor, node.clone());
        }
        self.insert(node);
    }
}

fn count_nodes(node: &Node) -> usize {
    match &node.value {
        Value::Scalar(..) => 1,
        Value::Seq(items) => 1 + items.iter().map(count_nodes).sum::<usize>(),
        Value::Map(entries) => {
            1 + entries
                .iter()
                .map(|(k, v)| count_nodes(k) + count_nodes(v))
                .sum::<usize>()
        }
    }
}

impl<'input> SpannedEventReceiver<'input> for Builder {
    fn on_event(&mut self, ev: Event<'input>, span: Span) {
        if self.error.is_some() {
            return;
        }
        let pos = pos_of(&span);
        match ev {
            Event::Scalar(text, style, anchor, _tag) => {
                if !self.count(1, pos) {
                    return;
                }
                let text: Cow<'_, str> = text;
                let chars = text.chars().count();
                let raw = span.end.index().saturating_sub(span.start.index());
                let one_line = span.start.line() == span.end.line();
                let exact_col = match style {
                    ScalarStyle::Plain if one_line && raw == chars => Some(pos.col),
                    ScalarStyle::SingleQuoted | ScalarStyle::DoubleQuoted
                        if one_line && raw == chars + 2 =>
                    {
                        Some(pos.col + 1)
                    }
                    _ => None,
                };
                let node = Node {
                    value: Value::Scalar(text.into_owned(), style == ScalarStyle::Plain),
                    pos,
                    exact_col,
                };
                if anchor != 0 {
                    self.anchors.insert(anchor, node.clone());
                }
                self.insert(node);
            }
            Event::SequenceStart(anchor, _) => {
                if self.count(1, pos) {
                    let node = Node {
                        value: Value::Seq(Vec::new()),
                        pos,
                        exact_col: None,
                    };
                    self.stack.push(Frame::Seq(node, anchor));
                }
            }
            Event::MappingStart(anchor, _) => {
                if self.count(1, pos) {
                    let node = Node {
                        value: Value::Map(Vec::new()),
                        pos,
                        exact_col: None,
                    };
                    self.stack.push(Frame::Map(node, anchor, None));
                }
            }
            Event::SequenceEnd | Event::MappingEnd => self.finish_container(),
            Event::Alias(id) => match self.anchors.get(&id).cloned() {
                Some(mut node) => {
                    if self.count(count_nodes(&node), pos) {
                        node.pos = pos;
                        node.exact_col = None;
                        self.insert(node);
                    }
                }
                None => self.fail(pos, "unknown alias".to_owned(), "define the anchor first"),
            },
            Event::Nothing
            | Event::StreamStart
            | Event::StreamEnd
            | Event::DocumentStart(_)
            | Event::DocumentEnd => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map_get<'a>(node: &'a Node, key: &str) -> &'a Node {
        match &node.value {
            Value::Map(entries) => entries
                .iter()
                .find(|(k, _)| k.as_str() == Some(key))
                .map(|(_, v)| v),
            _ => None,
        }
        .unwrap_or_else(|| panic!("no key {key}"))
    }

    #[test]
    fn positions_are_one_based_and_exact_inside_scalars() {
        let doc = parse("a:\n  b: [x, 'yz', \"q\\n\"]\n  c: plain text\non: push\n")
            .unwrap_or_else(|e| panic!("{e}"));
        let b = map_get(map_get(&doc, "a"), "b");
        let Value::Seq(items) = &b.value else {
            panic!("not a seq")
        };
        assert_eq!(items[0].pos, Pos { line: 2, col: 7 });
        assert_eq!(items[1].pos_at(1), Pos { line: 2, col: 12 });
        assert_eq!(
            items[2].pos_at(1),
            items[2].pos,
            "escaped text is not exact"
        );
        let c = map_get(map_get(&doc, "a"), "c");
        assert_eq!(c.pos_at(6), Pos { line: 3, col: 12 });
        assert_eq!(map_get(&doc, "on").as_str(), Some("push"));
    }

    #[test]
    fn errors_have_positions() {
        let err = parse("a: 1\na: 2\n").map_err(|e| (e.pos, e.message));
        assert_eq!(
            err,
            Err((
                Pos { line: 2, col: 1 },
                "duplicate key \"a\" (first at line 1, column 1)".into()
            ))
        );
        let err = parse("a: [1, 2\n").map(|_| ());
        assert!(err.is_err());
        let err = parse("a: 1\n---\nb: 2\n").map_err(|e| e.pos.line);
        assert_eq!(err, Err(3));
    }

    #[test]
    fn aliases_expand_within_a_budget() {
        let doc = parse("x: &a [1, 2]\ny: *a\n").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(map_get(&doc, "y").kind_name(), "a list");
        let mut bomb = String::from("a: &a [x, x, x, x, x, x, x, x, x, x]\n");
        for i in 1..8 {
            let prev = (b'a' + i - 1) as char;
            let name = (b'a' + i) as char;
            bomb.push_str(&format!("{name}: &{name} [*{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}]\n"));
        }
        assert!(parse(&bomb).is_err());
    }

    #[test]
    fn empty_document_is_null() {
        assert!(parse("").map(|n| n.is_null()).unwrap_or(false));
        assert!(
            parse("# only a comment\n")
                .map(|n| n.is_null())
                .unwrap_or(false)
        );
    }
}
