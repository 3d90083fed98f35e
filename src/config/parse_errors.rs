//! Every reason a configuration file does not parse, each with its key path and line.
//!
//! serde stops at the first error, and for node tables (an internally tagged enum) it points at
//! the `[nodes.x]` header rather than the offending key. So when the typed parse fails, the
//! file is parsed again with toml's span-aware parser: syntax errors are collected with
//! recovery, and otherwise each node, queue, schedule and agent is deserialized on its own
//! (nodes as their specific type) so that every one of them reports its own first error, at the
//! key that caused it.

use std::ops::Range;
use std::path::Path;

use serde::Deserialize;
use serde::de::DeserializeOwned;
use toml::Spanned;
use toml::de::{DeTable, DeValue, ValueDeserializer};

use super::check::{Finding, Report};
use super::locate::{KeyPath, Locator, Segment};
use super::model::{
    AgentConfig, CallbackNode, CollectNode, Config, HangupNode, LanguageNode, MenuNode, Node,
    PasswordResetNode, QueueConfig, QueueNode, SayNode, ScheduleConfig, ScheduleNode, TransferNode,
    VerifyNode, VoicemailNode,
};

/// All findings for a file whose typed parse failed with `error`.
pub fn report(file: &Path, source: &str, error: &toml::de::Error) -> Report {
    let locator = Locator::new(source);
    let (root, syntax_errors) = DeTable::parse_recoverable(source);
    let errors = if syntax_errors.is_empty() {
        shape_errors(root)
    } else {
        syntax_errors
    };

    let mut findings: Vec<(usize, Finding)> = errors
        .iter()
        .map(|error| {
            let start = error.span().map_or(usize::MAX, |span| span.start);
            (start, finding(file, source, &locator, error))
        })
        .collect();
    findings.sort_by_key(|(start, _)| *start);
    // Recovery after a syntax error can report the same mistake several times on one line.
    findings.dedup_by(|later, earlier| later.1.line.is_some() && later.1.line == earlier.1.line);

    if findings.is_empty() {
        return Report::single(finding(file, source, &locator, error));
    }
    Report {
        findings: findings.into_iter().map(|(_, finding)| finding).collect(),
    }
}

/// One TOML error as a finding: its key path and line where they can be found, and a hint.
pub fn finding(file: &Path, source: &str, locator: &Locator, error: &toml::de::Error) -> Finding {
    let span = error.span();
    let line = span.as_ref().map(|span| locator.line_at(span.start));
    let path = span
        .as_ref()
        .and_then(|span| locator.path_at(span))
        .unwrap_or_default();
    let message = error.message();

    if message == "duplicate key" {
        return duplicate_key(file, source, locator, span.unwrap_or(0..0), path, line);
    }
    if message == "recursion limit" && span.is_none() {
        return too_deep(file, source);
    }
    if message.starts_with("cannot recurse further") {
        return Finding::error(
            file,
            &shortened(&path),
            line,
            format!("values are nested more than {NESTING_LIMIT} levels deep"),
            "careline's settings nest a few levels at most: close the brackets or braces sooner",
        );
    }
    let (message, hint) = if let Some(rest) = message.strip_prefix("unknown field") {
        (
            format!("unknown key{rest}"),
            "check the spelling; only the keys listed are allowed here",
        )
    } else if let Some(rest) = message.strip_prefix("missing field") {
        (
            format!("missing key{rest}"),
            "add the key to this table; config/careline.toml shows each node type",
        )
    } else if let Some(rest) = message.strip_prefix("unknown variant") {
        (
            format!("unknown value{rest}"),
            "use one of the values listed",
        )
    } else if message.starts_with("invalid type") {
        (
            message.to_owned(),
            "write the kind of value expected: text in quotes, numbers and true/false without, lists in [ ]",
        )
    } else {
        (
            message.to_owned(),
            "fix the TOML at that line; `careline check` lists the remaining problems once it parses",
        )
    };
    Finding::error(file, &path.to_string(), line, message, hint)
}

