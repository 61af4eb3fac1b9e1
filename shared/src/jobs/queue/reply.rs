//! Reading script replies.

use fred::types::Value;

use super::{Leased, Pulled, Touched};

pub(super) fn array(v: Value) -> Option<Vec<Value>> {
    match v {
        Value::Array(a) => Some(a),
        Value::Null => Some(Vec::new()),
        _ => None,
    }
}

pub(super) fn string(v: Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.to_string()),
        Value::Bytes(b) => String::from_utf8(b.to_vec()).ok(),
        Value::Integer(i) => Some(i.to_string()),
        _ => None,
    }
}

pub(super) fn int(v: Value) -> Option<i64> {
    match v {
        Value::Integer(i) => Some(i),
        Value::Double(d) => Some(d as i64),
        other => string(other)?.parse().ok(),
    }
}

/// `{{id, token, attempt, max, timeout, cancel, exhausted}...}, wait_ms`
pub(super) fn pulled(kind: &str, v: Value) -> Option<Pulled> {
    let mut parts = array(v)?.into_iter();
    let jobs = array(parts.next()?)?;
    let wait_ms = int(parts.next()?)?;
    let mut out = Vec::with_capacity(jobs.len());
    for job in jobs {
        let mut f = array(job)?.into_iter();
        out.push(Leased {
            kind: kind.to_string(),
            id: string(f.next()?)?,
            token: string(f.next()?)?,
            attempt: int(f.next()?)?.max(0) as u32,
            max_attempts: int(f.next()?)?.max(1) as u32,
            timeout_ms: int(f.next()?)?.max(1) as u64,
            cancel: string(f.next()?)? == "1",
            exhausted: string(f.next()?)? == "1",
        });
    }
    Some(Pulled {
        jobs: out,
        next_delayed_ms: u64::try_from(wait_ms).ok(),
    })
}

/// `{0}`, or `{1, cancel, timed_out, attempt, max, timeout, seq, ran}`.
pub(super) fn touched(v: Value) -> Option<Option<Touched>> {
    let mut f = array(v)?.into_iter();
    if int(f.next()?)? != 1 {
        return Some(None);
    }
    let mut n = || f.next().and_then(int);
    let (cancel, timed_out) = (n()? == 1, n()? == 1);
    Some(Some(Touched {
        cancel,
        timed_out,
        attempt: n()?.max(0) as u32,
        max_attempts: n()?.max(1) as u32,
        timeout_ms: n()?.max(1) as u64,
        seq: n()?.max(0) as u64,
        ran_ms: n()?.max(0) as u64,
    }))
}
