//! JSON Web Tokens for tests: HS256 with a shared secret, RS256 and ES256
//! with key pairs made by the `openssl` command at test time, and
//! hand-made tokens a correct verifier must refuse (`alg: none`).
//!
//! ```ignore
//! let gw = gateway(&redis).env("RELAY_AUTH", "jwt").env("RELAY_JWT_SECRET", jwt::SECRET).spawn().await;
//! let alice = jwt::hs256(&jwt::claims("alice"));
//! let keys = jwt::KeyPair::generate(jwt::KeyKind::Es256).expect("openssl");
//! ```

use std::process::Command;
use std::time::{SystemTime, UNIX_EPOCH};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{json, Value};

/// The HS256 secret test gateways are given (`RELAY_JWT_SECRET`).
pub const SECRET: &str = "relay-test-secret-0123456789abcdef";

/// Seconds since the Unix epoch, now.
pub fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970")
        .as_secs()
}

/// `{"sub": sub, "exp": now + 1 h}`: add `admin`, `topics`, `publish`,
/// `aud`, `iss` as a test needs.
pub fn claims(sub: &str) -> Value {
    json!({"sub": sub, "exp": now() + 3600})
}

/// An HS256 token for `claims`, signed with [`SECRET`].
pub fn hs256(claims: &Value) -> String {
    hs256_with(SECRET, claims)
}

/// An HS256 token for `claims`, signed with `secret`.
pub fn hs256_with(secret: &str, claims: &Value) -> String {
    jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        claims,
        &EncodingKey::from_secret(secret.as_bytes()),
    )
    .expect("encode HS256 token")
}

/// A token of the `none` algorithm: header `{"alg":"none","typ":"JWT"}`,
/// the claims, and an empty signature.
pub fn unsigned(claims: &Value) -> String {
    let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"none","typ":"JWT"}"#);
    let body = URL_SAFE_NO_PAD.encode(claims.to_string());
    format!("{header}.{body}.")
}

/// Which asymmetric algorithm a [`KeyPair`] is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyKind {
    /// RSA 2048, RS256.
    Rs256,
    /// P-256, ES256.
    Es256,
}

/// A fresh key pair in PEM (PKCS#8 private key, SPKI public key).
#[derive(Debug, Clone)]
pub struct KeyPair {
    pub kind: KeyKind,
    pub private_pem: String,
    /// What the gateway is given as `RELAY_JWT_PUBLIC_KEY`.
    pub public_pem: String,
}

/// Whether the `openssl` command runs here.
pub fn openssl_available() -> bool {
    Command::new("openssl")
        .arg("version")
        .output()
        .is_ok_and(|o| o.status.success())
}

impl KeyPair {
    /// Generates a key pair with the `openssl` command; `None` when
    /// `openssl` is not installed. Panics if it is installed but fails.
    pub fn generate(kind: KeyKind) -> Option<KeyPair> {
        if !openssl_available() {
            return None;
        }
        let dir = tempfile::tempdir().expect("temp dir for keys");
        let private = dir.path().join("private.pem");
        let private_arg = private.to_string_lossy().into_owned();
        let opts: &[&str] = match kind {
            KeyKind::Rs256 => &["-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048"],
            KeyKind::Es256 => &["-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256"],
        };
        let mut args = vec!["genpkey"];
        args.extend_from_slice(opts);
        args.extend_from_slice(&["-out", &private_arg]);
        run_openssl(&args);
        let public_pem = run_openssl(&["pkey", "-in", &private_arg, "-pubout"]);
        let private_pem = std::fs::read_to_string(&private).expect("read private key");
        Some(KeyPair {
            kind,
            private_pem,
            public_pem,
        })
    }

    /// A token for `claims` signed with this pair's private key.
    pub fn sign(&self, claims: &Value) -> String {
        let (alg, key) = match self.kind {
            KeyKind::Rs256 => (
                Algorithm::RS256,
                EncodingKey::from_rsa_pem(self.private_pem.as_bytes()),
            ),
            KeyKind::Es256 => (
                Algorithm::ES256,
                EncodingKey::from_ec_pem(self.private_pem.as_bytes()),
            ),
        };
        let key = key.expect("private key PEM");
        jsonwebtoken::encode(&Header::new(alg), claims, &key).expect("sign token")
    }
}

/// Runs `openssl args...`; returns its stdout, panics with its stderr on failure.
fn run_openssl(args: &[&str]) -> String {
    let out = Command::new("openssl")
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("run openssl {args:?}: {e}"));
    assert!(
        out.status.success(),
        "openssl {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("openssl output is UTF-8")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unsigned_tokens_have_three_parts_and_no_signature() {
        let t = unsigned(&claims("x"));
        let parts: Vec<&str> = t.split('.').collect();
        assert_eq!(parts.len(), 3);
        assert!(parts[2].is_empty());
        let header = URL_SAFE_NO_PAD.decode(parts[0]).unwrap();
        assert_eq!(header, br#"{"alg":"none","typ":"JWT"}"#);
    }

    #[test]
    fn hs256_tokens_verify_with_the_secret() {
        let t = hs256(&claims("alice"));
        let mut v = jsonwebtoken::Validation::new(Algorithm::HS256);
        v.set_required_spec_claims(&["exp", "sub"]);
        let data = jsonwebtoken::decode::<Value>(
            &t,
            &jsonwebtoken::DecodingKey::from_secret(SECRET.as_bytes()),
            &v,
        )
        .unwrap();
        assert_eq!(data.claims["sub"], "alice");
    }
}
