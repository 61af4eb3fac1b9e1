//! Who a request comes from, and what it may do.
//!
//! End-user requests carry a JWT (`Authorization: Bearer` or `?token=`);
//! server requests carry an API key (`X-Api-Key`) or an admin token. With
//! `RELAY_AUTH=off`, everyone is an admin named `anonymous`.

use std::sync::Arc;

use axum::http::request::Parts;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use relay_shared::config::{AuthConfig, AuthMode};
use relay_shared::topic::{kind_of, Topic, TopicKind};
use serde::Deserialize;
use subtle::ConstantTimeEq;

/// Clock leeway for `exp` and `nbf`, in seconds.
pub const LEEWAY_SECS: u64 = 30;

/// An authenticated caller.
#[derive(Debug, Clone)]
pub struct Identity {
    /// The user id (`sub`), or `anonymous` / `api-key`.
    pub sub: Arc<str>,
    pub admin: bool,
    /// Subscribe patterns (`topics` claim).
    pub topics: Vec<String>,
    /// Publish patterns (`publish` claim).
    pub publish: Vec<String>,
    /// When the token expires (seconds since the epoch), if it does.
    pub exp: Option<u64>,
}

impl Identity {
    pub fn anonymous_admin() -> Self {
        Self {
            sub: Arc::from("anonymous"),
            admin: true,
            topics: vec![],
            publish: vec![],
            exp: None,
        }
    }

    fn api_key() -> Self {
        Self {
            sub: Arc::from("api-key"),
            admin: true,
            topics: vec![],
            publish: vec![],
            exp: None,
        }
    }

    /// What this caller may do with a topic when subscribing or reading it.
    pub fn read_access(&self, topic: &Topic) -> Access {
        if self.admin {
            return Access::Allowed;
        }
        match topic.kind() {
            TopicKind::Job(id) => Access::IfJobOwner(id.to_string()),
            TopicKind::User(sub) if sub == &*self.sub => Access::Allowed,
            TopicKind::User(_) | TopicKind::Jobs => Access::Denied,
            TopicKind::Broadcast => Access::Allowed,
            TopicKind::App => allowed(
                self.topics
                    .iter()
                    .any(|p| pattern_matches(p, topic.as_str())),
            ),
        }
    }

    /// Whether this caller may publish to a topic.
    pub fn may_publish(&self, topic: &Topic) -> bool {
        if self.admin {
            return true;
        }
        match kind_of(topic.as_str()) {
            TopicKind::Job(_) | TopicKind::Jobs | TopicKind::Broadcast => false,
            TopicKind::User(_) | TopicKind::App => self
                .publish
                .iter()
                .any(|p| pattern_matches(p, topic.as_str())),
        }
    }

    /// Seconds until the token expires, if it does.
    pub fn expires_in(&self) -> Option<std::time::Duration> {
        let exp = self.exp?;
        let now = relay_shared::clock::now_secs();
        Some(std::time::Duration::from_secs(exp.saturating_sub(now)))
    }
}

/// The outcome of a read check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Access {
    Allowed,
    Denied,
    /// Allowed only to the owner of this job (checked against the job store).
    IfJobOwner(String),
}

fn allowed(yes: bool) -> Access {
    if yes {
        Access::Allowed
    } else {
        Access::Denied
    }
}

/// Matches a topic against a pattern: segments split on `:`, `*` matches
/// exactly one segment, `**` (last) matches one or more remaining segments.
pub fn pattern_matches(pattern: &str, topic: &str) -> bool {
    let mut pat = pattern.split(':');
    let mut top = topic.split(':');
    loop {
        match (pat.next(), top.next()) {
            (Some("**"), Some(_)) => return pat.next().is_none(),
            (Some("*"), Some(_)) => {}
            (Some(p), Some(t)) if p == t => {}
            (None, None) => return true,
            _ => return false,
        }
    }
}

#[derive(Debug, Deserialize)]
struct Claims {
    sub: String,
    exp: u64,
    #[serde(default)]
    admin: bool,
    #[serde(default)]
    topics: Vec<String>,
    #[serde(default)]
    publish: Vec<String>,
}

/// Why a request was not authenticated.
#[derive(Debug, Clone, thiserror::Error)]
pub enum AuthError {
    #[error("missing token")]
    Missing,
    #[error("invalid token: {0}")]
    Invalid(String),
    #[error("invalid API key")]
    BadApiKey,
}

/// Verifies tokens and API keys.
pub struct Authenticator {
    mode: AuthMode,
    key: Option<(DecodingKey, Validation)>,
    api_keys: Vec<Vec<u8>>,
}

