#!/usr/bin/env python3
"""Writes grafana/dashboards/relay-gateways.json and relay-jobs.json.

The JSON files are what Grafana loads and what the tests read
(gateway/tests/e2e/dashboards.rs); edit this script and run it
(`python3 grafana/generate.py`) rather than editing the JSON by hand.
"""
import json
import os

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "dashboards")
DS = {"type": "prometheus", "uid": "relay-prometheus"}
I = 'instance=~"$instance"'
K = 'kind=~"$kind"'
RI = '$__rate_interval'

def panel(pid, title, targets, x, y, w=12, h=8, unit="short", kind="timeseries", desc=""):
    p = {
        "id": pid, "type": kind, "title": title, "datasource": DS,
        "gridPos": {"h": h, "w": w, "x": x, "y": y},
        "fieldConfig": {"defaults": {"unit": unit}, "overrides": []},
        "options": {"legend": {"displayMode": "list", "placement": "bottom", "showLegend": True},
                    "tooltip": {"mode": "multi", "sort": "desc"}} if kind == "timeseries" else
                   {"reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False},
                    "colorMode": "value", "graphMode": "area", "textMode": "auto"},
        "targets": [{"refId": chr(65 + i), "datasource": DS, "expr": e, "legendFormat": l}
                    for i, (e, l) in enumerate(targets)],
    }
    if desc:
        p["description"] = desc
    return p

def layout(specs):
    panels, x, y = [], 0, 0
    for i, s in enumerate(specs):
        w = s.get("w", 12); h = s.get("h", 8)
        if x + w > 24:
            x, y = 0, y + 8
        panels.append(panel(i + 1, s["title"], s["targets"], x, y, w, h, s.get("unit", "short"),
                            s.get("kind", "timeseries"), s.get("desc", "")))
        x += w
    return panels

def var(name, query, label):
    return {
        "name": name, "label": label, "type": "query", "datasource": DS,
        "query": {"query": query, "refId": "var"}, "definition": query,
        "refresh": 2, "includeAll": True, "multi": True, "allValue": ".*",
        "current": {"selected": True, "text": ["All"], "value": ["$__all"]},
        "sort": 1, "regex": "", "hide": 0, "options": [],
    }

def dashboard(uid, title, panels, variables, tags):
    return {
        "uid": uid, "title": title, "tags": tags, "timezone": "utc",
        "schemaVersion": 39, "version": 1, "editable": True,
        "graphTooltip": 1, "refresh": "10s",
        "time": {"from": "now-1h", "to": "now"},
        "templating": {"list": variables},
        "annotations": {"list": []},
        "links": [], "panels": panels,
    }

q = lambda p, m, by="": f'histogram_quantile({p}, sum by (le{by}) (rate({m}_bucket[{RI}])))'

