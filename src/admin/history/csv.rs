//! `format=csv`: the buckets of `GET /api/v1/stats` as a spreadsheet opens them — a header row,
//! then one row per bucket with the very values of the JSON answer (a figure with nothing to
//! divide, JSON `null`, is an empty cell). The range's total is left to the spreadsheet.

use serde_json::Value;

/// The columns, in order: the keys of a bucket in the JSON answer.
pub const COLUMNS: [&str; 15] = [
    "start",
    "end",
    "offered",
    "answered",
    "abandoned",
    "handled",
    "callbacks",
    "service_level",
    "asa_secs",
    "abandon_rate",
    "ivr_containment",
    "verification_pass_rate",
    "callback_attempts",
    "callbacks_connected",
    "callbacks_failed",
];

/// The rows of `buckets` (JSON objects) under a header, lines ended by CRLF (RFC 4180).
pub fn table(buckets: &[Value]) -> String {
    let mut text = COLUMNS.join(",");
    text.push_str("\r\n");
    for bucket in buckets {
        let cells: Vec<String> = COLUMNS
            .iter()
            .map(|column| cell(bucket.get(column).unwrap_or(&Value::Null)))
            .collect();
        text.push_str(&cells.join(","));
        text.push_str("\r\n");
    }
    text
}

/// A value as the JSON answer writes it (numbers digit for digit), quoted only where RFC 4180
/// needs it.
fn cell(value: &Value) -> String {
    let text = match value {
        Value::Null => return String::new(),
        Value::String(text) => text.clone(),
        other => other.to_string(),
    };
    if text.contains([',', '"', '\r', '\n']) {
        format!("\"{}\"", text.replace('"', "\"\""))
    } else {
        text
    }
}

/// `careline-stats-portal-hour-2026-03-08.csv`, or with two dates for a range over several
/// days: what the download is saved as. Queue names are `[a-z0-9_]+`, intervals `day`, `hour`,
/// `15m`, so the name needs no quoting.
pub fn file_name(queue: Option<&str>, interval: &str, first_date: &str, last_date: &str) -> String {
    let queue = queue.unwrap_or("all");
    if first_date == last_date {
        format!("careline-stats-{queue}-{interval}-{first_date}.csv")
    } else {
        format!("careline-stats-{queue}-{interval}-{first_date}-to-{last_date}.csv")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_row_per_bucket_with_the_json_values_and_empty_cells_for_null() {
        let text = table(&[
            json!({
                "start": "2026-11-01T01:00:00-05:00", "end": "2026-11-01T01:00:00-06:00",
                "offered": 3, "answered": 2, "abandoned": 1, "handled": 2, "callbacks": 0,
                "service_level": 0.5, "asa_secs": 12.0, "abandon_rate": 1.0 / 3.0,
                "ivr_containment": null, "verification_pass_rate": 1.0
            }),
            json!({"start": "2026-11-01T01:00:00-06:00", "offered": 0}),
        ]);
        let lines: Vec<&str> = text.split("\r\n").collect();
        assert_eq!(
            lines[0],
            "start,end,offered,answered,abandoned,handled,callbacks,service_level,asa_secs,abandon_rate,ivr_containment,verification_pass_rate,callback_attempts,callbacks_connected,callbacks_failed"
        );
        assert_eq!(
            lines[1],
            "2026-11-01T01:00:00-05:00,2026-11-01T01:00:00-06:00,3,2,1,2,0,0.5,12.0,0.3333333333333333,,1.0,,,"
        );
        assert_eq!(lines[2], "2026-11-01T01:00:00-06:00,,0,,,,,,,,,,,,");
        assert_eq!(lines[3], "", "the last row ends with a line break too");
        assert_eq!(lines.len(), 4);
    }

    #[test]
    fn a_cell_with_a_comma_or_quote_is_quoted() {
        assert_eq!(cell(&json!("a,b")), "\"a,b\"");
        assert_eq!(cell(&json!("say \"hi\"")), "\"say \"\"hi\"\"\"");
        assert_eq!(cell(&json!(true)), "true");
    }

    #[test]
    fn the_file_is_named_after_queue_interval_and_dates() {
        assert_eq!(
            file_name(Some("portal"), "hour", "2026-03-08", "2026-03-08"),
            "careline-stats-portal-hour-2026-03-08.csv"
        );
        assert_eq!(
            file_name(None, "day", "2026-03-01", "2026-03-31"),
            "careline-stats-all-day-2026-03-01-to-2026-03-31.csv"
        );
    }
}
