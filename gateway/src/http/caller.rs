//! Who a request comes from, verified at most once per request.
//!
//! The rate limiter needs the caller's user to pick its bucket, and the
//! handler needs the caller's identity to decide what it may do: both take
//! the request's [`Caller`], which lives in the request's extensions and
//! verifies the token (or the API key) the first time it is asked.

use std::convert::Infallible;
use std::sync::{Arc, OnceLock};

use axum::extract::{FromRef, FromRequestParts};
use axum::http::request::Parts;
use axum::http::HeaderValue;

use crate::auth::{token_of, AuthError, Authenticator, Identity};

/// The credentials of one request and what they were found to prove.
/// Cheap to clone; an extractor that never fails.
#[derive(Clone)]
pub struct Caller(Arc<Inner>);

struct Inner {
    auth: Arc<Authenticator>,
    /// `X-Api-Key`, as sent.
    api_key: Option<HeaderValue>,
    /// The bearer token, or `?token=`.
    token: Option<String>,
    user: OnceLock<Result<Identity, AuthError>>,
    server: OnceLock<Result<Identity, AuthError>>,
}

impl Caller {
    /// The caller of the request whose head is `parts`.
    pub fn new(auth: Arc<Authenticator>, parts: &Parts) -> Self {
        Self(Arc::new(Inner {
            auth,
            api_key: parts.headers.get("x-api-key").cloned(),
            token: token_of(parts),
            user: OnceLock::new(),
            server: OnceLock::new(),
        }))
    }

    /// The end user, by their token (anyone is an admin with `RELAY_AUTH=off`).
    pub fn user(&self) -> Result<&Identity, AuthError> {
        let inner = &*self.0;
        inner
            .user
            .get_or_init(|| inner.auth.user(inner.token.as_deref()))
            .as_ref()
            .map_err(Clone::clone)
    }

    /// A server caller: a valid API key, or an admin's token.
    pub fn server(&self) -> Result<&Identity, AuthError> {
        let inner = &*self.0;
        inner
            .server
            .get_or_init(|| {
                let key = inner.api_key.as_ref().map(HeaderValue::as_bytes);
                inner.auth.server(key, || self.user().cloned())
            })
            .as_ref()
            .map_err(Clone::clone)
    }

    /// Whether the request carries an API key (valid or not).
    pub fn has_api_key(&self) -> bool {
        self.0.api_key.is_some()
    }
}

/// The request's caller, from its extensions (where the rate limiter put
/// it), or made now and put there.
impl<S> FromRequestParts<S> for Caller
where
    S: Send + Sync,
    Arc<Authenticator>: FromRef<S>,
{
    type Rejection = Infallible;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Infallible> {
        if let Some(caller) = parts.extensions.get::<Caller>() {
            return Ok(caller.clone());
        }
        let caller = Caller::new(Arc::from_ref(state), parts);
        parts.extensions.insert(caller.clone());
        Ok(caller)
    }
}
