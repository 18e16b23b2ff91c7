//! What an HTTP request asks of the work queue, read from its headers (feature `tower`).
//!
//! | header | value | default |
//! |---|---|---|
//! | [`x-tailguard-tenant`](TENANT_HEADER) | the tenant, a decimal `u64` | tenant 0 |
//! | [`x-tailguard-priority`](PRIORITY_HEADER) | `lowest`, `low`, `normal`, `high`, `highest`, or a level in -128..=127 | `normal` |
//! | [`x-tailguard-deadline`](DEADLINE_HEADER) | how long the request may wait for a slot: a number and a unit (`ns`, `us`, `ms`, `s`, `m`, `h`), e.g. `50ms` | waits as long as it takes |
//!
//! A deadline bounds the wait only: a request that finds a free slot runs whatever its
//! deadline. Parsing a request's headers is a few map look-ups; nothing allocates unless a
//! header is malformed (then the error names the header and echoes at most 64 characters of it).

use std::time::Duration;

use http::HeaderMap;

use super::request::{Priority, Request, TenantId};
use super::work_queue::WorkQueue;

/// Header naming the request's tenant (a decimal `u64`; default 0).
pub const TENANT_HEADER: &str = "x-tailguard-tenant";
/// Header giving the request's priority: `lowest`, `low`, `normal` (default), `high`,
/// `highest`, or a level in -128..=127.
pub const PRIORITY_HEADER: &str = "x-tailguard-priority";
/// Header giving how long the request may wait for admission (e.g. `50ms`); a request that
/// would wait longer fails fast instead of running late.
pub const DEADLINE_HEADER: &str = "x-tailguard-deadline";

/// Characters of a malformed header echoed back in an error; the rest is elided.
const ECHO_CHARS: usize = 64;

/// What a request asks of the work queue: whose it is, how urgent, how long it may wait.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RequestClass {
    /// The tenant.
    pub tenant: TenantId,
    /// The priority within the tenant.
    pub priority: Priority,
    /// Longest wait for admission; `None` waits as long as it takes.
    pub max_wait: Option<Duration>,
}

/// A request the layer refuses before it reaches the queue (answered `400 Bad Request` with
/// the message): a malformed admission header, or whatever a custom
/// [`Classify`](super::layer::Classify) refuses. Say which header or field, and what a valid one
/// looks like.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct ClassifyError {
    message: String,
}

impl ClassifyError {
    /// A refusal with this message.
    pub fn new(message: impl Into<String>) -> Self {
        Self { message: message.into() }
    }

    /// The message.
    pub fn message(&self) -> &str {
        &self.message
    }
}

impl RequestClass {
    /// Reads the [admission headers](self); an absent header takes its default.
    ///
    /// # Errors
    ///
    /// A [`ClassifyError`] naming the first malformed header.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use tailguard::admission::headers::RequestClass;
    /// use tailguard::admission::{Priority, TenantId};
    ///
    /// let mut headers = http::HeaderMap::new();
    /// headers.insert("x-tailguard-tenant", "7".parse()?);
    /// headers.insert("x-tailguard-priority", "high".parse()?);
    /// headers.insert("x-tailguard-deadline", "50ms".parse()?);
    /// let class = RequestClass::from_headers(&headers)?;
    /// assert_eq!(class.tenant, TenantId(7));
    /// assert_eq!(class.priority, Priority::HIGH);
    /// assert_eq!(class.max_wait, Some(Duration::from_millis(50)));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn from_headers(headers: &HeaderMap) -> Result<RequestClass, ClassifyError> {
        let text = |name: &str| -> Result<Option<&str>, ClassifyError> {
            headers
                .get(name)
                .map(|v| {
                    v.to_str()
                        .map(str::trim)
                        .map_err(|_| ClassifyError::new(format!("header {name} is not ASCII text")))
                })
                .transpose()
        };
        let mut class = RequestClass::default();
        if let Some(tenant) = text(TENANT_HEADER)? {
            class.tenant = TenantId(tenant.parse().map_err(|_| {
                ClassifyError::new(format!(
                    "header {TENANT_HEADER}: {} is not a tenant id (a decimal integer ≥ 0)",
                    echo(tenant)
                ))
            })?);
        }
        if let Some(priority) = text(PRIORITY_HEADER)? {
            class.priority = parse_priority(priority)?;
        }
        if let Some(deadline) = text(DEADLINE_HEADER)? {
            let wait = crate::clock::parse_duration(deadline).map_err(|e| {
                if deadline.len() > ECHO_CHARS {
                    ClassifyError::new(format!(
                        "header {DEADLINE_HEADER}: {} is not a duration",
                        echo(deadline)
                    ))
                } else {
                    ClassifyError::new(format!("header {DEADLINE_HEADER}: {e}"))
                }
            })?;
            class.max_wait = Some(wait);
        }
        Ok(class)
    }

    /// The queue request, its deadline `max_wait` from now on `queue`'s clock.
    pub fn request(&self, queue: &WorkQueue) -> Request {
        let request = Request::new().tenant(self.tenant).priority(self.priority);
        match self.max_wait {
            Some(wait) => request.deadline(queue.deadline_in(wait)),
            None => request,
        }
    }
}

