//! Twilio's REST API for the calls careline places itself (callbacks), without I/O: the account
//! and its credentials, the `Calls.json` request's form, reading Twilio's answer, and what
//! `AnsweredBy` (answering-machine detection) says.
//!
//! `POST {api_base}/2010-04-01/Accounts/{AccountSid}/Calls.json` with HTTP Basic auth — the
//! account SID and its auth token, or an API key's SID and secret — and the form parameters
//! [`OutboundCall::form`] lists. Twilio answers `201 Created` with the call as JSON (its `sid`),
//! or an error status with `{"code", "message"}`; the message may quote the number called, so
//! only the status and the code are ever kept.

use std::fmt;

/// A Twilio account careline may place calls from; the secret never prints.
#[derive(Clone, PartialEq, Eq)]
pub struct TwilioAccount {
    /// `AC…`: in the API's path.
    pub account_sid: String,
    /// Basic auth user: the account SID, or an API key's SID (`SK…`).
    pub username: String,
    secret: String,
}

impl fmt::Debug for TwilioAccount {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TwilioAccount")
            .field("account_sid", &self.account_sid)
            .field("username", &self.username)
            .field("secret", &"<redacted>")
            .finish()
    }
}

/// Why the environment does not name a usable account.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AccountError {
    #[error(
        "TWILIO_ACCOUNT_SID is set but neither CARELINE_TWILIO_AUTH_TOKEN nor TWILIO_API_KEY and TWILIO_API_SECRET are: callbacks cannot be placed"
    )]
    NoSecret,
    #[error("TWILIO_API_KEY and TWILIO_API_SECRET must be set together")]
    HalfAKey,
}

impl TwilioAccount {
    pub fn new(account_sid: &str, username: &str, secret: &str) -> TwilioAccount {
        TwilioAccount {
            account_sid: account_sid.to_owned(),
            username: username.to_owned(),
            secret: secret.to_owned(),
        }
    }

    /// The account named by `TWILIO_ACCOUNT_SID`, authenticated with `TWILIO_API_KEY` and
    /// `TWILIO_API_SECRET` when both are set, else with `CARELINE_TWILIO_AUTH_TOKEN`. `None`
    /// without `TWILIO_ACCOUNT_SID`.
    pub fn from_env() -> Result<Option<TwilioAccount>, AccountError> {
        TwilioAccount::from_vars(|name| std::env::var(name).ok().filter(|value| !value.is_empty()))
    }

    /// [`TwilioAccount::from_env`] over any source of variables.
    pub fn from_vars(
        var: impl Fn(&str) -> Option<String>,
    ) -> Result<Option<TwilioAccount>, AccountError> {
        let Some(account_sid) = var("TWILIO_ACCOUNT_SID") else {
            return Ok(None);
        };
        match (var("TWILIO_API_KEY"), var("TWILIO_API_SECRET")) {
            (Some(key), Some(secret)) => Ok(Some(TwilioAccount::new(&account_sid, &key, &secret))),
            (Some(_), None) | (None, Some(_)) => Err(AccountError::HalfAKey),
            (None, None) => match var("CARELINE_TWILIO_AUTH_TOKEN") {
                Some(token) => Ok(Some(TwilioAccount::new(&account_sid, &account_sid, &token))),
                None => Err(AccountError::NoSecret),
            },
        }
    }

    /// The Basic auth password.
    pub fn secret(&self) -> &str {
        &self.secret
    }

    /// Where calls are created: `{api_base}/2010-04-01/Accounts/{sid}/Calls.json`.
    pub fn calls_url(&self, api_base: &str) -> String {
        let sid: String = form_urlencoded::byte_serialize(self.account_sid.as_bytes()).collect();
        format!(
            "{}/2010-04-01/Accounts/{sid}/Calls.json",
            api_base.trim_end_matches('/')
        )
    }
}

/// One call for Twilio to place.
#[derive(Clone, PartialEq, Eq)]
pub struct OutboundCall<'a> {
    /// The patient's number: never logged (`Debug` masks it).
    pub to: &'a str,
    /// The desk's number, `[callbacks] caller_id`.
    pub from: &'a str,
    /// careline's TwiML for when the call is answered.
    pub url: &'a str,
    /// Where Twilio reports how the call ended.
    pub status_callback: &'a str,
    /// How long the patient's phone rings, in seconds.
    pub timeout_secs: u32,
}

impl fmt::Debug for OutboundCall<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OutboundCall")
            .field("to", &"<redacted>")
            .field("from", &self.from)
            .field("url", &self.url)
            .field("status_callback", &self.status_callback)
            .field("timeout_secs", &self.timeout_secs)
            .finish()
    }
}

impl OutboundCall<'_> {
    /// The form parameters of `Calls.json`: answering-machine detection on, TwiML and status
    /// by POST.
    pub fn form(&self) -> Vec<(&'static str, String)> {
        vec![
            ("To", self.to.to_owned()),
            ("From", self.from.to_owned()),
            ("Url", self.url.to_owned()),
            ("Method", "POST".to_owned()),
            ("StatusCallback", self.status_callback.to_owned()),
            ("StatusCallbackMethod", "POST".to_owned()),
            ("Timeout", self.timeout_secs.to_string()),
            ("MachineDetection", "Enable".to_owned()),
        ]
    }
}

