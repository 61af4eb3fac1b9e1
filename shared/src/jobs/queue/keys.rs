//! Redis keys of the queue. Every key of one kind shares the hash tag
//! `{q:<kind>}`, so each script touches one Redis Cluster slot. Kind names
//! are `[a-z0-9_.-]`, so the tag is always exactly the kind.

/// Waiting jobs: score = (100 - priority) * 1e13 + enqueued ms.
pub fn wait(kind: &str) -> String {
    format!("relay:{{q:{kind}}}:wait")
}

/// Delayed jobs (first runs and retries): score = due ms.
pub fn delayed(kind: &str) -> String {
    format!("relay:{{q:{kind}}}:delayed")
}

/// Leased jobs: score = lease deadline ms.
pub fn active(kind: &str) -> String {
    format!("relay:{{q:{kind}}}:active")
}

/// Prefix of the per-job hashes (`a` attempts, `m` max attempts, `p`
/// priority, `t` timeout ms, `k` lease token, `w` worker, `c` cancel asked,
/// `x` attempts exhausted, `st` the lease's start ms, `s` the attempt's
/// next chunk `seq`, `o` owner, `r` counted in [`owners`]).
pub fn job_prefix(kind: &str) -> String {
    format!("relay:{{q:{kind}}}:j:")
}

pub fn job(kind: &str, id: &str) -> String {
    format!("relay:{{q:{kind}}}:j:{id}")
}

/// Leased jobs per owner (hash: owner -> running count), kept while a
/// per-owner limit is in force.
pub fn owners(kind: &str) -> String {
    format!("relay:{{q:{kind}}}:owners")
}

/// The channel telling workers of a kind about new jobs (`n`) and cancels (`c:<id>`).
pub fn events(kind: &str) -> String {
    format!("relay:{{q:{kind}}}:ev")
}

/// The kind of a channel named by [`events`].
pub fn kind_of_events(channel: &str) -> Option<&str> {
    channel.strip_prefix("relay:{q:")?.strip_suffix("}:ev")
}

/// The set of kinds workers have registered (beyond the built-in ones).
pub const KINDS: &str = "relay:kinds";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_of_a_kind_share_one_hash_tag() {
        for k in [
            wait("sleep"),
            delayed("sleep"),
            active("sleep"),
            job("sleep", "x"),
            events("sleep"),
            owners("sleep"),
        ] {
            assert!(k.starts_with("relay:{q:sleep}:"), "{k}");
        }
        assert_eq!(
            kind_of_events(&events("re.con-cile_2")),
            Some("re.con-cile_2")
        );
        assert_eq!(kind_of_events("relay:{t:x}:c"), None);
    }
}
