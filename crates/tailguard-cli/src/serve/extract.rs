//! Extractors whose rejections are [`ApiError`]s: a path segment, a strict query string, an
//! endpoint that takes no input, optional JSON options, and the canonical decimal numbers of
//! keys and ids.

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Path, Query, Request};
use axum::http::request::Parts;
use axum::http::{StatusCode, header};
use serde::Deserialize;
use serde::de::DeserializeOwned;

use super::error::{ApiError, ApiResult, echo};

/// A path parameter; a segment that is not UTF-8 (or does not deserialize) is a JSON 400.
#[derive(Debug)]
pub struct ApiPath<T>(pub T);

impl<T, S> FromRequestParts<S> for ApiPath<T>
where
    T: DeserializeOwned + Send,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        match Path::<T>::from_request_parts(parts, state).await {
            Ok(Path(value)) => Ok(ApiPath(value)),
            Err(rejection) => {
                Err(ApiError::new(rejection.status(), format!("path: {}", rejection.body_text())))
            }
        }
    }
}

/// A query string deserialized into `T`; a duplicated, unknown (with
/// `#[serde(deny_unknown_fields)]`) or malformed parameter is a JSON 400.
#[derive(Debug)]
pub struct ApiQuery<T>(pub T);

impl<T, S> FromRequestParts<S> for ApiQuery<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        match Query::<T>::from_request_parts(parts, state).await {
            Ok(Query(value)) => Ok(ApiQuery(value)),
            Err(rejection) => Err(ApiError::bad_request(format!(
                "query string {}: {}",
                echo(parts.uri.query().unwrap_or_default()),
                rejection.body_text().trim_start_matches("Failed to deserialize query string: ")
            ))),
        }
    }
}

/// A request to an endpoint that takes no parameters and no body: either is a 400 naming it.
/// The body is refused from its headers (`Content-Length` above 0, or any
/// `Transfer-Encoding`), before a byte of it is read.
#[derive(Clone, Copy, Debug)]
pub struct NoInput;

impl<S: Send + Sync> FromRequest<S> for NoInput {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, Self::Rejection> {
        let (mut parts, _body) = request.into_parts();
        NoQuery::from_request_parts(&mut parts, state).await?;
        let what = || format!("{} {}", parts.method, parts.uri.path());
        let length = parts.headers.get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok());
        if length.is_some_and(|l| l.trim() != "0") || parts.headers.contains_key(header::TRANSFER_ENCODING) {
            return Err(ApiError::bad_request(format!(
                "{} takes no body; send the request without one",
                what()
            ))
            .closing());
        }
        Ok(NoInput)
    }
}

/// Options of an endpoint that takes no query parameters and an optional JSON body: no body
/// (or an empty one) gives `T::default()`; a body that is not JSON of `T` (an unknown field,
/// with `#[serde(deny_unknown_fields)]`, a wrong type) is a 400 naming the problem.
#[derive(Debug)]
pub struct JsonOptions<T>(pub T);

impl<T, S> FromRequest<S> for JsonOptions<T>
where
    T: DeserializeOwned + Default,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, Self::Rejection> {
        let (mut parts, body) = request.into_parts();
        NoQuery::from_request_parts(&mut parts, state).await?;
        let what = format!("{} {}", parts.method, parts.uri.path());
        let request = Request::from_parts(parts, body);
        let bytes = Bytes::from_request(request, state).await.map_err(|rejection| {
            ApiError::new(rejection.status(), format!("cannot read the body: {}", rejection.body_text()))
                .closing()
        })?;
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Ok(JsonOptions(T::default()));
        }
        serde_json::from_slice(&bytes)
            .map(JsonOptions)
            .map_err(|e| ApiError::bad_request(format!("{what}: the body is not valid options: {e}")))
    }
}

/// A request to an endpoint that takes no query parameters: any is a 400 naming them.
#[derive(Clone, Copy, Debug)]
pub struct NoQuery;

impl<S: Send + Sync> FromRequestParts<S> for NoQuery {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        match parts.uri.query() {
            None | Some("") => Ok(NoQuery),
            Some(query) => Err(ApiError::bad_request(format!(
                "{} {} takes no parameters, got {}",
                parts.method,
                parts.uri.path(),
                echo(query)
            ))),
        }
    }
}

/// `?format=text|json`, nothing else.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FormatQuery {
    format: Option<String>,
}

impl FormatQuery {
    fn choose(&self, default_text: bool) -> ApiResult<bool> {
        match self.format.as_deref() {
            None => Ok(default_text),
            Some("text") => Ok(true),
            Some("json") => Ok(false),
            Some(other) => {
                Err(ApiError::bad_request(format!("format {} is unknown: use text or json", echo(other))))
            }
        }
    }

    /// Whether text was asked for (JSON by default).
    pub fn text(&self) -> ApiResult<bool> {
        self.choose(false)
    }

    /// Whether text is wanted (text by default).
    pub fn text_unless_json(&self) -> ApiResult<bool> {
        self.choose(true)
    }
}

/// A `u64` written the one canonical way: decimal digits, no sign, no leading zero (`0` itself
/// aside), so that `/jobs/1`, `/jobs/01` and `/jobs/+1` are not three names of one job.
///
/// # Errors
/// A 400 naming `what` and the text (cut by [`echo`]).
pub fn parse_decimal(text: &str, what: &str) -> ApiResult<u64> {
    let canonical = !text.is_empty()
        && text.bytes().all(|b| b.is_ascii_digit())
        && (text == "0" || !text.starts_with('0'));
    if !canonical {
        return Err(ApiError::bad_request(format!(
            "{what} {} is not a decimal integer in 0..=18446744073709551615 \
             (digits only, no sign, no leading zero)",
            echo(text)
        )));
    }
    text.parse::<u64>().map_err(|_| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            format!("{what} {} is larger than 18446744073709551615", echo(text)),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_canonical_decimal_spelling_parses() {
        assert_eq!(parse_decimal("0", "key").unwrap(), 0);
        assert_eq!(parse_decimal("18446744073709551615", "key").unwrap(), u64::MAX);
        for bad in ["", "+1", "-1", "01", "00", "1.5", " 1", "1e3", "١"] {
            let error = parse_decimal(bad, "job id").unwrap_err();
            assert_eq!(error.status(), StatusCode::BAD_REQUEST, "{bad:?}");
            assert!(error.message().starts_with("job id "), "{}", error.message());
        }
        assert!(parse_decimal("18446744073709551616", "key").unwrap_err().message().contains("larger"));
    }
}
