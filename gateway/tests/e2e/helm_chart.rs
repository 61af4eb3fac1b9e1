//! The Helm chart `helm/relay`: its YAML parses, every `.Values` path the
//! templates use exists, every configuration variable of both binaries can
//! be set from the values, every value is documented, the pod settings hold
//! (probes, grace periods, security context, ingress timeouts), and the
//! Prometheus rules it packages are the repository's.
//!
//! No Kubernetes here: `helm lint` and `helm template` run only when a `helm`
//! binary is on the PATH (none is packaged for Debian or PyPI); the test
//! says when it skipped them.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_norway::Value;

fn chart() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../helm/relay")
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
}

fn yaml(path: &Path) -> Value {
    serde_norway::from_str(&read(path))
        .unwrap_or_else(|e| panic!("{} is not valid YAML: {e}", path.display()))
}

fn templates() -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = std::fs::read_dir(chart().join("templates"))
        .expect("templates folder")
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_file())
        .map(|p| {
            (
                p.file_name().unwrap().to_string_lossy().into_owned(),
                read(&p),
            )
        })
        .collect();
    out.sort();
    out
}

/// `values` at a dotted path, if it exists.
fn lookup<'a>(values: &'a Value, path: &[&str]) -> Option<&'a Value> {
    path.iter().try_fold(values, |v, key| v.get(*key))
}

/// Every `.Values.a.b` path written in a template.
fn values_paths(text: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let mut rest = text;
    while let Some(i) = rest.find(".Values.") {
        let after = &rest[i + ".Values.".len()..];
        let end = after
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == '.'))
            .unwrap_or(after.len());
        out.insert(after[..end].trim_end_matches('.').to_string());
        rest = &after[end..];
    }
    out
}

fn seconds(duration: &str) -> u64 {
    let d = duration.trim();
    let (n, unit) = d.split_at(d.find(|c: char| !c.is_ascii_digit()).unwrap_or(d.len()));
    let n: u64 = n
        .parse()
        .unwrap_or_else(|_| panic!("not a duration: {duration:?}"));
    match unit {
        "ms" => n.div_ceil(1000),
        "s" | "" => n,
        "m" => n * 60,
        "h" => n * 3600,
        _ => panic!("unit of {duration:?} not understood by this test"),
    }
}

fn as_u64(v: Option<&Value>, what: &str) -> u64 {
    v.and_then(Value::as_u64)
        .unwrap_or_else(|| panic!("{what} is not a number: {v:?}"))
}

/// Variables the chart sets per pod, in the Deployment templates.
const PER_POD: [&str; 3] = ["RELAY_LISTEN", "RELAY_METRICS_LISTEN", "RELAY_INSTANCE_ID"];

#[test]
fn chart_and_values_parse_and_every_values_path_in_the_templates_exists() {
    let chart_yaml = yaml(&chart().join("Chart.yaml"));
    assert_eq!(chart_yaml["apiVersion"], "v2");
    assert_eq!(chart_yaml["name"], "relay");
    for key in ["version", "appVersion", "description"] {
        assert!(chart_yaml[key].is_string(), "Chart.yaml has no {key}");
    }
    let values = yaml(&chart().join("values.yaml"));
    let mut missing = Vec::new();
    for (name, text) in templates() {
        for path in values_paths(&text) {
            let parts: Vec<&str> = path.split('.').collect();
            if lookup(&values, &parts).is_none() {
                missing.push(format!("{name}: .Values.{path}"));
            }
        }
    }
    assert!(missing.is_empty(), "paths not in values.yaml: {missing:#?}");
}

