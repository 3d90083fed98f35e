//! TwiML: the XML careline answers Twilio's webhooks with, and a parser for it (the test caller's
//! side), over one [`Verb`] type so that both ends agree on the documents.
//!
//! careline speaks only a handful of verbs: `<Connect><Stream>` (with `<Parameter>`s) followed by
//! `<Redirect>` to learn what to do once it closes the stream, `<Dial>` to hand a call to an agent
//! or overflow desk, and `<Hangup/>`. careline plays its own prompts over the stream, so it never
//! emits `<Say>`; on the calls it places itself (callbacks), where there is no stream, it asks
//! for a key with `<Gather>` around a `<Play>` of a prompt it serves. The parser still
//! understands the other common verbs so that the caller can report them instead of failing.
//!
//! The parser is a small hand-written XML reader for these documents: elements, attributes in
//! either quote style and in any order, text, the five predefined entities and character
//! references, comments, CDATA and the XML declaration. No DTDs, no namespaces.

use std::fmt::{self, Write as _};

/// The `method` attribute of `<Redirect>` and friends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Method {
    Get,
    #[default]
    Post,
}

impl Method {
    pub fn as_str(self) -> &'static str {
        match self {
            Method::Get => "GET",
            Method::Post => "POST",
        }
    }
}

/// Whom a `<Dial>` rings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DialTarget {
    /// A PSTN number (`<Number>`, or bare text inside `<Dial>`).
    Number(String),
    /// A Twilio Client identity (`<Client>`).
    Client(String),
    /// A SIP URI (`<Sip>`).
    Sip(String),
}

impl fmt::Display for DialTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DialTarget::Number(number) => write!(f, "number {number}"),
            DialTarget::Client(identity) => write!(f, "client {identity}"),
            DialTarget::Sip(uri) => write!(f, "sip {uri}"),
        }
    }
}

/// One TwiML verb (with its nouns).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verb {
    /// `<Connect [action]><Stream url><Parameter name value/>…</Stream></Connect>`: a
    /// bidirectional media stream; Twilio moves on only once the server closes the socket.
    ConnectStream {
        url: String,
        parameters: Vec<(String, String)>,
        action: Option<String>,
    },
    Redirect {
        url: String,
        method: Method,
    },
    Hangup,
    Dial {
        action: Option<String>,
        /// Ring time in seconds (Twilio's default is 30).
        timeout: Option<u32>,
        caller_id: Option<String>,
        target: DialTarget,
        /// The noun's `statusCallback` for `statusCallbackEvent="answered"`: Twilio posts the
        /// dialed leg's `CallStatus=in-progress` there when the far end picks up.
        answered_url: Option<String>,
    },
    Record {
        action: Option<String>,
        max_length: Option<u32>,
    },
    Pause {
        length: u32,
    },
    Reject {
        reason: Option<String>,
    },
    Say {
        text: String,
    },
    Play {
        url: String,
    },
    /// `<Gather input="dtmf" numDigits action method="POST" timeout><Play>…</Play></Gather>`:
    /// the audio plays while Twilio listens for keys; the keys go to `action` as `Digits`.
    /// With none pressed within `timeout` seconds of the audio's end, the next verb runs.
    Gather {
        action: Option<String>,
        num_digits: Option<u32>,
        timeout: Option<u32>,
        /// The audio played, in order.
        plays: Vec<String>,
    },
}