impl std::fmt::Debug for Authenticator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Authenticator")
            .field("mode", &self.mode)
            .field("api_keys", &self.api_keys.len())
            .finish()
    }
}

impl Authenticator {
    /// Builds the verifier from the configuration; fails on an unusable key.
    pub fn new(config: &AuthConfig, api_keys: &[String]) -> Result<Self, String> {
        let key = match (config.mode, &config.jwt_secret, &config.jwt_public_key) {
            (AuthMode::Off, _, _) => None,
            (AuthMode::Jwt, Some(secret), _) => Some((
                DecodingKey::from_secret(secret.as_bytes()),
                Validation::new(Algorithm::HS256),
            )),
            (AuthMode::Jwt, None, Some(pem)) => {
                let pem = pem.replace("\\n", "\n");
                if let Ok(k) = DecodingKey::from_rsa_pem(pem.as_bytes()) {
                    Some((k, Validation::new(Algorithm::RS256)))
                } else if let Ok(k) = DecodingKey::from_ec_pem(pem.as_bytes()) {
                    Some((k, Validation::new(Algorithm::ES256)))
                } else {
                    return Err("RELAY_JWT_PUBLIC_KEY: not an RSA or EC public key in PEM".into());
                }
            }
            (AuthMode::Jwt, None, None) => {
                return Err("RELAY_AUTH: jwt needs RELAY_JWT_SECRET or RELAY_JWT_PUBLIC_KEY".into())
            }
        };
        let key = key.map(|(k, mut v)| {
            v.leeway = LEEWAY_SECS;
            v.set_required_spec_claims(&["exp", "sub"]);
            v.validate_aud = false;
            if let Some(aud) = &config.jwt_audience {
                v.set_audience(&[aud]);
                v.validate_aud = true;
                v.required_spec_claims.insert("aud".into());
            }
            if let Some(iss) = &config.jwt_issuer {
                v.set_issuer(&[iss]);
                v.required_spec_claims.insert("iss".into());
            }
            (k, v)
        });
        Ok(Self {
            mode: config.mode,
            key,
            api_keys: api_keys.iter().map(|k| k.as_bytes().to_vec()).collect(),
        })
    }

    pub fn mode(&self) -> AuthMode {
        self.mode
    }

    /// Verifies a bearer token.
    pub fn verify(&self, token: &str) -> Result<Identity, AuthError> {
        let Some((key, validation)) = &self.key else {
            return Ok(Identity::anonymous_admin());
        };
        let data = jsonwebtoken::decode::<Claims>(token, key, validation)
            .map_err(|e| AuthError::Invalid(e.to_string()))?;
        let c = data.claims;
        if c.sub.is_empty() || c.sub.len() > 256 || c.sub.chars().any(char::is_control) {
            return Err(AuthError::Invalid(
                "sub must be 1..=256 characters without control characters".into(),
            ));
        }
        Ok(Identity {
            sub: Arc::from(c.sub),
            admin: c.admin,
            topics: c.topics,
            publish: c.publish,
            exp: Some(c.exp),
        })
    }

    /// Authenticates an end user by the token their request carries (see
    /// [`token_of`]).
    pub fn user(&self, token: Option<&str>) -> Result<Identity, AuthError> {
        if self.mode == AuthMode::Off {
            return Ok(Identity::anonymous_admin());
        }
        self.verify(token.ok_or(AuthError::Missing)?)
    }

    /// Authenticates a server caller: its API key when it sends one, else
    /// its token (`user`), which must be an admin's.
    pub fn server(
        &self,
        api_key: Option<&[u8]>,
        user: impl FnOnce() -> Result<Identity, AuthError>,
    ) -> Result<Identity, AuthError> {
        if self.mode == AuthMode::Off {
            return Ok(Identity::anonymous_admin());
        }
        if let Some(key) = api_key {
            // Compare with every key, in constant time for each.
            let ok = self
                .api_keys
                .iter()
                .fold(false, |ok, k| ok | bool::from(k.as_slice().ct_eq(key)));
            return if ok {
                Ok(Identity::api_key())
            } else {
                Err(AuthError::BadApiKey)
            };
        }
        let id = user()?;
        if id.admin {
            Ok(id)
        } else {
            Err(AuthError::Invalid(
                "the server API needs an API key or an admin token".into(),
            ))
        }
    }
}

/// The token a request carries: `Authorization: Bearer`, else `?token=`.
pub fn token_of(parts: &Parts) -> Option<String> {
    bearer(parts).or_else(|| query_token(parts))
}