/// `lowest`, `low`, `normal`, `high`, `highest` (any case), or a level in -128..=127.
///
/// # Errors
///
/// A [`ClassifyError`] naming [`PRIORITY_HEADER`] and the valid forms.
pub fn parse_priority(text: &str) -> Result<Priority, ClassifyError> {
    Ok(match text.to_ascii_lowercase().as_str() {
        "lowest" => Priority::LOWEST,
        "low" => Priority::LOW,
        "normal" => Priority::NORMAL,
        "high" => Priority::HIGH,
        "highest" => Priority::HIGHEST,
        level => Priority::new(level.parse().map_err(|_| {
            ClassifyError::new(format!(
                "header {PRIORITY_HEADER}: {} is not a priority \
                 (lowest, low, normal, high, highest, or -128..=127)",
                echo(text)
            ))
        })?),
    })
}

/// `text` quoted, cut to [`ECHO_CHARS`] characters with the full length said.
fn echo(text: &str) -> String {
    match text.char_indices().nth(ECHO_CHARS) {
        None => format!("{text:?}"),
        Some((cut, _)) => format!("{:?} ({} bytes)", format!("{}…", &text[..cut]), text.len()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_parse_and_malformed_ones_are_named() {
        let mut headers = HeaderMap::new();
        assert_eq!(RequestClass::from_headers(&headers).unwrap(), RequestClass::default());
        headers.insert(TENANT_HEADER, "7".parse().unwrap());
        headers.insert(PRIORITY_HEADER, "High".parse().unwrap());
        headers.insert(DEADLINE_HEADER, "1us".parse().unwrap());
        let class = RequestClass::from_headers(&headers).unwrap();
        assert_eq!((class.tenant, class.priority), (TenantId(7), Priority::HIGH));
        assert_eq!(class.max_wait, Some(Duration::from_micros(1)));
        headers.insert(PRIORITY_HEADER, "-3".parse().unwrap());
        assert_eq!(RequestClass::from_headers(&headers).unwrap().priority, Priority::new(-3));

        for (name, bad) in [(TENANT_HEADER, "x"), (PRIORITY_HEADER, "urgent"), (DEADLINE_HEADER, "soon")] {
            let mut headers = HeaderMap::new();
            headers.insert(name, bad.parse().unwrap());
            let error = RequestClass::from_headers(&headers).unwrap_err();
            assert!(error.message().contains(name), "{error}");
        }
    }

    #[test]
    fn a_long_header_is_echoed_cut() {
        for name in [TENANT_HEADER, PRIORITY_HEADER, DEADLINE_HEADER] {
            let mut headers = HeaderMap::new();
            headers.insert(name, "x".repeat(50_000).parse().unwrap());
            let error = RequestClass::from_headers(&headers).unwrap_err().to_string();
            assert!(error.len() < 300 && error.contains("(50000 bytes)"), "{error}");
        }
    }
}