gw = [
    {"title": "Gateways up", "kind": "stat", "w": 6, "targets": [(f'sum(up{{job="relay-gateway",{I}}})', "up")]},
    {"title": "Gateways ready", "kind": "stat", "w": 6, "targets": [(f'sum(relay_gateway_ready{{{I}}})', "ready")]},
    {"title": "Open WebSocket connections", "kind": "stat", "w": 6, "targets": [(f'sum(relay_gateway_connections{{{I}}})', "connections")]},
    {"title": "Subscriptions", "kind": "stat", "w": 6, "targets": [(f'sum(relay_gateway_subscriptions{{{I}}})', "subscriptions")]},
    {"title": "Connections by instance", "targets": [(f'sum by (instance) (relay_gateway_connections{{{I}}})', "{{instance}}")]},
    {"title": "Subscriptions and topics by instance", "targets": [
        (f'sum by (instance) (relay_gateway_subscriptions{{{I}}})', "subscriptions {{instance}}"),
        (f'sum by (instance) (relay_gateway_topics{{{I}}})', "topics {{instance}}")]},
    {"title": "Subscribe rate", "unit": "ops", "targets": [(f'sum by (instance) (rate(relay_gateway_subscribes_total{{{I}}}[{RI}]))', "{{instance}}")]},
    {"title": "Deliveries per second by transport", "unit": "ops", "targets": [(f'sum by (transport) (rate(relay_gateway_events_delivered_total{{{I}}}[{RI}]))', "{{transport}}")]},
    {"title": "Publishes per second by route", "unit": "ops", "targets": [
        (f'sum by (route) (rate(relay_gateway_events_published_total{{{I}}}[{RI}]))', "{{route}}"),
        (f'sum(rate(relay_gateway_pubsub_messages_total{{{I}}}[{RI}]))', "received from pub/sub")]},
    {"title": "Publish-to-send latency", "unit": "s", "targets": [
        (q("0.5", f'relay_gateway_publish_to_send_seconds', "").replace("_bucket[", f"_bucket{{{I}}}["), "p50"),
        (q("0.99", f'relay_gateway_publish_to_send_seconds', "").replace("_bucket[", f"_bucket{{{I}}}["), "p99")]},
    {"title": "Slow-consumer closes (4008)", "unit": "ops", "targets": [(f'sum by (instance) (rate(relay_gateway_slow_consumer_closes_total{{{I}}}[{RI}]))', "{{instance}}")]},
    {"title": "WebSocket closes by reason", "unit": "ops", "targets": [(f'sum by (reason) (rate(relay_gateway_closes_total{{{I}}}[{RI}]))', "{{reason}}")]},
    {"title": "Replayed events by transport", "unit": "ops", "targets": [(f'sum by (transport) (rate(relay_gateway_replayed_events_total{{{I}}}[{RI}]))', "{{transport}}")]},
    {"title": "Resume outcomes", "unit": "ops", "targets": [(f'sum by (outcome) (rate(relay_gateway_recovery_total{{{I}}}[{RI}]))', "{{outcome}}")]},
    {"title": "Long-poll and SSE clients", "targets": [
        (f'sum(relay_gateway_poll_requests_in_flight{{{I}}})', "long-polls in flight"),
        (f'sum(relay_gateway_sse_streams{{{I}}})', "SSE streams")]},
    {"title": "Errors by code", "unit": "ops", "targets": [
        (f'sum by (code) (rate(relay_gateway_ws_errors_total{{{I}}}[{RI}]))', "ws {{code}}"),
        (f'sum by (code) (rate(relay_gateway_http_errors_total{{{I}}}[{RI}]))', "http {{code}}")]},
    {"title": "Limit hits by limit", "unit": "ops", "targets": [(f'sum by (limit) (rate(relay_gateway_limit_hits_total{{{I}}}[{RI}]))', "{{limit}}")]},
    {"title": "Pub/sub lag and resyncs", "unit": "ops", "targets": [
        (f'sum by (instance) (rate(relay_gateway_pubsub_lagged_total{{{I}}}[{RI}]))', "lagged {{instance}}"),
        (f'sum by (instance) (rate(relay_gateway_pubsub_resyncs_total{{{I}}}[{RI}]))', "resyncs {{instance}}")]},
    {"title": "HTTP p99 by route", "unit": "s", "targets": [
        (f'histogram_quantile(0.99, sum by (le, route) (rate(relay_gateway_http_request_duration_seconds_bucket{{{I}}}[{RI}])))', "{{route}}")]},
    {"title": "HTTP requests per second by status", "unit": "reqps", "targets": [
        (f'sum by (status) (rate(relay_gateway_http_request_duration_seconds_count{{{I}}}[{RI}]))', "{{status}}")]},
    {"title": "Dependencies up by instance", "targets": [(f'min by (instance, dependency) (relay_gateway_dependency_up{{{I}}})', "{{dependency}} {{instance}}")]},
    {"title": "Deliveries per second by instance", "unit": "ops", "targets": [(f'sum by (instance) (rate(relay_gateway_events_delivered_total{{{I}}}[{RI}]))', "{{instance}}")]},
]

