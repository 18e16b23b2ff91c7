//! The one error shape of `tailguard serve`: every error response, the handlers' own and the
//! framework's rejections alike, is `application/json`
//!
//! ```json
//! {"status": 400, "error": "key \"abc\" is not a decimal integer in 0..=18446744073709551615"}
//! ```
//!
//! `status` repeats the HTTP status code; `error` says what was wrong and what to change. Any
//! input echoed back in a message is cut to [`ECHO_CHARS`] characters (see [`echo`]), and a
//! whole message to [`MAX_MESSAGE_BYTES`], so a client never gets its own 50 KB header back.

use axum::Json;
use axum::body::Body;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

/// Characters of an input echoed back in an error message; the rest is elided.
pub const ECHO_CHARS: usize = 64;
/// Longest error message, bytes (a net under [`echo`], for text that comes from elsewhere).
pub const MAX_MESSAGE_BYTES: usize = 1024;
/// Largest non-JSON error body [`json_errors`] reads to wrap; a longer one is cut.
const WRAPPED_BODY_BYTES: usize = 16 * 1024;

/// An error response: a status and the JSON body `{"status": …, "error": "…"}`.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    message: String,
    /// Ask the client to close the connection after this response (`Connection: close`).
    close: bool,
}

impl ApiError {
    /// An error with this status and message (cut to [`MAX_MESSAGE_BYTES`]).
    pub fn new(status: StatusCode, message: impl Into<String>) -> Self {
        Self { status, message: truncate(message.into(), MAX_MESSAGE_BYTES), close: false }
    }

    /// A 400 Bad Request.
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, message)
    }

    /// The same error, sent with `Connection: close` (the connection is not reused: e.g. after a
    /// body that did not arrive in time, whose rest may still be on its way).
    pub fn closing(self) -> Self {
        Self { close: true, ..self }
    }

    /// The status.
    #[cfg(test)]
    pub fn status(&self) -> StatusCode {
        self.status
    }

    /// The message.
    #[cfg(test)]
    pub fn message(&self) -> &str {
        &self.message
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.status, self.message)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = Json(json!({ "status": self.status.as_u16(), "error": self.message }));
        let mut response = (self.status, body).into_response();
        if self.close {
            response.headers_mut().insert(header::CONNECTION, HeaderValue::from_static("close"));
        }
        response
    }
}

/// A handler's result.
pub type ApiResult<T> = Result<T, ApiError>;

/// `text` as a quoted string for an error message, cut to [`ECHO_CHARS`] characters with the
/// full length said: `"xxxx…" (50000 bytes)`.
pub fn echo(text: &str) -> String {
    match text.char_indices().nth(ECHO_CHARS) {
        None => format!("{text:?}"),
        Some((cut, _)) => format!("{:?} ({} bytes)", format!("{}…", &text[..cut]), text.len()),
    }
}

/// `message` cut to at most `max` bytes (at a character boundary, `…` marking the cut).
fn truncate(mut message: String, max: usize) -> String {
    if message.len() > max {
        let mut cut = max.saturating_sub('…'.len_utf8());
        while !message.is_char_boundary(cut) {
            cut -= 1;
        }
        message.truncate(cut);
        message.push('…');
    }
    message
}

/// Middleware (outermost): an error response that is not JSON yet — a rejection of the
/// framework's or of hyper's body handling that no handler shaped — gets the one error shape,
/// its text as the message, its other headers (`Allow`, …) kept.
pub async fn json_errors(response: Response) -> Response {
    let status = response.status();
    let is_json = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if !(status.is_client_error() || status.is_server_error()) || is_json {
        return response;
    }
    let (mut parts, body) = response.into_parts();
    let text = match axum::body::to_bytes(body, WRAPPED_BODY_BYTES).await {
        Ok(bytes) => String::from_utf8_lossy(&bytes).trim().to_owned(),
        Err(_) => String::new(),
    };
    let message =
        if text.is_empty() { status.canonical_reason().unwrap_or("error").to_lowercase() } else { text };
    let error = ApiError::new(status, message).into_response();
    let (error_parts, error_body) = error.into_parts();
    parts.headers.remove(header::CONTENT_LENGTH);
    parts.headers.remove(header::TRANSFER_ENCODING);
    for (name, value) in &error_parts.headers {
        parts.headers.insert(name.clone(), value.clone());
    }
    Response::from_parts(parts, Body::new(error_body))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn echo_cuts_long_input_and_says_how_long_it_was() {
        assert_eq!(echo("abc"), "\"abc\"");
        let long = "x".repeat(50_000);
        let echoed = echo(&long);
        assert!(echoed.len() < 100, "{echoed}");
        assert!(echoed.ends_with("(50000 bytes)"), "{echoed}");
        // Multi-byte characters are never split.
        assert!(echo(&"é".repeat(100)).contains('…'));
    }

    #[test]
    fn messages_are_capped_at_a_character_boundary() {
        let error = ApiError::new(StatusCode::BAD_REQUEST, "ü".repeat(MAX_MESSAGE_BYTES));
        assert!(error.message().len() <= MAX_MESSAGE_BYTES);
        assert!(error.message().ends_with('…'));
    }

    #[tokio::test]
    async fn a_plain_text_rejection_becomes_json_and_keeps_its_headers() {
        let plain = Response::builder()
            .status(StatusCode::METHOD_NOT_ALLOWED)
            .header(header::ALLOW, "GET,HEAD")
            .body(Body::empty())
            .unwrap();
        let wrapped = json_errors(plain).await;
        assert_eq!(wrapped.status(), StatusCode::METHOD_NOT_ALLOWED);
        assert_eq!(wrapped.headers()[header::ALLOW], "GET,HEAD");
        assert_eq!(wrapped.headers()[header::CONTENT_TYPE], "application/json");
        let bytes = axum::body::to_bytes(wrapped.into_body(), 1024).await.unwrap();
        let body: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(body, json!({ "status": 405, "error": "method not allowed" }));

        let ok = Response::new(Body::from("fine"));
        assert_eq!(json_errors(ok).await.status(), StatusCode::OK);
    }
}
