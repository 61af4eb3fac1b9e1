//! Redis's own account of its time: `INFO commandstats` read before and
//! after a run (through `redis-cli`), and the difference per command.
//!
//! Scripts are `EVALSHA`/`EVAL` (fred's `evalsha_with_reload`) or
//! `FCALL`/`FCALL_RO` (functions); a script's `usec` includes the commands it
//! runs, which Redis also counts under their own names.

use std::collections::BTreeMap;

use serde_json::{json, Value};

/// The commands that run a script or a function.
pub const SCRIPT_COMMANDS: [&str; 5] = ["evalsha", "eval", "fcall", "fcall_ro", "evalsha_ro"];

/// How many command rows a report lists (the most expensive first).
const TOP: usize = 15;

/// `calls` and `usec` per command, as `INFO commandstats` gives them.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CommandStats(pub BTreeMap<String, (u64, u64)>);

impl CommandStats {
    /// Parses `cmdstat_<name>:calls=N,usec=N,...` lines (other lines are ignored).
    pub fn parse(info: &str) -> CommandStats {
        let mut out = BTreeMap::new();
        for line in info.lines() {
            let Some(rest) = line.trim().strip_prefix("cmdstat_") else {
                continue;
            };
            let Some((name, fields)) = rest.split_once(':') else {
                continue;
            };
            let field = |key: &str| {
                fields
                    .split(',')
                    .find_map(|kv| kv.strip_prefix(key)?.strip_prefix('='))
                    .and_then(|v| v.parse::<u64>().ok())
            };
            if let (Some(calls), Some(usec)) = (field("calls"), field("usec")) {
                out.insert(name.to_ascii_lowercase(), (calls, usec));
            }
        }
        CommandStats(out)
    }

    /// Reads the stats of the Redis at `url` (`redis-cli -u URL INFO commandstats`).
    pub async fn read(url: &str) -> Option<CommandStats> {
        let out = tokio::process::Command::new("redis-cli")
            .args(["-u", url, "INFO", "commandstats"])
            .output()
            .await
            .ok()?;
        out.status
            .success()
            .then(|| CommandStats::parse(&String::from_utf8_lossy(&out.stdout)))
    }

    /// What happened between `before` and `self`: per command calls, usec
    /// and usec per call (most expensive first), and the script commands
    /// together (`scripts`).
    pub fn since(&self, before: &CommandStats) -> Value {
        let mut rows: Vec<(String, u64, u64)> = self
            .0
            .iter()
            .map(|(name, (calls, usec))| {
                let (c0, u0) = before.0.get(name).copied().unwrap_or((0, 0));
                (
                    name.clone(),
                    calls.saturating_sub(c0),
                    usec.saturating_sub(u0),
                )
            })
            // `INFO` is this measurement's own call.
            .filter(|(name, calls, _)| *calls > 0 && name != "info")
            .collect();
        rows.sort_by(|a, b| b.2.cmp(&a.2).then_with(|| a.0.cmp(&b.0)));
        let per_call = |calls: u64, usec: u64| {
            (calls > 0).then(|| (usec as f64 / calls as f64 * 100.0).round() / 100.0)
        };
        let (mut sc, mut su) = (0u64, 0u64);
        for (name, calls, usec) in &rows {
            if SCRIPT_COMMANDS.contains(&name.as_str()) {
                sc += calls;
                su += usec;
            }
        }
        let total_usec: u64 = rows.iter().map(|r| r.2).sum();
        json!({
            "scripts": {"calls": sc, "usec": su, "usec_per_call": per_call(sc, su)},
            "commands": rows.iter().take(TOP).map(|(name, calls, usec)| json!({
                "command": name, "calls": calls, "usec": usec, "usec_per_call": per_call(*calls, *usec),
            })).collect::<Vec<_>>(),
            "total_usec": total_usec,
        })
    }
}

/// Stats at the start of a run, to diff at its end; empty without a Redis.
pub struct RedisWindow {
    url: Option<String>,
    before: Option<CommandStats>,
}

impl RedisWindow {
    pub async fn start(url: Option<&str>) -> RedisWindow {
        let before = match url {
            Some(u) => CommandStats::read(u).await,
            None => None,
        };
        RedisWindow {
            url: url.map(str::to_string),
            before,
        }
    }

    /// The difference since [`start`](Self::start), or `null` when Redis
    /// could not be read.
    pub async fn finish(&self) -> Value {
        let (Some(url), Some(before)) = (&self.url, &self.before) else {
            return Value::Null;
        };
        match CommandStats::read(url).await {
            Some(after) => after.since(before),
            None => Value::Null,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn diffs_commands_and_sums_scripts() {
        let before = CommandStats::parse(
            "# Commandstats\r\ncmdstat_evalsha:calls=10,usec=300,usec_per_call=30.00,rejected_calls=0,failed_calls=0\r\ncmdstat_xadd:calls=10,usec=50,usec_per_call=5.00\r\n",
        );
        let after = CommandStats::parse(
            "# Commandstats\r\ncmdstat_evalsha:calls=110,usec=2300,usec_per_call=20.91\r\ncmdstat_xadd:calls=110,usec=550,usec_per_call=5.00\r\ncmdstat_fcall:calls=50,usec=500\r\ncmdstat_ping:calls=3,usec=1\r\n",
        );
        assert_eq!(after.0["evalsha"], (110, 2300));
        let d = after.since(&before);
        assert_eq!(d["scripts"]["calls"], 150);
        assert_eq!(d["scripts"]["usec"], 2500);
        assert_eq!(d["scripts"]["usec_per_call"], 16.67);
        assert_eq!(d["commands"][0]["command"], "evalsha");
        assert_eq!(d["commands"][0]["usec_per_call"], 20.0);
        // Equal times are listed by name.
        assert_eq!(d["commands"][1]["command"], "fcall");
        assert_eq!(d["commands"][2]["command"], "xadd");
        assert_eq!(d["total_usec"], 2000 + 500 + 500 + 1);
    }
}