/// The `sid` of the call in Twilio's `201 Created` answer.
pub fn created_call_sid(body: &[u8]) -> Option<String> {
    let answer: serde_json::Value = serde_json::from_slice(body).ok()?;
    answer
        .get("sid")
        .and_then(serde_json::Value::as_str)
        .filter(|sid| !sid.is_empty() && sid.chars().all(|c| c.is_ascii_alphanumeric()))
        .map(str::to_owned)
}

/// Twilio's error code in an error answer (`{"code": 21211, ...}`); never its message, which
/// may quote the number.
pub fn error_code(body: &[u8]) -> Option<u64> {
    let answer: serde_json::Value = serde_json::from_slice(body).ok()?;
    answer.get("code").and_then(serde_json::Value::as_u64)
}

/// Who answered, by Twilio's answering-machine detection (`AnsweredBy`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AnsweredBy {
    Human,
    /// A machine or a fax.
    Machine,
    /// Detection could not tell (or was off): treated as a person, who hears the prompt.
    Unknown,
}

impl AnsweredBy {
    pub fn parse(value: Option<&str>) -> AnsweredBy {
        match value {
            Some("human") => AnsweredBy::Human,
            Some(machine) if machine.starts_with("machine") || machine == "fax" => {
                AnsweredBy::Machine
            }
            _ => AnsweredBy::Unknown,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_account_comes_from_an_api_key_or_the_auth_token() {
        let vars = |pairs: &'static [(&'static str, &'static str)]| {
            move |name: &str| {
                pairs
                    .iter()
                    .find(|(key, _)| *key == name)
                    .map(|(_, value)| (*value).to_owned())
            }
        };
        assert_eq!(TwilioAccount::from_vars(vars(&[])), Ok(None));
        let token = TwilioAccount::from_vars(vars(&[
            ("TWILIO_ACCOUNT_SID", "AC1"),
            ("CARELINE_TWILIO_AUTH_TOKEN", "tok"),
        ]))
        .expect("valid")
        .expect("an account");
        assert_eq!((token.username.as_str(), token.secret()), ("AC1", "tok"));
        let key = TwilioAccount::from_vars(vars(&[
            ("TWILIO_ACCOUNT_SID", "AC1"),
            ("CARELINE_TWILIO_AUTH_TOKEN", "tok"),
            ("TWILIO_API_KEY", "SK1"),
            ("TWILIO_API_SECRET", "shh"),
        ]))
        .expect("valid")
        .expect("an account");
        assert_eq!((key.username.as_str(), key.secret()), ("SK1", "shh"));
        assert_eq!(
            TwilioAccount::from_vars(vars(&[("TWILIO_ACCOUNT_SID", "AC1")])),
            Err(AccountError::NoSecret)
        );
        assert_eq!(
            TwilioAccount::from_vars(vars(&[
                ("TWILIO_ACCOUNT_SID", "AC1"),
                ("TWILIO_API_KEY", "SK1")
            ])),
            Err(AccountError::HalfAKey)
        );
        assert!(!format!("{key:?}").contains("shh"));
    }

    #[test]
    fn an_outbound_call_asks_for_machine_detection_and_never_prints_the_number() {
        let call = OutboundCall {
            to: "+13125550147",
            from: "+13125550100",
            url: "https://ivr.example.org/twilio/callback/answer?id=cb1&attempt=1",
            status_callback: "https://ivr.example.org/twilio/callback/status?id=cb1&attempt=1",
            timeout_secs: 30,
        };
        let form = call.form();
        assert!(form.contains(&("MachineDetection", "Enable".to_owned())));
        assert!(form.contains(&("To", "+13125550147".to_owned())));
        assert!(form.contains(&("Timeout", "30".to_owned())));
        assert!(!format!("{call:?}").contains("5550147"));
        let account = TwilioAccount::new("AC123", "AC123", "tok");
        assert_eq!(
            account.calls_url("https://api.twilio.com/"),
            "https://api.twilio.com/2010-04-01/Accounts/AC123/Calls.json"
        );
    }

    #[test]
    fn twilios_answers_are_read_for_the_sid_or_the_code_only() {
        assert_eq!(
            created_call_sid(br#"{"sid": "CA0123abc", "to": "+13125550147"}"#).as_deref(),
            Some("CA0123abc")
        );
        assert_eq!(created_call_sid(b"not json"), None);
        assert_eq!(
            error_code(br#"{"code": 21211, "message": "The 'To' number +1312 is not valid"}"#),
            Some(21211)
        );
        assert_eq!(AnsweredBy::parse(Some("human")), AnsweredBy::Human);
        assert_eq!(
            AnsweredBy::parse(Some("machine_end_beep")),
            AnsweredBy::Machine
        );
        assert_eq!(AnsweredBy::parse(Some("fax")), AnsweredBy::Machine);
        assert_eq!(AnsweredBy::parse(None), AnsweredBy::Unknown);
    }
}