jobs = [
    {"title": "Workers up", "kind": "stat", "w": 6, "targets": [(f'sum(up{{job="relay-worker",{I}}})', "workers")]},
    {"title": "Concurrency in use", "kind": "stat", "w": 6, "unit": "percentunit", "targets": [
        (f'sum(relay_worker_running_jobs{{{I}}}) / sum(relay_worker_concurrency{{{I}}})', "in use")]},
    {"title": "Waiting jobs", "kind": "stat", "w": 6, "targets": [(f'sum(max by (kind) (relay_queue_depth{{state="waiting",{K}}}))', "waiting")]},
    {"title": "Dead letters", "kind": "stat", "w": 6, "targets": [(f'sum(max by (kind) (relay_queue_depth{{state="dead",{K}}}))', "dead")]},
    {"title": "Submitted per second by kind", "unit": "ops", "targets": [(f'sum by (kind) (rate(relay_jobs_submitted_total{{{K}}}[{RI}]))', "{{kind}}")]},
    {"title": "Completed per second by kind", "unit": "ops", "targets": [(f'sum by (kind) (rate(relay_jobs_completed_total{{{K}}}[{RI}]))', "{{kind}}")]},
    {"title": "Failed per second by kind", "unit": "ops", "targets": [(f'sum by (kind) (rate(relay_jobs_failed_total{{{K}}}[{RI}]))', "{{kind}}")]},
    {"title": "Retried per second by kind", "unit": "ops", "targets": [(f'sum by (kind) (rate(relay_jobs_retried_total{{{K}}}[{RI}]))', "{{kind}}")]},
    {"title": "Cancelled per second by kind", "unit": "ops", "targets": [(f'sum by (kind) (rate(relay_jobs_cancelled_total{{{K}}}[{RI}]))', "{{kind}}")]},
    {"title": "Started per second by kind", "unit": "ops", "targets": [(f'sum by (kind) (rate(relay_jobs_started_total{{{K}}}[{RI}]))', "{{kind}}")]},
    {"title": "Queue depth by state", "desc": "Queue-wide; every worker reports it, hence max.", "targets": [(f'max by (kind, state) (relay_queue_depth{{{K}}})', "{{kind}} {{state}}")]},
    {"title": "Waiting jobs growth (per minute)", "desc": "Oldest-job age is not exposed: growth of the waiting set and the wait-time p99 stand for it.", "targets": [
        (f'deriv(max by (kind) (relay_queue_depth{{state="waiting",{K}}})[5m:]) * 60', "{{kind}}")]},
    {"title": "Wait time (submit to start)", "unit": "s", "targets": [
        (f'histogram_quantile(0.5, sum by (le, kind) (rate(relay_job_wait_seconds_bucket{{{K}}}[{RI}])))', "p50 {{kind}}"),
        (f'histogram_quantile(0.99, sum by (le, kind) (rate(relay_job_wait_seconds_bucket{{{K}}}[{RI}])))', "p99 {{kind}}")]},
    {"title": "Run time", "unit": "s", "targets": [
        (f'histogram_quantile(0.5, sum by (le, kind) (rate(relay_job_run_seconds_bucket{{{K}}}[{RI}])))', "p50 {{kind}}"),
        (f'histogram_quantile(0.99, sum by (le, kind) (rate(relay_job_run_seconds_bucket{{{K}}}[{RI}])))', "p99 {{kind}}")]},
    {"title": "Lease reclaims and lost leases", "unit": "ops", "targets": [
        (f'sum by (kind) (rate(relay_job_lease_reclaims_total{{{K}}}[{RI}]))', "reclaimed {{kind}}"),
        (f'sum by (kind) (rate(relay_job_leases_lost_total{{{K}}}[{RI}]))', "lost {{kind}}")]},
    {"title": "Dead letters by kind", "targets": [(f'max by (kind) (relay_queue_depth{{state="dead",{K}}})', "{{kind}}")]},
    {"title": "Running jobs and concurrency by worker", "targets": [
        (f'sum by (instance) (relay_worker_running_jobs{{{I}}})', "running {{instance}}"),
        (f'sum by (instance) (relay_worker_concurrency{{{I}}})', "concurrency {{instance}}")]},
    {"title": "Sweeper repairs and dropped job events", "unit": "ops", "targets": [
        (f'sum by (sweep) (rate(relay_jobs_swept_total[{RI}]))', "swept {{sweep}}"),
        (f'sum by (type) (rate(relay_job_events_dropped_total{{{I}}}[{RI}]))', "dropped {{type}}")]},
]

inst = lambda job: var("instance", f'label_values(up{{job="{job}"}}, instance)', "Instance")
kind = var("kind", 'label_values(relay_jobs_submitted_total, kind)', "Kind")


def write(name, d):
    with open(os.path.join(OUT, name), "w") as f:
        json.dump(d, f, indent=2)
        f.write("\n")


write("relay-gateways.json", dashboard("relay-gateways", "Relay gateways", layout(gw), [inst("relay-gateway")], ["relay"]))
write("relay-jobs.json", dashboard("relay-jobs", "Relay jobs", layout(jobs), [inst("relay-worker"), kind], ["relay"]))