#[test]
fn every_configuration_variable_of_both_binaries_is_settable_from_the_values() {
    let values = yaml(&chart().join("values.yaml"));
    let config = values["config"]
        .as_mapping()
        .expect("values.config is a map");
    let secrets = values["secrets"]
        .as_mapping()
        .expect("values.secrets is a map");
    let key_set = |m: &serde_norway::Mapping| -> BTreeSet<String> {
        m.keys()
            .filter_map(|k| k.as_str().map(String::from))
            .collect()
    };
    let config_keys = key_set(config);
    let secret_keys = key_set(secrets);
    let known = relay_shared::config::known_variables();
    assert!(known.len() > 20, "too few variables known: {known:?}");
    let gateway_tpl = read(&chart().join("templates/gateway-deployment.yaml"));
    let worker_tpl = read(&chart().join("templates/worker-deployment.yaml"));
    for v in &known {
        if PER_POD.contains(&v.as_str()) {
            let set_in = |t: &str| t.contains(&format!("- name: {v}"));
            assert!(
                set_in(&gateway_tpl) || set_in(&worker_tpl),
                "{v} is set by no Deployment template"
            );
            assert!(
                !config_keys.contains(v) && !secret_keys.contains(v),
                "{v} is per pod; not in values"
            );
            continue;
        }
        assert!(
            config_keys.contains(v) ^ secret_keys.contains(v),
            "{v} must be in exactly one of values.config and values.secrets"
        );
    }
    for k in config_keys
        .iter()
        .chain(secret_keys.iter().filter(|k| *k != "existingSecret"))
    {
        assert!(
            known.contains(k),
            "values set {k}, which no process reads (misspelt?)"
        );
    }
    for k in [
        "RELAY_JWT_SECRET",
        "RELAY_JWT_PUBLIC_KEY",
        "RELAY_API_KEYS",
        "RELAY_DATABASE_URL",
    ] {
        assert!(secret_keys.contains(k), "{k} must be a secret");
    }
    // The ConfigMap renders every config key; the Secret lists every secret key.
    let configmap = read(&chart().join("templates/configmap.yaml"));
    assert!(
        configmap.contains("range $name, $value := .Values.config"),
        "{configmap}"
    );
    let secret = read(&chart().join("templates/secret.yaml"));
    for k in secret_keys.iter().filter(|k| *k != "existingSecret") {
        assert!(
            secret.contains(&format!("\"{k}\"")),
            "secret.yaml does not render {k}"
        );
    }
    for tpl in [&gateway_tpl, &worker_tpl] {
        assert!(
            tpl.contains("include \"relay.env\""),
            "a Deployment without the shared env"
        );
    }
}

#[test]
fn every_value_is_documented() {
    let text = read(&chart().join("values.yaml"));
    // A key line needs a comment line right above it, unless an enclosing
    // key has one (the whole block is documented) or it opens a block whose
    // keys are documented one by one.
    let mut stack: Vec<(usize, bool)> = Vec::new();
    let mut previous_comment = false;
    let mut undocumented = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let trimmed = line.trim_start();
        if trimmed.is_empty() {
            previous_comment = false;
            continue;
        }
        if trimmed.starts_with('#') {
            previous_comment = true;
            continue;
        }
        let indent = line.len() - trimmed.len();
        while stack.last().is_some_and(|(i, _)| *i >= indent) {
            stack.pop();
        }
        let inherited = stack.iter().any(|(_, documented)| *documented);
        let documented = previous_comment || inherited;
        previous_comment = false;
        let is_item = trimmed.starts_with("- ");
        let Some((_, value)) = trimmed.split_once(':') else {
            continue;
        };
        let opens_block = value.trim().is_empty();
        if !documented && !opens_block && !is_item {
            undocumented.push(format!("line {}: {line}", n + 1));
        }
        stack.push((indent, documented));
    }
    assert!(
        undocumented.is_empty(),
        "values without a comment: {undocumented:#?}"
    );
}

#[test]
fn pods_drain_within_their_grace_run_non_root_and_are_probed() {
    let values = yaml(&chart().join("values.yaml"));
    let grace = seconds(
        values["config"]["RELAY_SHUTDOWN_GRACE"]
            .as_str()
            .expect("RELAY_SHUTDOWN_GRACE"),
    );
    let pre_stop = as_u64(values.get("preStopSleepSeconds"), "preStopSleepSeconds");
    let gateway = as_u64(
        lookup(&values, &["gateway", "terminationGracePeriodSeconds"]),
        "gateway grace",
    );
    let worker = as_u64(
        lookup(&values, &["worker", "terminationGracePeriodSeconds"]),
        "worker grace",
    );
    assert!(
        gateway > grace + pre_stop,
        "gateway terminationGracePeriodSeconds {gateway} <= {grace} + {pre_stop}"
    );
    assert!(
        worker > grace,
        "worker terminationGracePeriodSeconds {worker} <= {grace}"
    );

    let pod = &values["podSecurityContext"];
    assert_eq!(pod["runAsNonRoot"], true);
    assert_eq!(pod["runAsUser"], 10001, "the image's user");
    let c = &values["securityContext"];
    assert_eq!(c["readOnlyRootFilesystem"], true);
    assert_eq!(c["allowPrivilegeEscalation"], false);
    assert_eq!(c["capabilities"]["drop"][0], "ALL");

    let gw = read(&chart().join("templates/gateway-deployment.yaml"));
    let probe_path = |text: &str, probe: &str| -> String {
        let at = text
            .find(&format!("{probe}:"))
            .unwrap_or_else(|| panic!("no {probe}"));
        let after = &text[at..];
        let p = after.find("path: ").expect("probe path") + "path: ".len();
        after[p..].lines().next().unwrap().trim().to_string()
    };
    assert_eq!(probe_path(&gw, "livenessProbe"), "/healthz");
    assert_eq!(probe_path(&gw, "readinessProbe"), "/readyz");
    assert!(gw.contains("preStop:") && gw.contains(".Values.preStopSleepSeconds"));
    assert!(gw.contains(
        "terminationGracePeriodSeconds: {{ .Values.gateway.terminationGracePeriodSeconds }}"
    ));
    let wk = read(&chart().join("templates/worker-deployment.yaml"));
    assert_eq!(probe_path(&wk, "livenessProbe"), "/healthz");
    assert!(wk.contains(
        "terminationGracePeriodSeconds: {{ .Values.worker.terminationGracePeriodSeconds }}"
    ));
    for tpl in [&gw, &wk] {
        assert!(tpl.contains("toYaml .Values.securityContext"));
        assert!(tpl.contains("toYaml .Values.podSecurityContext"));
        // A read-only root needs a writable /tmp.
        assert!(tpl.contains("mountPath: /tmp"));
    }
}

