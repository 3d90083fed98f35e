//! Where things are in the configuration file: TOML key paths and the lines they are written on.
//!
//! Semantic checks run on the typed [`super::Config`], which has no positions. A [`Locator`]
//! parses the same source with toml's span-aware parser, so a check can name a key path such as
//! `nodes.main.options."1"` and get back the line to point at. It also works the other way, from
//! the byte span of a TOML error to the key path it falls in.

use std::collections::HashMap;
use std::fmt;
use std::ops::Range;

use toml::de::{DeTable, DeValue};

/// One step of a key path: a table key or an array index.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Segment {
    Key(String),
    Index(usize),
}

/// A key path as written in findings: `nodes.main.options."1"`, `agents[2].id`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct KeyPath(Vec<Segment>);

impl KeyPath {
    pub fn root() -> KeyPath {
        KeyPath(Vec::new())
    }

    /// Parse a path in the notation [`KeyPath`] displays; quoting is optional where a bare key
    /// would do, so `options."1"` and `options.1` are the same path.
    pub fn parse(text: &str) -> KeyPath {
        let mut segments = Vec::new();
        let mut chars = text.chars().peekable();
        while let Some(&c) = chars.peek() {
            match c {
                '.' => {
                    chars.next();
                }
                '"' => {
                    chars.next();
                    let mut key = String::new();
                    while let Some(c) = chars.next() {
                        match c {
                            '"' => break,
                            '\\' => key.extend(chars.next()),
                            c => key.push(c),
                        }
                    }
                    segments.push(Segment::Key(key));
                }
                '[' => {
                    chars.next();
                    let digits: String = chars.by_ref().take_while(|&c| c != ']').collect();
                    match digits.trim().parse() {
                        Ok(index) => segments.push(Segment::Index(index)),
                        Err(_) => segments.push(Segment::Key(digits)),
                    }
                }
                _ => {
                    let mut key = String::new();
                    while let Some(&c) = chars.peek() {
                        if c == '.' || c == '[' {
                            break;
                        }
                        key.push(c);
                        chars.next();
                    }
                    segments.push(Segment::Key(key));
                }
            }
        }
        KeyPath(segments)
    }

    pub fn key(&self, key: &str) -> KeyPath {
        let mut segments = self.0.clone();
        segments.push(Segment::Key(key.to_owned()));
        KeyPath(segments)
    }

    pub fn index(&self, index: usize) -> KeyPath {
        let mut segments = self.0.clone();
        segments.push(Segment::Index(index));
        KeyPath(segments)
    }

    /// `relative` appended to this path.
    pub fn join(&self, relative: &KeyPath) -> KeyPath {
        let mut segments = self.0.clone();
        segments.extend(relative.0.iter().cloned());
        KeyPath(segments)
    }

    pub fn segments(&self) -> &[Segment] {
        &self.0
    }

    fn parent(&self) -> Option<KeyPath> {
        let (_, parent) = self.0.split_last()?;
        Some(KeyPath(parent.to_vec()))
    }
}

impl fmt::Display for KeyPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (position, segment) in self.0.iter().enumerate() {
            match segment {
                Segment::Index(index) => write!(f, "[{index}]")?,
                Segment::Key(key) => {
                    if position > 0 {
                        f.write_str(".")?;
                    }
                    write_key(f, key)?;
                }
            }
        }
        Ok(())
    }
}

/// Bare when TOML allows it, except all-digit keys, which are quoted so that menu keys read as
/// keys (`options."1"`), as admins write them.
fn write_key(f: &mut fmt::Formatter<'_>, key: &str) -> fmt::Result {
    let bare = !key.is_empty()
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        && !key.chars().all(|c| c.is_ascii_digit());
    if bare {
        return f.write_str(key);
    }
    f.write_str("\"")?;
    for c in key.chars() {
        match c {
            '"' => f.write_str("\\\"")?,
            '\\' => f.write_str("\\\\")?,
            c => write!(f, "{c}")?,
        }
    }
    f.write_str("\"")
}

#[derive(Debug, Clone)]
struct Entry {
    path: KeyPath,
    /// Where the key is written; array elements have none.
    key_span: Option<Range<usize>>,
    /// For a table opened by a `[header]`, just the header.
    value_span: Range<usize>,
}

impl Entry {
    /// Where to point for this entry: the key, or for an array element its first character.
    fn offset(&self) -> usize {
        self.key_span
            .as_ref()
            .map_or(self.value_span.start, |span| span.start)
    }
}

/// Key paths and byte spans of one TOML source, and the lines they fall on.
#[derive(Debug, Clone)]
pub struct Locator {
    entries: Vec<Entry>,
    /// Key path → its first entry: `check` asks for the line of every finding and of every
    /// prompt, so a scan of `entries` per question made large files quadratic.
    by_path: HashMap<KeyPath, usize>,
    line_starts: Vec<usize>,
}

impl Locator {
    /// Index `source`. Syntax errors are tolerated: whatever parsed is indexed.
    pub fn new(source: &str) -> Locator {
        let (root, _errors) = DeTable::parse_recoverable(source);
        let mut entries = Vec::new();
        index_table(&KeyPath::root(), root.get_ref(), &mut entries);
        let line_starts = std::iter::once(0)
            .chain(source.match_indices('\n').map(|(at, _)| at + 1))
            .collect();
        let mut by_path = HashMap::with_capacity(entries.len());
        for (index, entry) in entries.iter().enumerate() {
            by_path.entry(entry.path.clone()).or_insert(index);
        }
        Locator {
            entries,
            by_path,
            line_starts,
        }
    }