/// How deep toml lets keys and values nest; deeper is refused as a "recursion limit".
const NESTING_LIMIT: usize = 80;

/// toml refuses a dotted key of more than [`NESTING_LIMIT`] parts without saying where; find
/// the line ourselves so the admin is not left searching a large file.
fn too_deep(file: &Path, source: &str) -> Finding {
    let hint = "careline's keys have a few parts at most (nodes.NAME.options): remove the extra dotted parts";
    match deep_dotted_key(source, NESTING_LIMIT) {
        Some(deep) => {
            let line_start = source[..deep.offset].rfind('\n').map_or(0, |at| at + 1);
            let is_header = source[line_start..deep.offset].trim().starts_with('[');
            // A `key = value` belongs to the table of the last header above it; a header is
            // a path of its own.
            let table = if is_header {
                KeyPath::root()
            } else {
                source[..line_start]
                    .rmatch_indices('\n')
                    .map(|(at, _)| at + 1)
                    .chain([0])
                    .filter(|start| *start < line_start)
                    .find_map(|start| header_path(source, start))
                    .unwrap_or_default()
            };
            let path = table.key(&deep.first);
            Finding::error(
                file,
                &format!("{}…", shortened(&path)),
                Some(deep.line),
                format!(
                    "this dotted key (`{}.{}.…`) has {} parts, more than the {NESTING_LIMIT} levels of nesting careline reads",
                    deep.first, deep.first_after, deep.parts
                ),
                hint,
            )
        }
        None => Finding::error(
            file,
            "",
            None,
            format!("keys or values are nested more than {NESTING_LIMIT} levels deep"),
            hint,
        ),
    }
}

/// The first few parts of a key path, so a path 80 levels deep does not fill the screen.
fn shortened(path: &KeyPath) -> String {
    const SHOWN: usize = 3;
    let mut short = KeyPath::root();
    for segment in path.segments().iter().take(SHOWN) {
        short = match segment {
            Segment::Key(key) => short.key(key),
            Segment::Index(index) => short.index(*index),
        };
    }
    if path.segments().len() > SHOWN {
        format!("{short}…")
    } else {
        short.to_string()
    }
}

/// A dotted key with too many parts: where it starts and its first parts.
#[derive(Debug, PartialEq, Eq)]
struct DeepKey {
    line: usize,
    offset: usize,
    parts: usize,
    first: String,
    first_after: String,
}