#[test]
fn ingress_keeps_websockets_and_streams_open_and_workers_scale_on_queue_depth() {
    let values = yaml(&chart().join("values.yaml"));
    let a = &values["ingress"]["annotations"];
    let timeout = |k: &str| -> u64 {
        a[k].as_str()
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("{k}: {:?}", a[k]))
    };
    assert!(timeout("nginx.ingress.kubernetes.io/proxy-read-timeout") >= 3600);
    assert!(timeout("nginx.ingress.kubernetes.io/proxy-send-timeout") >= 3600);
    assert_eq!(a["nginx.ingress.kubernetes.io/proxy-buffering"], "off");

    let keda = &values["worker"]["keda"];
    let query = keda["query"].as_str().expect("keda query");
    assert!(
        query.contains("relay_queue_depth") && query.contains("waiting"),
        "{query}"
    );
    let worker_metrics =
        read(&Path::new(env!("CARGO_MANIFEST_DIR")).join("../worker/src/metrics.rs"));
    assert!(
        worker_metrics.contains("\"relay_queue_depth\""),
        "the worker no longer exports relay_queue_depth"
    );
    let keda_tpl = read(&chart().join("templates/keda-scaledobject.yaml"));
    assert!(keda_tpl.contains("type: prometheus"));
    let hpa = read(&chart().join("templates/hpa.yaml"));
    assert!(
        hpa.contains("not .Values.worker.keda.enabled"),
        "KEDA and the CPU HPA would fight over the workers"
    );
    for t in [
        "ingress.yaml",
        "hpa.yaml",
        "pdb.yaml",
        "servicemonitor.yaml",
        "prometheusrule.yaml",
        "configmap.yaml",
        "secret.yaml",
        "_helpers.tpl",
    ] {
        assert!(
            chart().join("templates").join(t).is_file(),
            "templates/{t} missing"
        );
    }
}

#[test]
fn the_packaged_prometheus_rules_are_the_repositorys() {
    let link = chart().join("files/relay-rules.yml");
    let target = std::fs::read_link(&link).expect("files/relay-rules.yml is a link");
    assert_eq!(
        target,
        Path::new("../../../deploy/prometheus/relay-rules.yml")
    );
    let tpl = read(&chart().join("templates/prometheusrule.yaml"));
    assert!(tpl.contains(".Files.Get \"files/relay-rules.yml\""));
    if link.exists() {
        let rules = yaml(&link);
        let groups = rules["groups"]
            .as_sequence()
            .expect("relay-rules.yml has groups");
        assert!(!groups.is_empty(), "relay-rules.yml has no rule groups");
    } else {
        eprintln!("deploy/prometheus/relay-rules.yml does not exist yet: content not checked");
    }
}

#[test]
fn helm_lint_and_template_when_helm_is_installed() {
    let Some(helm) = crate::load_balancer::find_tool("helm") else {
        eprintln!("SKIPPED helm lint/helm template: no `helm` binary on the PATH (not packaged for Debian or PyPI)");
        return;
    };
    let run = |args: &[&str]| {
        let out = Command::new(&helm)
            .args(args)
            .arg(chart())
            .output()
            .expect("run helm");
        assert!(
            out.status.success(),
            "helm {args:?} failed:\n{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    run(&["lint", "--strict"]);
    let rendered = run(&[
        "template",
        "relay",
        "--set",
        "ingress.enabled=true,worker.keda.enabled=true,metrics.serviceMonitor.enabled=true,secrets.RELAY_JWT_SECRET=0123456789abcdef",
    ]);
    let kinds: Vec<String> = rendered
        .split("\n---")
        .filter_map(|doc| serde_norway::from_str::<Value>(doc).ok())
        .filter_map(|v| v["kind"].as_str().map(String::from))
        .collect();
    for k in [
        "Deployment",
        "Service",
        "Ingress",
        "HorizontalPodAutoscaler",
        "PodDisruptionBudget",
        "ConfigMap",
        "Secret",
        "ScaledObject",
        "ServiceMonitor",
    ] {
        assert!(
            kinds.iter().any(|x| x == k),
            "helm template rendered no {k}: {kinds:?}"
        );
    }
}