fn bearer(parts: &Parts) -> Option<String> {
    let value = parts
        .headers
        .get(axum::http::header::AUTHORIZATION)?
        .to_str()
        .ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim().to_string())
}

fn query_token(parts: &Parts) -> Option<String> {
    let query = parts.uri.query()?;
    form_urlencoded_get(query, "token")
}

/// The first value of a query parameter, percent-decoded.
pub fn form_urlencoded_get(query: &str, name: &str) -> Option<String> {
    serde_urlencoded::from_str::<Vec<(String, String)>>(query)
        .ok()?
        .into_iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns_match_by_segment() {
        assert!(pattern_matches("chat:*", "chat:room1"));
        assert!(!pattern_matches("chat:*", "chat:room1:x"));
        assert!(!pattern_matches("chat:*", "chat"));
        assert!(pattern_matches("chat:**", "chat:room1:x"));
        assert!(pattern_matches("chat:**", "chat:a"));
        assert!(!pattern_matches("chat:**", "chat"));
        assert!(pattern_matches("a:b", "a:b"));
        assert!(!pattern_matches("a:b", "a:bc"));
        assert!(pattern_matches("*:x", "any:x"));
    }

    #[test]
    fn reserved_topics_follow_the_contract() {
        let bob = Identity {
            sub: Arc::from("bob"),
            admin: false,
            topics: vec!["chat:*".into()],
            publish: vec![],
            exp: None,
        };
        let t = |s: &str| Topic::new(s).unwrap();
        assert_eq!(bob.read_access(&t("user:bob")), Access::Allowed);
        assert_eq!(bob.read_access(&t("user:alice")), Access::Denied);
        assert_eq!(bob.read_access(&t("jobs")), Access::Denied);
        assert_eq!(bob.read_access(&t("broadcast")), Access::Allowed);
        assert_eq!(bob.read_access(&t("job:9")), Access::IfJobOwner("9".into()));
        assert_eq!(bob.read_access(&t("chat:1")), Access::Allowed);
        assert_eq!(bob.read_access(&t("news:1")), Access::Denied);
        assert!(!bob.may_publish(&t("chat:1")));
        assert!(Identity::anonymous_admin().may_publish(&t("jobs")));
    }
}

#[cfg(test)]
mod proptests {
    use proptest::prelude::*;

    use super::*;

    /// A segment of a topic name (no `:`).
    const SEG: &str = "[A-Za-z0-9._@-]{1,12}";

    fn topic() -> impl Strategy<Value = Vec<String>> {
        proptest::collection::vec(SEG, 1..6)
    }

    proptest! {
        #[test]
        fn a_topic_matches_itself(t in topic()) {
            prop_assert!(pattern_matches(&t.join(":"), &t.join(":")));
        }

        #[test]
        fn double_star_matches_every_longer_topic(t in topic(), rest in topic()) {
            let pattern = format!("{}:**", t.join(":"));
            let longer = format!("{}:{}", t.join(":"), rest.join(":"));
            prop_assert!(pattern_matches(&pattern, &longer));
            // ... but not the prefix itself.
            prop_assert!(!pattern_matches(&pattern, &t.join(":")));
        }

        #[test]
        fn star_matches_exactly_one_segment(t in topic(), at in any::<prop::sample::Index>(), extra in SEG) {
            let i = at.index(t.len());
            let mut pat = t.clone();
            pat[i] = "*".into();
            let pattern = pat.join(":");
            prop_assert!(pattern_matches(&pattern, &t.join(":")));
            // `*` never spans a `:`: splitting the segment in two no longer matches.
            let mut longer = t.clone();
            longer.insert(i + 1, extra.clone());
            prop_assert!(!pattern_matches(&pattern, &longer.join(":")));
            let mut split = t.clone();
            split[i] = format!("{}:{}", t[i], extra);
            prop_assert!(!pattern_matches(&pattern, &split.join(":")));
        }

        #[test]
        fn a_changed_segment_does_not_match(t in topic(), at in any::<prop::sample::Index>(), other in SEG) {
            let i = at.index(t.len());
            prop_assume!(t[i] != other);
            let mut changed = t.clone();
            changed[i] = other;
            prop_assert!(!pattern_matches(&t.join(":"), &changed.join(":")));
        }

        #[test]
        fn never_panics(pattern in "[a-z*:]{0,24}", topic in "[a-z:]{0,24}") {
            let _ = pattern_matches(&pattern, &topic);
        }
    }
}