/// The first run of at least `limit` dotted key parts (`a.b."c".d ...`) outside strings and
/// comments. Values such as `1.5` are runs too, but never long ones.
fn deep_dotted_key(source: &str, limit: usize) -> Option<DeepKey> {
    let bytes = source.as_bytes();
    let mut at = 0;
    let mut line = 1;
    // The current run: where it started, its parts so far, and whether a `.` came last.
    let mut run: Option<(usize, usize, usize, String, String)> = None;
    let mut after_dot = false;
    while let Some(&byte) = bytes.get(at) {
        let segment: Option<(usize, usize)> = match byte {
            b'\n' => {
                line += 1;
                run = None;
                at += 1;
                None
            }
            b' ' | b'\t' | b'\r' => {
                at += 1;
                None
            }
            b'#' => {
                while bytes.get(at).is_some_and(|&b| b != b'\n') {
                    at += 1;
                }
                None
            }
            b'.' => {
                at += 1;
                if run.is_some() && !after_dot {
                    after_dot = true;
                } else {
                    run = None;
                }
                None
            }
            b'"' | b'\'' => {
                let start = at;
                let triple = bytes.get(at..at + 3) == Some(&[byte; 3][..]);
                at += if triple { 3 } else { 1 };
                loop {
                    match bytes.get(at) {
                        None => break,
                        Some(b'\\') if byte == b'"' => at += 2,
                        Some(b'\n') => {
                            line += 1;
                            at += 1;
                        }
                        Some(&b) if b == byte => {
                            if !triple {
                                at += 1;
                                break;
                            }
                            if bytes.get(at..at + 3) == Some(&[byte; 3][..]) {
                                at += 3;
                                break;
                            }
                            at += 1;
                        }
                        Some(_) => at += 1,
                    }
                }
                Some((start, at.min(bytes.len())))
            }
            b if b.is_ascii_alphanumeric() || b == b'_' || b == b'-' => {
                let start = at;
                while bytes
                    .get(at)
                    .is_some_and(|b| b.is_ascii_alphanumeric() || *b == b'_' || *b == b'-')
                {
                    at += 1;
                }
                Some((start, at))
            }
            _ => {
                run = None;
                at += 1;
                None
            }
        };
        let Some((start, end)) = segment else {
            continue;
        };
        let text = source.get(start..end).unwrap_or("").to_owned();
        match (&mut run, after_dot) {
            (Some((_, _, parts, _, second)), true) => {
                *parts += 1;
                if *parts == 2 {
                    *second = text;
                }
            }
            _ => run = Some((line, start, 1, text, String::new())),
        }
        after_dot = false;
        if let Some((line, offset, parts, first, first_after)) = &run
            && *parts >= limit
        {
            // Count the rest of this key's parts, then report it.
            let mut deep = DeepKey {
                line: *line,
                offset: *offset,
                parts: *parts,
                first: first.trim_matches(['"', '\'']).to_owned(),
                first_after: first_after.trim_matches(['"', '\'']).to_owned(),
            };
            deep.parts += source
                .get(at..)
                .unwrap_or("")
                .split(['=', ']', '\n'])
                .next()
                .unwrap_or("")
                .matches('.')
                .count();
            return Some(deep);
        }
    }
    None
}

/// toml reports the second occurrence of a key; name the full path and say what it means.
fn duplicate_key(
    file: &Path,
    source: &str,
    locator: &Locator,
    span: Range<usize>,
    enclosing: KeyPath,
    line: Option<usize>,
) -> Finding {
    let written = source.get(span.clone()).unwrap_or("");
    let key = written.trim_matches(|c| c == '"' || c == '\'');
    let path = match header_path(source, span.start) {
        // A repeated `[table]` header: the header itself names the path.
        Some(header) => header,
        None if enclosing.segments().is_empty() => KeyPath::root().key(key),
        None => enclosing.key(key),
    };
    let in_menu = matches!(
        path.segments(),
        [.., Segment::Key(table), Segment::Key(_)] if table == "options"
    );
    let first_line = first_header_line(source, &path)
        .or_else(|| locator.line_of(&path))
        .filter(|first| Some(*first) != line);
    let earlier = first_line.map_or(String::new(), |first| format!(" (first on line {first})"));
    if in_menu {
        Finding::error(
            file,
            &path.to_string(),
            line,
            format!("menu key {written} is listed twice{earlier}"),
            "a key can lead to one node only: keep one of the two entries",
        )
    } else {
        Finding::error(
            file,
            &path.to_string(),
            line,
            format!("`{path}` is defined twice{earlier}"),
            "TOML allows each key once per table: merge the two or rename one",
        )
    }
}

/// The first line holding a `[table]` header for `path`.
fn first_header_line(source: &str, path: &KeyPath) -> Option<usize> {
    let mut offset = 0;
    for (index, line) in source.split('\n').enumerate() {
        if header_path(source, offset).as_ref() == Some(path) {
            return Some(index + 1);
        }
        offset += line.len() + 1;
    }
    None
}

/// The key path of a `[table]` or `[[array]]` header on the line containing `offset`.
fn header_path(source: &str, offset: usize) -> Option<KeyPath> {
    let line_start = source.get(..offset)?.rfind('\n').map_or(0, |at| at + 1);
    let line = source.get(line_start..)?.lines().next()?.trim();
    let inner = line.strip_prefix('[')?;
    let end = inner.rfind(']')?;
    let inner = inner[..end].trim_matches(|c| c == '[' || c == ']').trim();
    let path = KeyPath::parse(&inner.replace(' ', ""));
    (!path.segments().is_empty()).then_some(path)
}

