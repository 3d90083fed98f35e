//! The wallboard, `GET /dashboard`: a page for a wall screen showing each queue (callers
//! waiting, the longest wait, today's service level, agents by state, and today's calls per
//! local hour as a small chart) and every agent's state, live.
//!
//! The page, its script and its style are files in `src/admin/dashboard/`, built into the
//! binary: no framework, no build step, no chart library, nothing fetched from elsewhere. They
//! hold no data, so they are served without a token; the script reads everything from
//! `/api/v1/queues`, `/api/v1/agents` and `/api/v1/stats` (each queue's hours today, drawn as
//! an SVG built in the script) with the token it asks for, and refetches when
//! `/api/v1/events` says something changed. The Content-Security-Policy allows nothing but this
//! server.

use axum::http::header;
use axum::response::{IntoResponse, Response};

const PAGE: &str = include_str!("dashboard/wallboard.html");
const SCRIPT: &str = include_str!("dashboard/wallboard.js");
const STYLE: &str = include_str!("dashboard/wallboard.css");

/// Scripts, styles and requests from this server only; no frames, no form posts, no plugins.
const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; \
     style-src 'self'; connect-src 'self'; img-src 'self'; base-uri 'none'; \
     form-action 'none'; frame-ancestors 'none'";

fn asset(content_type: &'static str, body: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CACHE_CONTROL, "no-cache"),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
            (header::REFERRER_POLICY, "no-referrer"),
            (header::CONTENT_SECURITY_POLICY, CONTENT_SECURITY_POLICY),
        ],
        body,
    )
        .into_response()
}

/// `GET /dashboard`.
pub async fn page() -> Response {
    asset("text/html; charset=utf-8", PAGE)
}

/// `GET /dashboard/wallboard.js`.
pub async fn script() -> Response {
    asset("text/javascript; charset=utf-8", SCRIPT)
}

/// `GET /dashboard/wallboard.css`.
pub async fn style() -> Response {
    asset("text/css; charset=utf-8", STYLE)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_page_loads_its_script_and_style_from_this_server_only() {
        assert!(PAGE.contains(r#"<script src="dashboard/wallboard.js" defer>"#));
        assert!(PAGE.contains(r#"href="dashboard/wallboard.css""#));
        assert!(!PAGE.contains("http://") && !PAGE.contains("https://"));
        // The one address in the script is the SVG namespace, a name that is never fetched.
        let script = SCRIPT.replace("\"http://www.w3.org/2000/svg\"", "");
        assert!(!script.contains("http://") && !script.contains("https://"));
        // Inline scripts would be refused by the policy.
        assert_eq!(PAGE.matches("<script").count(), 1);
    }
}
