//! Payloads of the built-in kinds, and their validation at submit time.
//!
//! The worker deserialises the same types, so a payload the gateway accepted
//! is one the worker can run.

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The built-in kinds.
pub const BUILT_IN: [&str; 3] = ["sleep", "stream", "reconcile"];

/// Longest `stream` text, in bytes.
pub const MAX_STREAM_TEXT: usize = 1 << 20;
/// Most `sleep` steps.
pub const MAX_SLEEP_STEPS: u32 = 10_000;
/// Longest `sleep`: 24 h.
pub const MAX_SLEEP_MS: u64 = 86_400_000;
/// Most samples of each category a `reconcile` result carries.
pub const MAX_SAMPLES: usize = 1_000;
/// Most compared column pairs in a `reconcile`.
pub const MAX_COMPARE: usize = 256;

/// `sleep`: `steps` progress events evenly over `ms`, failing the first `fail_attempts` attempts.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SleepPayload {
    #[serde(default = "default_sleep_ms")]
    pub ms: u64,
    #[serde(default = "default_steps")]
    pub steps: u32,
    #[serde(default)]
    pub fail_attempts: u32,
}

fn default_sleep_ms() -> u64 {
    1000
}

fn default_steps() -> u32 {
    10
}

/// `stream`: `job.chunk` events that concatenate to `text`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StreamPayload {
    pub text: String,
    #[serde(default = "default_chunk_chars")]
    pub chunk_chars: usize,
    #[serde(default = "default_interval")]
    pub interval_ms: u64,
}

fn default_chunk_chars() -> usize {
    8
}

fn default_interval() -> u64 {
    20
}

/// One input file of a `reconcile`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UploadRef {
    pub upload_id: String,
}

/// `reconcile`: match two CSV uploads by key and compare columns.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReconcilePayload {
    pub left: UploadRef,
    pub right: UploadRef,
    pub left_key: String,
    pub right_key: String,
    /// Column pairs `[left, right]` compared on matching keys.
    #[serde(default)]
    pub compare: Vec<[String; 2]>,
    /// `,` or `;`; detected from the header line when absent.
    #[serde(default)]
    pub delimiter: Option<String>,
    /// Samples kept of each category (default 20, at most 1000).
    #[serde(default = "default_samples")]
    pub sample_limit: usize,
}

fn default_samples() -> usize {
    20
}

impl ReconcilePayload {
    /// The delimiter byte named in the payload, if any.
    pub fn delimiter_byte(&self) -> Result<Option<u8>, String> {
        match self.delimiter.as_deref() {
            None => Ok(None),
            Some(",") => Ok(Some(b',')),
            Some(";") => Ok(Some(b';')),
            Some(_) => Err("delimiter must be \",\" or \";\"".into()),
        }
    }
}

fn parse<T: serde::de::DeserializeOwned>(kind: &str, payload: &Value) -> Result<T, String> {
    serde_json::from_value(payload.clone()).map_err(|e| format!("invalid {kind} payload: {e}"))
}

/// Checks the payload of a built-in kind; other kinds' payloads are the
/// application's business (any JSON object), but every kind's `upload_id`s
/// must be strings, at most [`MAX_UPLOADS_NAMED`] of them.
pub fn validate(kind: &str, payload: &Value) -> Result<(), String> {
    validate_upload_refs(payload)?;
    match kind {
        "sleep" => {
            let p: SleepPayload = parse(kind, payload)?;
            if p.ms > MAX_SLEEP_MS {
                return Err("sleep: ms must be at most 86400000".into());
            }
            if p.steps == 0 || p.steps > MAX_SLEEP_STEPS {
                return Err("sleep: steps must be between 1 and 10000".into());
            }
            Ok(())
        }
        "stream" => {
            let p: StreamPayload = parse(kind, payload)?;
            if p.text.len() > MAX_STREAM_TEXT {
                return Err("stream: text must be at most 1 MiB".into());
            }
            if p.chunk_chars == 0 || p.chunk_chars > 65_536 {
                return Err("stream: chunk_chars must be between 1 and 65536".into());
            }
            if p.interval_ms > 60_000 {
                return Err("stream: interval_ms must be at most 60000".into());
            }
            Ok(())
        }
        "reconcile" => {
            let p: ReconcilePayload = parse(kind, payload)?;
            p.delimiter_byte()?;
            if p.left_key.trim().is_empty() || p.right_key.trim().is_empty() {
                return Err("reconcile: left_key and right_key must name columns".into());
            }
            if p.compare.len() > MAX_COMPARE {
                return Err("reconcile: at most 256 compared column pairs".into());
            }
            if p.sample_limit > MAX_SAMPLES {
                return Err("reconcile: sample_limit must be at most 1000".into());
            }
            Ok(())
        }
        _ => Ok(()),
    }
}