/// Deserialize the document piece by piece, collecting the first error of each piece.
fn shape_errors(root: Spanned<DeTable<'_>>) -> Vec<toml::de::Error> {
    let root_span = root.span();
    let mut rest = root.into_inner();
    let mut errors = Vec::new();

    if let Some(nodes) = take_table(&mut rest, "nodes") {
        for (_, value) in nodes {
            if let Some(error) = node_error(value) {
                errors.push(error);
            }
        }
    }
    for (section, check) in [
        (
            "queues",
            first_error::<QueueConfig> as fn(Spanned<DeValue<'_>>) -> _,
        ),
        ("schedules", first_error::<ScheduleConfig>),
    ] {
        if let Some(table) = take_table(&mut rest, section) {
            errors.extend(table.into_iter().filter_map(|(_, value)| check(value)));
        }
    }
    if let Some(agents) = take_array(&mut rest, "agents") {
        errors.extend(agents.into_iter().filter_map(first_error::<AgentConfig>));
    }

    let document = toml::de::Deserializer::from(Spanned::new(root_span, rest));
    if let Err(error) = Config::deserialize(document) {
        errors.push(error);
    }
    errors
}

fn take_table<'i>(table: &mut DeTable<'i>, key: &str) -> Option<DeTable<'i>> {
    if !matches!(
        table.get(key).map(Spanned::get_ref),
        Some(DeValue::Table(_))
    ) {
        return None;
    }
    match table.remove(key).map(Spanned::into_inner) {
        Some(DeValue::Table(inner)) => Some(inner),
        _ => None,
    }
}

fn take_array<'i>(table: &mut DeTable<'i>, key: &str) -> Option<Vec<Spanned<DeValue<'i>>>> {
    if !matches!(
        table.get(key).map(Spanned::get_ref),
        Some(DeValue::Array(_))
    ) {
        return None;
    }
    match table.remove(key).map(Spanned::into_inner) {
        Some(DeValue::Array(items)) => Some(items.into_iter().collect()),
        _ => None,
    }
}

fn first_error<T: DeserializeOwned>(value: Spanned<DeValue<'_>>) -> Option<toml::de::Error> {
    T::deserialize(ValueDeserializer::from(value)).err()
}

/// A node's error, from its specific type when `type` names one, so the span is the bad key.
fn node_error(value: Spanned<DeValue<'_>>) -> Option<toml::de::Error> {
    let whole = first_error::<Node>(value.clone())?;
    let span = value.span();
    let DeValue::Table(mut table) = value.into_inner() else {
        return Some(whole);
    };
    let kind = match table.remove("type").map(Spanned::into_inner) {
        Some(DeValue::String(kind)) => kind.into_owned(),
        _ => return Some(whole),
    };
    let fields = Spanned::new(span, DeValue::Table(table));
    let specific = match kind.as_str() {
        "menu" => first_error::<MenuNode>(fields),
        "collect" => first_error::<CollectNode>(fields),
        "verify" => first_error::<VerifyNode>(fields),
        "password_reset" => first_error::<PasswordResetNode>(fields),
        "queue" => first_error::<QueueNode>(fields),
        "schedule" => first_error::<ScheduleNode>(fields),
        "hangup" => first_error::<HangupNode>(fields),
        "say" => first_error::<SayNode>(fields),
        "language" => first_error::<LanguageNode>(fields),
        "transfer" => first_error::<TransferNode>(fields),
        "voicemail" => first_error::<VoicemailNode>(fields),
        "callback" => first_error::<CallbackNode>(fields),
        _ => None,
    };
    Some(specific.unwrap_or(whole))
}