impl Verb {
    /// One line for a transcript: the verb and where it points, never parameter values (a
    /// parameter may carry a per-call token).
    pub fn summary(&self) -> String {
        match self {
            Verb::ConnectStream {
                url, parameters, ..
            } => {
                let names: Vec<&str> = parameters.iter().map(|(name, _)| name.as_str()).collect();
                format!("Connect/Stream {url} [{}]", names.join(", "))
            }
            Verb::Redirect { url, method } => format!("Redirect {} {url}", method.as_str()),
            Verb::Hangup => "Hangup".to_owned(),
            Verb::Dial {
                target, timeout, ..
            } => match timeout {
                Some(secs) => format!("Dial {target} (timeout {secs}s)"),
                None => format!("Dial {target}"),
            },
            Verb::Record { .. } => "Record".to_owned(),
            Verb::Pause { length } => format!("Pause {length}s"),
            Verb::Reject { .. } => "Reject".to_owned(),
            Verb::Say { .. } => "Say".to_owned(),
            Verb::Play { url } => format!("Play {url}"),
            Verb::Gather {
                num_digits, plays, ..
            } => format!(
                "Gather {} key(s) (Play {})",
                num_digits.unwrap_or(1),
                plays.join(", ")
            ),
        }
    }
}

/// The `<Response>` document for `verbs`, with the XML declaration Twilio's libraries emit.
pub fn render(verbs: &[Verb]) -> String {
    let mut xml = String::from(r#"<?xml version="1.0" encoding="UTF-8"?><Response>"#);
    for verb in verbs {
        render_verb(&mut xml, verb);
    }
    xml.push_str("</Response>");
    xml
}

/// careline's answer to the voice webhook: stream the call to `stream_url`, and when careline
/// closes the stream, fetch the next instructions from `next_url`.
pub fn connect_stream(stream_url: &str, parameters: &[(&str, &str)], next_url: &str) -> String {
    render(&[
        Verb::ConnectStream {
            url: stream_url.to_owned(),
            parameters: parameters
                .iter()
                .map(|(name, value)| ((*name).to_owned(), (*value).to_owned()))
                .collect(),
            action: None,
        },
        Verb::Redirect {
            url: next_url.to_owned(),
            method: Method::Post,
        },
    ])
}

/// Wait `seconds` (the caller hears silence), then fetch the instructions at `url` again:
/// what careline answers when it cannot decide yet (its store did not answer).
pub fn pause_then_redirect(seconds: u32, url: &str) -> String {
    render(&[
        Verb::Pause { length: seconds },
        Verb::Redirect {
            url: url.to_owned(),
            method: Method::Post,
        },
    ])
}

/// End the call.
pub fn hangup() -> String {
    render(&[Verb::Hangup])
}

/// Ring `target` for `timeout` seconds; Twilio reports the outcome to `action`, and the answer
/// (if any) to `answered_url`.
pub fn dial(
    target: DialTarget,
    action: &str,
    timeout: u32,
    caller_id: Option<&str>,
    answered_url: Option<&str>,
) -> String {
    render(&[Verb::Dial {
        action: Some(action.to_owned()),
        timeout: Some(timeout),
        caller_id: caller_id.map(str::to_owned),
        target,
        answered_url: answered_url.map(str::to_owned),
    }])
}

fn render_verb(xml: &mut String, verb: &Verb) {
    match verb {
        Verb::ConnectStream {
            url,
            parameters,
            action,
        } => {
            xml.push_str("<Connect");
            optional_attribute(xml, "action", action.as_deref());
            xml.push_str("><Stream");
            attribute(xml, "url", url);
            if parameters.is_empty() {
                xml.push_str("/></Connect>");
                return;
            }
            xml.push('>');
            for (name, value) in parameters {
                xml.push_str("<Parameter");
                attribute(xml, "name", name);
                attribute(xml, "value", value);
                xml.push_str("/>");
            }
            xml.push_str("</Stream></Connect>");
        }
        Verb::Redirect { url, method } => {
            xml.push_str("<Redirect");
            attribute(xml, "method", method.as_str());
            xml.push('>');
            escape_into(xml, url);
            xml.push_str("</Redirect>");
        }
        Verb::Hangup => xml.push_str("<Hangup/>"),
        Verb::Dial {
            action,
            timeout,
            caller_id,
            target,
            answered_url,
        } => {
            xml.push_str("<Dial");
            optional_attribute(xml, "action", action.as_deref());
            if let Some(timeout) = timeout {
                attribute(xml, "timeout", &timeout.to_string());
            }
            optional_attribute(xml, "callerId", caller_id.as_deref());
            xml.push('>');
            let (noun, value) = match target {
                DialTarget::Number(number) => ("Number", number),
                DialTarget::Client(identity) => ("Client", identity),
                DialTarget::Sip(uri) => ("Sip", uri),
            };
            let _ = write!(xml, "<{noun}");
            if let Some(url) = answered_url {
                attribute(xml, "statusCallbackEvent", "answered");
                attribute(xml, "statusCallback", url);
            }
            xml.push('>');
            escape_into(xml, value);
            let _ = write!(xml, "</{noun}></Dial>");
        }
        Verb::Record { action, max_length } => {
            xml.push_str("<Record");
            optional_attribute(xml, "action", action.as_deref());
            if let Some(max_length) = max_length {
                attribute(xml, "maxLength", &max_length.to_string());
            }
            xml.push_str("/>");
        }
        Verb::Pause { length } => {
            xml.push_str("<Pause");
            attribute(xml, "length", &length.to_string());
            xml.push_str("/>");
        }
        Verb::Reject { reason } => {
            xml.push_str("<Reject");
            optional_attribute(xml, "reason", reason.as_deref());
            xml.push_str("/>");
        }
        Verb::Say { text } => {
            xml.push_str("<Say>");
            escape_into(xml, text);
            xml.push_str("</Say>");
        }
        Verb::Play { url } => {
            xml.push_str("<Play>");
            escape_into(xml, url);
            xml.push_str("</Play>");
        }
        Verb::Gather {
            action,
            num_digits,
            timeout,
            plays,
        } => {
            xml.push_str("<Gather");
            attribute(xml, "input", "dtmf");
            if let Some(num_digits) = num_digits {
                attribute(xml, "numDigits", &num_digits.to_string());
            }
            if let Some(timeout) = timeout {
                attribute(xml, "timeout", &timeout.to_string());
            }
            if let Some(action) = action {
                attribute(xml, "action", action);
                attribute(xml, "method", "POST");
            }
            xml.push('>');
            for url in plays {
                xml.push_str("<Play>");
                escape_into(xml, url);
                xml.push_str("</Play>");
            }
            xml.push_str("</Gather>");
        }
    }
}

fn attribute(xml: &mut String, name: &str, value: &str) {
    let _ = write!(xml, " {name}=\"");
    escape_into(xml, value);
    xml.push('"');
}

fn optional_attribute(xml: &mut String, name: &str, value: Option<&str>) {
    if let Some(value) = value {
        attribute(xml, name, value);
    }
}

/// Escape for both text and double-quoted attributes.
fn escape_into(xml: &mut String, text: &str) {
    for c in text.chars() {
        match c {
            '&' => xml.push_str("&amp;"),
            '<' => xml.push_str("&lt;"),
            '>' => xml.push_str("&gt;"),
            '"' => xml.push_str("&quot;"),
            '\'' => xml.push_str("&apos;"),
            other => xml.push(other),
        }
    }
}

/// Why a TwiML document could not be read. Offsets are byte offsets into the document.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TwimlError {
    #[error("TwiML is not well-formed XML at byte {offset}: {what}")]
    Malformed { offset: usize, what: &'static str },
    #[error("TwiML root element is <{found}>, expected <Response>")]
    NotAResponse { found: String },
    #[error("TwiML verb <{verb}> is not one the caller understands")]
    UnknownVerb { verb: String },
    #[error("TwiML <{element}> lacks its required `{attribute}`")]
    MissingAttribute {
        element: &'static str,
        attribute: &'static str,
    },
    #[error("TwiML <{element}> has `{attribute}` that is not a whole number")]
    NotANumber {
        element: &'static str,
        attribute: &'static str,
    },
    #[error("TwiML <{element}> has unexpected content: {what}")]
    UnexpectedContent { element: &'static str, what: String },
}

/// Read a `<Response>` document into its verbs, in order.
pub fn parse(document: &str) -> Result<Vec<Verb>, TwimlError> {
    let root = XmlReader::new(document).document()?;
    if root.name != "Response" {
        return Err(TwimlError::NotAResponse { found: root.name });
    }
    root.elements()
        .map(parse_verb)
        .collect::<Result<Vec<_>, _>>()
}

fn parse_verb(element: &Element) -> Result<Verb, TwimlError> {
    match element.name.as_str() {
        "Connect" => parse_connect(element),
        "Redirect" => Ok(Verb::Redirect {
            url: required_text(element, "Redirect")?,
            method: parse_method(element.attribute("method"))?,
        }),
        "Hangup" => Ok(Verb::Hangup),
        "Dial" => parse_dial(element),
        "Record" => Ok(Verb::Record {
            action: element.attribute("action").map(str::to_owned),
            max_length: number_attribute(element, "Record", "maxLength")?,
        }),
        "Pause" => Ok(Verb::Pause {
            length: number_attribute(element, "Pause", "length")?.unwrap_or(1),
        }),
        "Reject" => Ok(Verb::Reject {
            reason: element.attribute("reason").map(str::to_owned),
        }),
        "Say" => Ok(Verb::Say {
            text: element.text().trim().to_owned(),
        }),
        "Play" => Ok(Verb::Play {
            url: required_text(element, "Play")?,
        }),
        "Gather" => parse_gather(element),
        other => Err(TwimlError::UnknownVerb {
            verb: other.to_owned(),
        }),
    }
}

fn parse_connect(connect: &Element) -> Result<Verb, TwimlError> {
    let mut nouns = connect.elements();
    let stream = match (nouns.next(), nouns.next()) {
        (Some(stream), None) if stream.name == "Stream" => stream,
        (Some(other), None) => {
            return Err(TwimlError::UnexpectedContent {
                element: "Connect",
                what: format!("<{}> (only <Stream> is supported)", other.name),
            });
        }
        _ => {
            return Err(TwimlError::UnexpectedContent {
                element: "Connect",
                what: "it must hold exactly one <Stream>".to_owned(),
            });
        }
    };
    let url = stream
        .attribute("url")
        .ok_or(TwimlError::MissingAttribute {
            element: "Stream",
            attribute: "url",
        })?
        .to_owned();
    let mut parameters = Vec::new();
    for parameter in stream.elements() {
        if parameter.name != "Parameter" {
            return Err(TwimlError::UnexpectedContent {
                element: "Stream",
                what: format!("<{}>", parameter.name),
            });
        }
        let name = parameter
            .attribute("name")
            .ok_or(TwimlError::MissingAttribute {
                element: "Parameter",
                attribute: "name",
            })?;
        let value = parameter.attribute("value").unwrap_or_default();
        parameters.push((name.to_owned(), value.to_owned()));
    }
    Ok(Verb::ConnectStream {
        url,
        parameters,
        action: connect.attribute("action").map(str::to_owned),
    })
}

fn parse_gather(gather: &Element) -> Result<Verb, TwimlError> {
    let mut plays = Vec::new();
    for noun in gather.elements() {
        match noun.name.as_str() {
            "Play" => plays.push(required_text(noun, "Play")?),
            // Spoken or silent parts play too; the caller has nothing to fetch for them.
            "Say" | "Pause" => {}
            other => {
                return Err(TwimlError::UnexpectedContent {
                    element: "Gather",
                    what: format!("<{other}>"),
                });
            }
        }
    }
    Ok(Verb::Gather {
        action: gather.attribute("action").map(str::to_owned),
        num_digits: number_attribute(gather, "Gather", "numDigits")?,
        timeout: number_attribute(gather, "Gather", "timeout")?,
        plays,
    })
}

fn parse_dial(dial: &Element) -> Result<Verb, TwimlError> {
    let mut nouns = dial.elements();
    let mut answered_url = None;
    let target = match (nouns.next(), nouns.next()) {
        (None, _) => {
            let number = dial.text().trim().to_owned();
            if number.is_empty() {
                return Err(TwimlError::UnexpectedContent {
                    element: "Dial",
                    what: "nothing to dial".to_owned(),
                });
            }
            DialTarget::Number(number)
        }
        (Some(noun), None) => {
            let value = noun.text().trim().to_owned();
            let events = noun.attribute("statusCallbackEvent").unwrap_or("");
            if events.split([' ', ',']).any(|event| event == "answered") {
                answered_url = noun.attribute("statusCallback").map(str::to_owned);
            }
            match noun.name.as_str() {
                "Number" => DialTarget::Number(value),
                "Client" => DialTarget::Client(value),
                "Sip" => DialTarget::Sip(value),
                other => {
                    return Err(TwimlError::UnexpectedContent {
                        element: "Dial",
                        what: format!("<{other}>"),
                    });
                }
            }
        }
        (Some(_), Some(_)) => {
            return Err(TwimlError::UnexpectedContent {
                element: "Dial",
                what: "more than one noun (simultaneous dialing is not supported)".to_owned(),
            });
        }
    };
    Ok(Verb::Dial {
        action: dial.attribute("action").map(str::to_owned),
        timeout: number_attribute(dial, "Dial", "timeout")?,
        caller_id: dial.attribute("callerId").map(str::to_owned),
        target,
        answered_url,
    })
}

fn parse_method(method: Option<&str>) -> Result<Method, TwimlError> {
    match method.map(str::trim) {
        None => Ok(Method::Post),
        Some(method) if method.eq_ignore_ascii_case("POST") => Ok(Method::Post),
        Some(method) if method.eq_ignore_ascii_case("GET") => Ok(Method::Get),
        Some(other) => Err(TwimlError::UnexpectedContent {
            element: "Redirect",
            what: format!("method `{other}`"),
        }),
    }
}

fn required_text(element: &Element, name: &'static str) -> Result<String, TwimlError> {
    let text = element.text().trim().to_owned();
    if text.is_empty() {
        return Err(TwimlError::UnexpectedContent {
            element: name,
            what: "no URL".to_owned(),
        });
    }
    Ok(text)
}

fn number_attribute(
    element: &Element,
    name: &'static str,
    attribute: &'static str,
) -> Result<Option<u32>, TwimlError> {
    element
        .attribute(attribute)
        .map(|value| {
            value.trim().parse().map_err(|_| TwimlError::NotANumber {
                element: name,
                attribute,
            })
        })
        .transpose()
}

/// An XML element as far as TwiML needs: name, attributes, children.
#[derive(Debug)]
struct Element {
    name: String,
    attributes: Vec<(String, String)>,
    children: Vec<Node>,
}

#[derive(Debug)]
enum Node {
    Element(Element),
    Text(String),
}

impl Element {
    fn attribute(&self, name: &str) -> Option<&str> {
        self.attributes
            .iter()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.as_str())
    }

    fn elements(&self) -> impl Iterator<Item = &Element> {
        self.children.iter().filter_map(|child| match child {
            Node::Element(element) => Some(element),
            Node::Text(_) => None,
        })
    }

    fn text(&self) -> String {
        self.children
            .iter()
            .filter_map(|child| match child {
                Node::Text(text) => Some(text.as_str()),
                Node::Element(_) => None,
            })
            .collect()
    }
}

/// Nesting deeper than any TwiML needs is refused rather than recursed into.
const MAX_DEPTH: usize = 16;

struct XmlReader<'a> {
    input: &'a str,
    position: usize,
}