    /// 1-based line of a byte offset.
    pub fn line_at(&self, offset: usize) -> usize {
        self.line_starts.partition_point(|&start| start <= offset)
    }

    /// The line `key_path` is written on; for a key that is absent (a default), the line of the
    /// nearest enclosing key that is written.
    pub fn line_of(&self, key_path: &KeyPath) -> Option<usize> {
        let mut path = Some(key_path.clone());
        while let Some(current) = path {
            if current.segments().is_empty() {
                return None;
            }
            if let Some(entry) = self
                .by_path
                .get(&current)
                .and_then(|index| self.entries.get(*index))
            {
                return Some(self.line_at(entry.offset()));
            }
            path = current.parent();
        }
        None
    }

    /// The innermost key path whose key or value the byte span falls in.
    pub fn path_at(&self, span: &Range<usize>) -> Option<KeyPath> {
        let exact = self
            .entries
            .iter()
            .filter(|entry| entry.key_span.as_ref() == Some(span) || &entry.value_span == span);
        if let Some(entry) = exact.max_by_key(|entry| entry.path.segments().len()) {
            return Some(entry.path.clone());
        }
        let contains = |range: &Range<usize>| range.start <= span.start && span.start < range.end;
        self.entries
            .iter()
            .filter_map(|entry| {
                [entry.key_span.as_ref(), Some(&entry.value_span)]
                    .into_iter()
                    .flatten()
                    .filter(|range| contains(range))
                    .map(|range| range.len())
                    .min()
                    .map(|len| (len, std::cmp::Reverse(entry.path.segments().len()), entry))
            })
            .min_by_key(|(len, depth, _)| (*len, *depth))
            .map(|(_, _, entry)| entry.path.clone())
    }
}

fn index_table(path: &KeyPath, table: &DeTable<'_>, entries: &mut Vec<Entry>) {
    for (key, value) in table.iter() {
        let child = path.key(key.get_ref());
        entries.push(Entry {
            path: child.clone(),
            key_span: Some(key.span()),
            value_span: value.span(),
        });
        index_value(&child, value.get_ref(), entries);
    }
}

fn index_value(path: &KeyPath, value: &DeValue<'_>, entries: &mut Vec<Entry>) {
    match value {
        DeValue::Table(table) => index_table(path, table, entries),
        DeValue::Array(items) => {
            for (index, item) in items.iter().enumerate() {
                let child = path.index(index);
                entries.push(Entry {
                    path: child.clone(),
                    key_span: None,
                    value_span: item.span(),
                });
                index_value(&child, item.get_ref(), entries);
            }
        }
        DeValue::String(_)
        | DeValue::Integer(_)
        | DeValue::Float(_)
        | DeValue::Boolean(_)
        | DeValue::Datetime(_) => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SOURCE: &str = r#"[server]
public_url = "http://x"

[nodes.main]
type = "menu"
options = { "1" = "a", "*" = "b" }

[schedules.helpdesk]
hours = [
  { days = "mon-fri", from = "07:00", to = "19:00" },
  { days = "sat", from = "9", to = "13:00" },
]

[[agents]]
id = "a"

[[agents]]
id = "b"
"#;

    fn line(path: &str) -> Option<usize> {
        Locator::new(SOURCE).line_of(&KeyPath::parse(path))
    }

    #[test]
    fn key_paths_find_the_line_they_are_written_on() {
        assert_eq!(line("server.public_url"), Some(2));
        assert_eq!(line("nodes.main"), Some(4));
        assert_eq!(line("nodes.main.options.\"1\""), Some(6));
        assert_eq!(line("schedules.helpdesk.hours[1].from"), Some(11));
        assert_eq!(line("agents[1].id"), Some(18));
        assert_eq!(line("agents[1]"), Some(17));
    }

    #[test]
    fn a_key_left_to_its_default_points_at_its_table() {
        assert_eq!(line("nodes.main.on_failure"), Some(4));
        assert_eq!(line("ivr.entry"), None);
    }

    #[test]
    fn key_paths_display_menu_keys_quoted() {
        let path = KeyPath::root()
            .key("nodes")
            .key("main")
            .key("options")
            .key("1");
        assert_eq!(path.to_string(), "nodes.main.options.\"1\"");
        assert_eq!(KeyPath::parse(&path.to_string()), path);
        let path = KeyPath::root().key("agents").index(2).key("id");
        assert_eq!(path.to_string(), "agents[2].id");
        assert_eq!(KeyPath::parse("agents[2].id"), path);
        assert_eq!(
            KeyPath::root().key("options").key("*").to_string(),
            "options.\"*\""
        );
    }

    #[test]
    fn a_span_maps_back_to_its_key_path() {
        let locator = Locator::new(SOURCE);
        let at = SOURCE.find("\"9\"").expect("in source");
        assert_eq!(
            locator.path_at(&(at..at + 3)).map(|path| path.to_string()),
            Some("schedules.helpdesk.hours[1].from".to_owned())
        );
    }
}
