use clap::CommandFactory;

use super::*;

fn gateway(args: &[&str]) -> Result<GatewayConfig, ConfigError> {
    let mut all = vec!["relay-gateway", "--auth", "off"];
    all.extend_from_slice(args);
    parse::<GatewayConfig, _, _>(all)
}

#[test]
fn defaults_follow_the_contract() {
    let c = gateway(&[]).unwrap();
    assert_eq!(c.common.history_size, 1000);
    assert_eq!(c.common.history_ttl, Duration::from_secs(24 * 3600));
    assert_eq!(c.common.shutdown_grace, Duration::from_secs(25));
    assert_eq!(c.listen, "0.0.0.0:8080".parse().unwrap());
    assert_eq!(c.max_frame_bytes, 65536);
}

#[test]
fn bad_values_name_the_variable_in_one_line() {
    let Err(ConfigError::Invalid(line)) = gateway(&["--history-size", "lots"]) else {
        panic!()
    };
    assert!(line.contains("RELAY_HISTORY_SIZE"), "{line}");
    assert!(!line.contains('\n'));
    let Err(ConfigError::Invalid(line)) = gateway(&["--history-ttl", "forever"]) else {
        panic!()
    };
    assert!(line.contains("RELAY_HISTORY_TTL"), "{line}");
    let Err(ConfigError::Invalid(line)) = gateway(&["--redis-url", "http://x"]) else {
        panic!()
    };
    assert!(line.contains("RELAY_REDIS_URL"), "{line}");
}

#[test]
fn workers_need_no_jwt_settings() {
    let c = parse::<WorkerConfig, _, _>(["relay-worker"]);
    assert!(c.is_ok(), "{:?}", c.err());
}

#[test]
fn jwt_mode_needs_a_key() {
    let r = parse::<GatewayConfig, _, _>(["relay-gateway", "--auth", "jwt"]);
    let Err(ConfigError::Invalid(line)) = r else {
        panic!()
    };
    assert!(line.contains("RELAY_JWT_SECRET"));
}

#[test]
fn readme_table_matches_the_code() {
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../README.md")).unwrap();
    let documented: Vec<&str> = readme
        .lines()
        .filter_map(|l| l.strip_prefix("| `RELAY_"))
        .filter_map(|l| l.split('`').next())
        .collect();
    let known = known_variables();
    for v in &known {
        assert!(
            documented.contains(&v.trim_start_matches("RELAY_")),
            "{v} is not in the README's table"
        );
    }
    for d in documented {
        assert!(
            known.contains(&format!("RELAY_{d}")),
            "README documents RELAY_{d}, which no process reads"
        );
    }
}

#[test]
fn help_lists_every_variable() {
    let help = GatewayConfig::command().render_long_help().to_string();
    for v in [
        "RELAY_REDIS_URL",
        "RELAY_LISTEN",
        "RELAY_HISTORY_SIZE",
        "RELAY_SHUTDOWN_GRACE",
        "RELAY_LOG_FORMAT",
    ] {
        assert!(help.contains(v), "{v} missing from --help");
    }
    let help = WorkerConfig::command().render_long_help().to_string();
    for v in [
        "RELAY_WORKER_CONCURRENCY",
        "RELAY_WORKER_KINDS",
        "RELAY_JOB_LEASE",
        "RELAY_METRICS_LISTEN",
    ] {
        assert!(help.contains(v), "{v} missing from --help");
    }
}