impl<'a> XmlReader<'a> {
    fn new(input: &'a str) -> Self {
        XmlReader { input, position: 0 }
    }

    fn malformed(&self, what: &'static str) -> TwimlError {
        TwimlError::Malformed {
            offset: self.position,
            what,
        }
    }

    fn rest(&self) -> &'a str {
        &self.input[self.position..]
    }

    fn skip_whitespace(&mut self) {
        let rest = self.rest();
        self.position += rest.len() - rest.trim_start().len();
    }

    fn skip_past(&mut self, terminator: &str, what: &'static str) -> Result<&'a str, TwimlError> {
        let rest = self.rest();
        let end = rest.find(terminator).ok_or_else(|| self.malformed(what))?;
        self.position += end + terminator.len();
        Ok(&rest[..end])
    }

    /// Skip the prolog and trailing misc, read the one root element.
    fn document(mut self) -> Result<Element, TwimlError> {
        let rest = self.rest();
        self.position += rest.len() - rest.trim_start_matches('\u{feff}').len();
        self.skip_misc()?;
        if !self.rest().starts_with('<') {
            return Err(self.malformed("expected the root element"));
        }
        let root = self.element(0)?;
        self.skip_misc()?;
        if !self.rest().is_empty() {
            return Err(self.malformed("content after the root element"));
        }
        Ok(root)
    }

    fn skip_misc(&mut self) -> Result<(), TwimlError> {
        loop {
            self.skip_whitespace();
            let rest = self.rest();
            if rest.starts_with("<?") {
                self.skip_past("?>", "unterminated processing instruction")?;
            } else if rest.starts_with("<!--") {
                self.skip_past("-->", "unterminated comment")?;
            } else if rest.starts_with("<!") {
                return Err(self.malformed("DTDs are not supported"));
            } else {
                return Ok(());
            }
        }
    }

    /// Read an element starting at `<`.
    fn element(&mut self, depth: usize) -> Result<Element, TwimlError> {
        if depth > MAX_DEPTH {
            return Err(self.malformed("elements nested too deeply"));
        }
        self.position += 1;
        let name = self.name()?;
        let mut attributes = Vec::new();
        loop {
            self.skip_whitespace();
            let rest = self.rest();
            if rest.starts_with("/>") {
                self.position += 2;
                return Ok(Element {
                    name,
                    attributes,
                    children: Vec::new(),
                });
            }
            if rest.starts_with('>') {
                self.position += 1;
                break;
            }
            let attribute = self.name()?;
            self.skip_whitespace();
            if !self.rest().starts_with('=') {
                return Err(self.malformed("attribute without `=`"));
            }
            self.position += 1;
            self.skip_whitespace();
            let quote = match self.rest().chars().next() {
                Some(quote @ ('"' | '\'')) => quote,
                _ => return Err(self.malformed("attribute value without quotes")),
            };
            self.position += 1;
            let raw = self.skip_past(
                if quote == '"' { "\"" } else { "'" },
                "unterminated attribute value",
            )?;
            if raw.contains('<') {
                return Err(self.malformed("`<` inside an attribute value"));
            }
            let value = self.unescape(raw)?;
            if attributes.iter().any(|(key, _)| *key == attribute) {
                return Err(self.malformed("duplicate attribute"));
            }
            attributes.push((attribute, value));
        }
        let mut children = Vec::new();
        loop {
            let rest = self.rest();
            if rest.is_empty() {
                return Err(self.malformed("element not closed"));
            }
            if rest.starts_with("</") {
                self.position += 2;
                let closing = self.name()?;
                if closing != name {
                    return Err(self.malformed("closing tag does not match"));
                }
                self.skip_whitespace();
                if !self.rest().starts_with('>') {
                    return Err(self.malformed("closing tag not terminated"));
                }
                self.position += 1;
                return Ok(Element {
                    name,
                    attributes,
                    children,
                });
            }
            if rest.starts_with("<!--") {
                self.skip_past("-->", "unterminated comment")?;
            } else if rest.starts_with("<![CDATA[") {
                self.position += "<![CDATA[".len();
                let text = self.skip_past("]]>", "unterminated CDATA")?;
                children.push(Node::Text(text.to_owned()));
            } else if rest.starts_with("<?") {
                self.skip_past("?>", "unterminated processing instruction")?;
            } else if rest.starts_with('<') {
                children.push(Node::Element(self.element(depth + 1)?));
            } else {
                let end = rest.find('<').unwrap_or(rest.len());
                let raw = &rest[..end];
                self.position += end;
                children.push(Node::Text(self.unescape(raw)?));
            }
        }
    }

    fn name(&mut self) -> Result<String, TwimlError> {
        let rest = self.rest();
        let end = rest
            .find(|c: char| !(c.is_alphanumeric() || matches!(c, '_' | '-' | '.' | ':')))
            .unwrap_or(rest.len());
        if end == 0 {
            return Err(self.malformed("expected a name"));
        }
        self.position += end;
        Ok(rest[..end].to_owned())
    }

    fn unescape(&self, raw: &str) -> Result<String, TwimlError> {
        let mut text = String::with_capacity(raw.len());
        let mut rest = raw;
        while let Some(amp) = rest.find('&') {
            text.push_str(&rest[..amp]);
            let after = &rest[amp + 1..];
            let semi = after
                .find(';')
                .ok_or_else(|| self.malformed("`&` without `;`"))?;
            let entity = &after[..semi];
            let decoded = match entity {
                "amp" => '&',
                "lt" => '<',
                "gt" => '>',
                "quot" => '"',
                "apos" => '\'',
                _ => {
                    let code = if let Some(hex) = entity
                        .strip_prefix("#x")
                        .or_else(|| entity.strip_prefix("#X"))
                    {
                        u32::from_str_radix(hex, 16).ok()
                    } else if let Some(decimal) = entity.strip_prefix('#') {
                        decimal.parse().ok()
                    } else {
                        return Err(self.malformed("unknown entity"));
                    };
                    code.and_then(char::from_u32)
                        .ok_or_else(|| self.malformed("invalid character reference"))?
                }
            };
            text.push(decoded);
            rest = &after[semi + 1..];
        }
        text.push_str(rest);
        Ok(text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_voice_answer_streams_then_redirects() {
        let xml = connect_stream(
            "wss://careline.example.org/twilio/media",
            &[("from", "+15551234567"), ("token", "a&b<c>\"d'")],
            "https://careline.example.org/twilio/next",
        );
        assert_eq!(
            xml,
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Response><Connect>\
             <Stream url=\"wss://careline.example.org/twilio/media\">\
             <Parameter name=\"from\" value=\"+15551234567\"/>\
             <Parameter name=\"token\" value=\"a&amp;b&lt;c&gt;&quot;d&apos;\"/>\
             </Stream></Connect>\
             <Redirect method=\"POST\">https://careline.example.org/twilio/next</Redirect>\
             </Response>"
        );
        let verbs = parse(&xml).expect("careline's own TwiML parses");
        assert_eq!(
            verbs,
            vec![
                Verb::ConnectStream {
                    url: "wss://careline.example.org/twilio/media".to_owned(),
                    parameters: vec![
                        ("from".to_owned(), "+15551234567".to_owned()),
                        ("token".to_owned(), "a&b<c>\"d'".to_owned()),
                    ],
                    action: None,
                },
                Verb::Redirect {
                    url: "https://careline.example.org/twilio/next".to_owned(),
                    method: Method::Post,
                },
            ]
        );
    }

    #[test]
    fn every_verb_round_trips() {
        let verbs = vec![
            Verb::ConnectStream {
                url: "wss://h/twilio/media".to_owned(),
                parameters: Vec::new(),
                action: Some("https://h/after?x=1&y=2".to_owned()),
            },
            Verb::Redirect {
                url: "/twilio/next".to_owned(),
                method: Method::Get,
            },
            Verb::Dial {
                action: Some("/twilio/dial-status".to_owned()),
                timeout: Some(20),
                caller_id: Some("+15550001111".to_owned()),
                target: DialTarget::Client("agent-7".to_owned()),
                answered_url: Some("https://h/twilio/dial-status?agent=a".to_owned()),
            },
            Verb::Dial {
                action: None,
                timeout: None,
                caller_id: None,
                target: DialTarget::Sip("sip:desk@example.org;transport=tls".to_owned()),
                answered_url: None,
            },
            Verb::Record {
                action: Some("/vm".to_owned()),
                max_length: Some(120),
            },
            Verb::Pause { length: 2 },
            Verb::Reject {
                reason: Some("busy".to_owned()),
            },
            Verb::Say {
                text: "Tom & Jerry".to_owned(),
            },
            Verb::Play {
                url: "https://h/a.wav".to_owned(),
            },
            Verb::Gather {
                action: Some("/twilio/callback/connect?id=cb1&attempt=2".to_owned()),
                num_digits: Some(1),
                timeout: Some(7),
                plays: vec![
                    "https://h/twilio/callback/prompt/es/callback_returning.wav".to_owned(),
                ],
            },
            Verb::Hangup,
        ];
        assert_eq!(parse(&render(&verbs)), Ok(verbs));
    }

    #[test]
    fn dial_and_hangup_builders_match_the_spec() {
        let xml = dial(
            DialTarget::Number("+15557654321".to_owned()),
            "https://h/twilio/dial-status",
            20,
            None,
            None,
        );
        assert!(xml.contains(
            "<Dial action=\"https://h/twilio/dial-status\" timeout=\"20\"><Number>+15557654321</Number></Dial>"
        ));
        assert_eq!(parse(&hangup()), Ok(vec![Verb::Hangup]));
    }

    #[test]
    fn whitespace_comments_and_attribute_order_do_not_matter() {
        let xml = "\u{feff}<?xml version='1.0'?>\n<!-- hand written -->\n<Response>\n  <Connect>\n    \
                   <Stream\n url = 'wss://h/m' >\n      <Parameter value=\"v&#x41;&#66;\" name=\"n\" />\n    \
                   </Stream>\n  </Connect>\n  <Redirect method=\"post\">\n    https://h/next\n  </Redirect>\n\
                   <Dial timeout=\"15\" action=\"/ds\">\n +15550001111 \n</Dial>\n</Response>\n";
        let verbs = parse(xml).expect("valid TwiML");
        assert_eq!(
            verbs,
            vec![
                Verb::ConnectStream {
                    url: "wss://h/m".to_owned(),
                    parameters: vec![("n".to_owned(), "vAB".to_owned())],
                    action: None,
                },
                Verb::Redirect {
                    url: "https://h/next".to_owned(),
                    method: Method::Post,
                },
                Verb::Dial {
                    action: Some("/ds".to_owned()),
                    timeout: Some(15),
                    caller_id: None,
                    target: DialTarget::Number("+15550001111".to_owned()),
                    answered_url: None,
                },
            ]
        );
    }

    #[test]
    fn broken_documents_are_errors_not_panics() {
        let cases = [
            "",
            "<",
            "<Response>",
            "<Response></Responses>",
            "<Response><Hangup></Response>",
            "<Response a=b/>",
            "<Response><Say>&bogus;</Say></Response>",
            "<Response><Say>&#xD800;</Say></Response>",
            "<Response/><Response/>",
            "<!DOCTYPE x><Response/>",
            "<Response><Connect/></Response>",
            "<Response><Connect><Stream/></Connect></Response>",
            "<Response><Dial timeout=\"soon\">1</Dial></Response>",
            "<Response><Dial></Dial></Response>",
            "<Response><Redirect/></Response>",
            "<Response><Gather numDigits=\"one\"/></Response>",
            "<Response><Gather><Dial>1</Dial></Gather></Response>",
            "<Response><Unknown/></Response>",
            "<Reply/>",
            "<Response x=\"1\" x=\"2\"/>",
            "<Response>\u{e9}<",
        ];
        for case in cases {
            assert!(parse(case).is_err(), "{case:?} should not parse");
        }
        let deep = format!("{}{}", "<a>".repeat(100), "</a>".repeat(100));
        assert!(parse(&format!("<Response>{deep}</Response>")).is_err());
    }

    #[test]
    fn summaries_name_parameters_but_not_their_values() {
        let verb = Verb::ConnectStream {
            url: "wss://h/m".to_owned(),
            parameters: vec![("token".to_owned(), "secret-value".to_owned())],
            action: None,
        };
        assert_eq!(verb.summary(), "Connect/Stream wss://h/m [token]");
    }
}