/// Most uploads one payload may name.
pub const MAX_UPLOADS_NAMED: usize = 64;

/// Every upload a payload names, of any kind: the `upload_id` of each
/// object anywhere in it (nested in objects and arrays) that has one.
/// Each is checked for existence and ownership at submit time, so no
/// kind's payload can name someone else's upload. (`kind` does not
/// matter: every kind's uploads are found the same way.)
pub fn uploads_named(_kind: &str, payload: &Value) -> Vec<String> {
    let mut out = Vec::new();
    collect_uploads(payload, &mut out);
    out
}

fn collect_uploads(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::Object(map) => {
            if let Some(Value::String(id)) = map.get("upload_id") {
                if !out.contains(id) {
                    out.push(id.clone());
                }
            }
            map.values().for_each(|v| collect_uploads(v, out));
        }
        Value::Array(items) => items.iter().for_each(|v| collect_uploads(v, out)),
        _ => {}
    }
}

/// Checks the `upload_id`s of any payload: strings, at most [`MAX_UPLOADS_NAMED`].
fn validate_upload_refs(payload: &Value) -> Result<(), String> {
    fn walk(v: &Value, n: &mut usize) -> Result<(), String> {
        match v {
            Value::Object(map) => {
                if let Some(id) = map.get("upload_id") {
                    if !id.is_string() {
                        return Err("upload_id must be a string".into());
                    }
                    *n += 1;
                    if *n > MAX_UPLOADS_NAMED {
                        return Err(format!(
                            "a payload may name at most {MAX_UPLOADS_NAMED} uploads"
                        ));
                    }
                }
                map.values().try_for_each(|v| walk(v, n))
            }
            Value::Array(items) => items.iter().try_for_each(|v| walk(v, n)),
            _ => Ok(()),
        }
    }
    walk(payload, &mut 0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn built_in_payloads_are_checked() {
        assert!(validate("sleep", &json!({})).is_ok());
        assert!(validate("sleep", &json!({"ms":0,"steps":1})).is_ok());
        assert!(validate("sleep", &json!({"ms":0,"steps":0})).is_err());
        assert!(validate("sleep", &json!({"ms":"x"})).is_err());
        assert!(validate("sleep", &json!({"msec":5})).is_err());
        assert!(validate("stream", &json!({})).is_err());
        assert!(validate("stream", &json!({"text":"hi","chunk_chars":0})).is_err());
        let rec = json!({"left":{"upload_id":"a"},"right":{"upload_id":"b"},"left_key":"ID","right_key":"REF","compare":[["A","B"]]});
        assert!(validate("reconcile", &rec).is_ok());
        assert_eq!(
            uploads_named("reconcile", &rec),
            vec!["a".to_string(), "b".to_string()]
        );
        let mut bad = rec.clone();
        bad["delimiter"] = json!("|");
        assert!(validate("reconcile", &bad).is_err());
        assert!(validate("my-kind", &json!({"anything": 1})).is_ok());
    }

    #[test]
    fn every_kind_s_uploads_are_found_anywhere_in_the_payload() {
        let p = json!({"doc": {"upload_id": "a"}, "pages": [{"scan": {"upload_id": "b"}}, {"upload_id": "a"}], "note": "upload_id"});
        assert_eq!(
            uploads_named("ocr", &p),
            vec!["a".to_string(), "b".to_string()]
        );
        assert!(validate("ocr", &p).is_ok());
        assert!(validate("ocr", &json!({"x": {"upload_id": 5}})).is_err());
        let many: Vec<_> = (0..=MAX_UPLOADS_NAMED)
            .map(|i| json!({"upload_id": i.to_string()}))
            .collect();
        assert!(validate("ocr", &json!({ "files": many })).is_err());
    }
}
