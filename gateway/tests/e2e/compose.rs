//! The container build and the full stack: `docker-compose.yml` validated by
//! Debian's `docker-compose config` and checked for what the stack needs,
//! and the `Dockerfile` and `.dockerignore` parsed for their required
//! properties. No Docker engine runs here, so the image is not built and the
//! stack is not started by these tests.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_norway::Value;

use crate::load_balancer::require_tool;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn read(name: &str) -> String {
    std::fs::read_to_string(repo().join(name)).unwrap_or_else(|e| panic!("read {name}: {e}"))
}

/// The Dockerfile's instructions, continuation lines joined, comments dropped.
fn instructions(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut current = String::new();
    for line in text.lines() {
        let t = line.trim();
        if t.starts_with('#') || (t.is_empty() && current.is_empty()) {
            continue;
        }
        if let Some(part) = t.strip_suffix('\\') {
            current.push_str(part);
            current.push(' ');
        } else {
            current.push_str(t);
            out.push(std::mem::take(&mut current));
        }
    }
    out
}

#[test]
fn docker_compose_config_accepts_the_stack_and_it_has_every_service() {
    let Some(compose) = require_tool("docker-compose", "docker-compose") else {
        return;
    };
    // Bounded: `timeout` stops a docker-compose that hangs.
    let out = Command::new("timeout")
        .arg("60")
        .arg(compose)
        .current_dir(repo())
        .args(["-f", "docker-compose.yml", "config"])
        .env_remove("RELAY_AUTH")
        .env_remove("RELAY_JWT_SECRET")
        .env_remove("RELAY_API_KEYS")
        .output()
        .expect("run docker-compose");
    assert!(
        out.status.success(),
        "docker-compose config failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let config: Value = serde_norway::from_slice(&out.stdout).expect("config output is YAML");
    let services = &config["services"];
    for s in [
        "redis",
        "postgres",
        "gateway-1",
        "gateway-2",
        "worker",
        "nginx",
        "prometheus",
        "grafana",
    ] {
        assert!(services[s].is_mapping(), "no service {s}");
        assert!(
            services[s]["healthcheck"]["test"].is_sequence(),
            "{s} has no health check"
        );
    }
    let text = |v: &Value| serde_norway::to_string(v).unwrap();

    let redis = text(&services["redis"]["command"]);
    assert!(
        redis.contains("appendonly") && redis.contains("noeviction"),
        "{redis}"
    );
    assert!(text(&services["redis"]["image"]).contains("redis:7"));
    assert!(text(&services["redis"]["healthcheck"]).contains("redis-cli"));
    assert!(text(&services["postgres"]["image"]).contains("postgres:15"));
    assert_eq!(services["postgres"]["environment"]["POSTGRES_DB"], "relay");
    assert!(text(&services["postgres"]["healthcheck"]).contains("pg_isready"));

    // Workers scale: no fixed name, no published ports.
    let worker = &services["worker"];
    assert!(worker.get("container_name").is_none() && worker.get("ports").is_none());
    assert!(text(&worker["healthcheck"]).contains(":9091/healthz"));

    let nginx = &services["nginx"];
    assert!(
        text(&nginx["ports"]).contains("8080"),
        "nginx does not publish 8080"
    );
    assert!(text(&nginx["volumes"]).contains("deploy/nginx/relay.conf"));
    let nginx_ip = nginx["networks"]["default"]["ipv4_address"]
        .as_str()
        .expect("nginx address");

    let known = relay_shared::config::known_variables();
    for gw in ["gateway-1", "gateway-2"] {
        let s = &services[gw];
        assert!(
            text(&s["healthcheck"]).contains("/readyz"),
            "{gw} health check is not /readyz"
        );
        let env = s["environment"].as_mapping().expect("environment");
        assert_eq!(
            s["environment"]["RELAY_TRUSTED_PROXIES"], nginx_ip,
            "{gw} does not trust nginx"
        );
        assert!(env.keys().any(|k| k == "RELAY_API_KEYS"));
        assert_eq!(
            s["environment"]["RELAY_AUTH"], "off",
            "the local default is auth off"
        );
    }
    for s in ["gateway-1", "gateway-2", "worker"] {
        for k in services[s]["environment"].as_mapping().unwrap().keys() {
            let k = k.as_str().unwrap();
            assert!(
                !k.starts_with("RELAY_") || known.iter().any(|v| v == k),
                "{s}: {k} is read by no process"
            );
        }
    }
    let prometheus = text(&services["prometheus"]["volumes"]);
    assert!(prometheus.contains("deploy/prometheus"), "{prometheus}");
    assert!(text(&services["prometheus"]["command"]).contains("/etc/prometheus/prometheus.yml"));
    let grafana = text(&services["grafana"]["volumes"]);
    assert!(
        grafana.contains("grafana/provisioning") && grafana.contains("grafana/dashboards"),
        "{grafana}"
    );
    // The local-only settings say so.
    let raw = read("docker-compose.yml");
    assert!(raw.contains("LOCAL USE ONLY") && raw.contains("RELAY_AUTH=jwt"));
}

#[test]
fn dockerfile_builds_both_binaries_locked_and_runs_them_as_non_root() {
    let ins = instructions(&read("Dockerfile"));
    let froms: Vec<&String> = ins.iter().filter(|i| i.starts_with("FROM ")).collect();
    assert!(froms.len() >= 2, "not a multi-stage build: {froms:?}");
    let args = ins
        .iter()
        .filter(|i| i.starts_with("ARG "))
        .cloned()
        .collect::<Vec<_>>()
        .join("\n");
    let resolve = |from: &str| -> String {
        let image = from.split_whitespace().nth(1).unwrap().to_string();
        match image.strip_prefix("${").and_then(|v| v.strip_suffix('}')) {
            Some(arg) => args
                .lines()
                .find_map(|a| a.strip_prefix(&format!("ARG {arg}=")))
                .unwrap_or_else(|| panic!("ARG {arg} has no default"))
                .to_string(),
            None => image,
        }
    };
    assert_eq!(resolve(froms[0]), "rust:1-bookworm");
    let runtime = resolve(froms.last().unwrap());
    assert!(
        runtime == "debian:bookworm-slim" || runtime.contains("distroless"),
        "{runtime}"
    );

    let build = ins
        .iter()
        .find(|i| i.contains("cargo build"))
        .expect("a cargo build step");
    for part in [
        "--locked",
        "--release",
        "--bin relay-gateway",
        "--bin relay-worker",
    ] {
        assert!(build.contains(part), "cargo build without {part}: {build}");
    }
    assert!(build.contains("type=cache"), "no dependency cache: {build}");

    // Everything after the last FROM is the runtime stage.
    let last = ins.iter().rposition(|i| i.starts_with("FROM ")).unwrap();
    let stage = &ins[last..];
    let copy = stage
        .iter()
        .find(|i| i.starts_with("COPY --from="))
        .expect("binaries copied");
    assert!(
        copy.contains("relay-gateway")
            && copy.contains("relay-worker")
            && copy.ends_with("/usr/local/bin/"),
        "{copy}"
    );
    let user = stage
        .iter()
        .rev()
        .find(|i| i.starts_with("USER "))
        .expect("a USER");
    assert!(user.starts_with("USER 10001"), "{user}");
    let expose = stage
        .iter()
        .find(|i| i.starts_with("EXPOSE "))
        .expect("EXPOSE");
    assert!(
        expose.contains("8080") && expose.contains("9091"),
        "{expose}"
    );
    assert!(stage
        .iter()
        .any(|i| i.starts_with("HEALTHCHECK ") && i.contains("/healthz")));
    let runs: Vec<&String> = stage.iter().filter(|i| i.starts_with("RUN ")).collect();
    assert!(
        runs.iter().all(|r| !r.contains("cargo")),
        "the runtime stage builds"
    );
}

#[test]
fn dockerignore_keeps_build_output_out_but_every_workspace_member_in() {
    let ignore = read(".dockerignore");
    let patterns: Vec<&str> = ignore
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .collect();
    assert!(patterns.contains(&"target/"), "{patterns:?}");
    assert!(patterns.contains(&".git/"), "{patterns:?}");
    let manifest = read("Cargo.toml");
    let members = manifest
        .split("members")
        .nth(1)
        .and_then(|m| m.split(']').next())
        .expect("workspace members");
    for member in members
        .split(',')
        .map(|m| {
            m.trim()
                .trim_matches(|c| c == '[' || c == '=' || c == ' ' || c == '"')
        })
        .filter(|m| !m.is_empty())
    {
        let member = member.trim_matches('"');
        assert!(
            !patterns.iter().any(|p| p.trim_end_matches('/') == member),
            ".dockerignore leaves out the workspace member {member}"
        );
        assert!(
            repo().join(member).join("Cargo.toml").is_file(),
            "member {member}?"
        );
    }
}
