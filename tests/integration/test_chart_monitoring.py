"""The chart's monitoring: the PrometheusRule (helm/publish-worker/files/
alert-rules.yaml) checked and unit-tested with promtool
(tests/prometheus/*.test.yaml), and the Grafana dashboard
(files/dashboard.json) in its ConfigMap. Both may use only metrics the worker
exports: the names common/metrics*.c print (NEW_METRICS below lists the
fleet-wide account metrics with their label values). Needs helm and promtool (deploy/install-deps.sh
installs both), no servers and no cluster."""

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from harness import wait_until
from posts import connect_account
from test_chart import CHART, FULLNAME, of_kind, one, render

ROOT = Path(__file__).resolve().parents[2]
PROMTOOL = shutil.which("promtool")
# Two files: the second evaluates every 5 minutes, for the alerts that take days.
RULE_TESTS = [ROOT / "tests" / "prometheus" / name
              for name in ("alert-rules.test.yaml", "alert-rules-daily.test.yaml")]
DASHBOARD = CHART / "files" / "dashboard.json"
NAMESPACE = "default"  # the namespace the unit tests' series carry
JOB = f"{FULLNAME}-metrics"  # the metrics Service's name: the ServiceMonitor's job

pytestmark = [
    pytest.mark.skipif(shutil.which("helm") is None,
                       reason="helm is not installed (deploy/install-deps.sh installs it)"),
    pytest.mark.skipif(PROMTOOL is None,
                       reason="promtool is not installed (Debian's prometheus package)"),
]

# The fleet-wide account metrics every worker exports from Redis's census
# (common/metrics_accounts.c), with the values of their labels.
NEW_METRICS = {
    "publish_worker_accounts": {"state": {"active", "reconnect_required", "quota_wait"}},
    "publish_worker_parked_posts": {},
    "publish_worker_token_records": {"key_id": None},
    "publish_worker_token_earliest_expiry_timestamp_seconds": {},
    "publish_worker_sweep_last_success_timestamp_seconds": {},
    "publish_worker_verification_last_success_timestamp_seconds": {},
    "publish_worker_token_verifications_total": {
        "outcome": {"ok", "expired", "revoked", "missing_scope", "wrong_user", "unreachable"}},
    "publish_worker_quota_waits_total": {},
    "publish_worker_census_timestamp_seconds": {},  # when the figures above were read
}
# Label values of metrics.c's labelled metrics, as its arrays list them.
LABEL_VALUES = {
    "publish_worker_results_total": {"status": {"published", "duplicate", "parked", "failed"}},
    "publish_worker_errors_total": {"class": {"invalid_request", "auth", "permission",
                                              "rate_limited", "transient", "media"}},
    "publish_worker_token_refreshes_total": {"result": {"refreshed", "by_other", "not_allowed",
                                                        "terminal", "transient"}},
    "publish_worker_api_calls_total": {"status_class": {"2xx", "3xx", "4xx", "5xx", "error"}},
}
# Series that come from Prometheus itself or from kube-state-metrics.
OTHER_SERIES = {"up", "kube_deployment_status_replicas_unavailable"}
# Gauges every pod exports with the same fleet-wide value: aggregated with max.
FLEET_GAUGES = {name for name in NEW_METRICS if not name.endswith("_total")}
AGGREGATIONS = {"sum", "max", "min", "avg", "count", "group", "stddev", "stdvar", "topk",
                "bottomk", "quantile", "count_values"}


def metrics_source():
    # token_verify.c names the outcomes token_verifications_total counts.
    paths = sorted((ROOT / "common").glob("metrics*.c")) + [ROOT / "common" / "token_verify.c"]
    return "".join(path.read_text() for path in paths)


def exported_metrics():
    """Every metric name the worker exports, as common/metrics*.c print them."""
    names = set(re.findall(r'"((?:publish_worker|process)_[a-z0-9_]+)', metrics_source()))
    assert "publish_worker_results_total" in names and "process_open_fds" in names
    return names


def test_the_account_metrics_are_the_workers():
    """NEW_METRICS, which the rules and the dashboard were written against,
    are the names and label values the worker prints."""
    source, names = metrics_source(), exported_metrics()
    for name, labels in {**NEW_METRICS, **LABEL_VALUES}.items():
        assert name in names, name
        for values in labels.values():
            for value in values or ():
                assert f'"{value}"' in source, (name, value)


def problems_in(expr, known):
    """What is wrong with the metrics of a PromQL expression: unknown names,
    names without a {...} selector (every query here has one, so the
    namespace and job filters are never forgotten), unknown label values."""
    found = []
    for name in re.findall(r"\b((?:publish_worker|process)_[a-z0-9_]+)\b(?!\{)", expr):
        found.append(f"{name} has no label selector")
    for name, matchers in re.findall(r"\b([a-zA-Z_][a-zA-Z0-9_]*)\{([^}]*)\}", expr):
        base = re.sub(r"_(bucket|sum|count)$", "", name)
        if name not in known and base not in known and name not in OTHER_SERIES:
            found.append(f"{name} is not exported")
        allowed = {**NEW_METRICS, **LABEL_VALUES}.get(name, {})
        for label, op, value in re.findall(r'(\w+)\s*(=~|=)\s*"([^"]*)"', matchers):
            values = set(value.split("|")) if op == "=~" else {value}
            if allowed.get(label) and not values <= allowed[label]:
                found.append(f"{name}{{{label}{op}\"{value}\"}}: not a value of {label}")
    return found


def aggregation_of(expr, pos):
    """The aggregation operator whose argument holds expr[pos], or None."""
    while True:
        depth, i = 0, pos - 1
        while i >= 0 and not (expr[i] == "(" and depth == 0):
            depth += {")": 1, "(": -1}.get(expr[i], 0)
            i -= 1
        if i < 0:
            return None
        head = re.search(r"(\w*)\s*(?:(?:by|without)\s*\([^()]*\))?\s*$", expr[:i])
        if head.group(1) in AGGREGATIONS:
            return head.group(1)
        pos = i


def fleet_gauges_summed(expr):
    """Fleet-wide gauges in expr aggregated otherwise than with max."""
    return [f"{m.group(1)} under {aggregation_of(expr, m.start())}"
            for m in re.finditer(r"\b([a-z_]+)\{", expr)
            if m.group(1) in FLEET_GAUGES and aggregation_of(expr, m.start()) != "max"]


def rule_spec(tmp_path, *sets):
    """The PrometheusRule rendered with the rules on (and --set sets)."""
    args = ["--namespace", NAMESPACE, "--set", "prometheusRule.enabled=true"]
    for s in sets:
        args += ["--set", s]
    return one(render(tmp_path, None, *args), "PrometheusRule")


def write_rules(path, groups, descriptions=True):
    if not descriptions:  # static runbook text: checked below, not by the unit tests
        groups = [dict(g, rules=[dict(r, annotations={k: v for k, v in r["annotations"].items()
                                                      if k != "description"})
                                 for r in g["rules"]]) for g in groups]
    path.write_text(yaml.safe_dump({"groups": groups}, sort_keys=False, width=1000))
    return path


def promtool(*args, cwd=None):
    return subprocess.run([PROMTOOL, *args], capture_output=True, text=True, timeout=120,
                          cwd=cwd)


def run_rule_tests(tmp_path, spec):
    """promtool test rules on the unit tests with the rendered rules beside them."""
    work = tmp_path / "promtool"
    work.mkdir(exist_ok=True)
    write_rules(work / "alert-rules.yaml", spec["spec"]["groups"], descriptions=False)
    for path in RULE_TESTS:
        shutil.copy(path, work / path.name)
    return promtool("test", "rules", *(path.name for path in RULE_TESTS), cwd=work)


def alerts(spec):
    return [rule for group in spec["spec"]["groups"] for rule in group["rules"]]


# --- the PrometheusRule -----------------------------------------------------------


def test_monitoring_objects_are_off_by_default(tmp_path):
    docs = render(tmp_path)
    assert not of_kind(docs, "PrometheusRule") and not of_kind(docs, "ConfigMap")


def test_prometheus_rule_metadata_is_overridable(tmp_path):
    spec = rule_spec(tmp_path)
    assert spec["apiVersion"] == "monitoring.coreos.com/v1"
    assert spec["metadata"]["name"] == FULLNAME and spec["metadata"]["namespace"] == NAMESPACE
    spec = rule_spec(tmp_path, "prometheusRule.namespace=monitoring",
                     "prometheusRule.labels.release=kube-prometheus-stack",
                     "prometheusRule.annotations.owner=publishing",
                     "prometheusRule.additionalRuleLabels.team=publishing")
    meta = spec["metadata"]
    assert meta["namespace"] == "monitoring"
    assert meta["labels"]["release"] == "kube-prometheus-stack"
    assert meta["labels"]["app.kubernetes.io/name"] == "publish-worker"
    assert meta["annotations"] == {"owner": "publishing"}
    for rule in alerts(spec):
        assert rule["labels"]["team"] == "publishing", rule["alert"]
        # the series are still the release's, wherever the rule lives
        assert 'namespace="monitoring"' not in rule["expr"], rule["alert"]


def test_alert_rules_pass_promtool_check(tmp_path):
    spec = rule_spec(tmp_path)
    path = write_rules(tmp_path / "rules.yaml", spec["spec"]["groups"])
    proc = promtool("check", "rules", str(path))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert f"SUCCESS: {len(alerts(spec))} rules found" in proc.stdout


def test_promtool_check_refuses_a_broken_rule(tmp_path):
    """The check bites: a selector that does not parse fails it."""
    spec = rule_spec(tmp_path, 'prometheusRule.selector=job="unterminated')
    path = write_rules(tmp_path / "rules.yaml", spec["spec"]["groups"])
    proc = promtool("check", "rules", str(path))
    assert proc.returncode != 0 and "FAILED" in proc.stdout + proc.stderr


def test_alert_rules_pass_their_unit_tests(tmp_path):
    proc = run_rule_tests(tmp_path, rule_spec(tmp_path))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "SUCCESS" in proc.stdout


@pytest.mark.parametrize("change", [
    "prometheusRule.alerts.consumerLagGrowing.threshold=4000",
    "prometheusRule.alerts.reconnectRequired.for=10m",
    "prometheusRule.alerts.parkedPostsGrowing.window=5m",
    "prometheusRule.alerts.sweepStalled.maxAgeSeconds=1800",
    "prometheusRule.alerts.tokenExpiringSoon.withinSeconds=3600",
    "prometheusRule.alerts.verificationStalled.maxAgeSeconds=140000",
    "prometheusRule.alerts.refreshFailing.threshold=100",
    "prometheusRule.alerts.workerDown.severity=warning",
    'prometheusRule.selector=job="another-app"',
])
def test_rule_unit_tests_fail_when_a_rule_changes(tmp_path, change):
    """The unit tests bite, and values reach the rules: each change breaks them."""
    proc = run_rule_tests(tmp_path, rule_spec(tmp_path, change))
    assert proc.returncode != 0, f"{change} went unnoticed:\n{proc.stdout}"


def test_every_alert_has_a_firing_and_a_quiet_case(tmp_path):
    names = {rule["alert"] for rule in alerts(rule_spec(tmp_path))}
    cases = [case for path in RULE_TESTS for test in yaml.safe_load(path.read_text())["tests"]
             for case in test.get("alert_rule_test", [])]
    for name in names:
        mine = [case for case in cases if case["alertname"] == name]
        assert any(case["exp_alerts"] for case in mine), f"{name} never fires in the tests"
        assert any(not case["exp_alerts"] for case in mine), f"{name} is never quiet in the tests"
    assert {case["alertname"] for case in cases} <= names, "tests of alerts that do not exist"


def test_every_alert_has_a_severity_and_says_what_to_do(tmp_path):
    rules = alerts(rule_spec(tmp_path))
    assert len(rules) == len(yaml.safe_load(
        (CHART / "values.yaml").read_text())["prometheusRule"]["alerts"])
    for rule in rules:
        assert rule["alert"].startswith("PublishWorker")
        assert rule["labels"]["severity"] in ("critical", "warning"), rule["alert"]
        assert rule["annotations"]["summary"], rule["alert"]
        assert len(rule["annotations"]["description"]) > 150, rule["alert"]
        assert re.match(r"^\d+[smh]$", rule["for"]), rule["alert"]


def test_disabled_alerts_are_left_out(tmp_path):
    spec = rule_spec(tmp_path, "prometheusRule.alerts.verificationStalled.enabled=false",
                     "prometheusRule.alerts.notReady.enabled=false")
    names = {rule["alert"] for rule in alerts(spec)}
    assert "PublishWorkerVerificationStalled" not in names
    assert "PublishWorkerNotReady" not in names and "PublishWorkerDown" in names


def test_rules_select_the_job_the_service_monitor_scrapes(tmp_path):
    """Prometheus Operator names a ServiceMonitor's job after the Service."""
    docs = render(tmp_path, None, "--namespace", NAMESPACE, "--set",
                  "prometheusRule.enabled=true", "--set", "metrics.serviceMonitor.enabled=true")
    service = one(docs, "Service")["metadata"]["name"]
    monitor = one(docs, "ServiceMonitor")
    assert "jobLabel" not in monitor["spec"]
    selector = f'job="{service}", namespace="{NAMESPACE}"'
    for rule in alerts(one(docs, "PrometheusRule")):
        if "publish_worker_" in rule["expr"] or "up{" in rule["expr"]:
            assert selector in rule["expr"], rule["alert"]
    spec = rule_spec(tmp_path, 'prometheusRule.selector=job="pw"')
    assert all('job="pw"' in r["expr"] for r in alerts(spec) if "publish_worker_" in r["expr"])


def test_rules_use_only_exported_metrics(tmp_path):
    known = exported_metrics()
    for rule in alerts(rule_spec(tmp_path)):
        assert problems_in(rule["expr"], known) == [], rule["alert"]
        # fleet-wide account figures are read from Redis by every pod: max, never sum
        assert fleet_gauges_summed(rule["expr"]) == [], rule["alert"]


def test_the_metric_check_catches_what_it_should():
    """problems_in() is what the rules and dashboard tests rely on: it finds
    an unknown name, a bare name and an unknown label value."""
    known = exported_metrics()
    assert problems_in('sum(rate(publish_worker_results_total{job="x"}[5m]))', known) == []
    assert problems_in('histogram_quantile(0.9, rate(publish_worker_api_call_duration_seconds_'
                       'bucket{job="x"}[5m]))', known) == []
    assert problems_in('publish_worker_nonexistent{job="x"}', known) == [
        "publish_worker_nonexistent is not exported"]
    assert problems_in("sum(publish_worker_parked_posts)", known) == [
        "publish_worker_parked_posts has no label selector"]
    assert problems_in('publish_worker_accounts{job="x", state=~"active|parked"}', known) == [
        'publish_worker_accounts{state=~"active|parked"}: not a value of state']
    assert problems_in('publish_worker_results_total{status="ok"}', known) == [
        'publish_worker_results_total{status="ok"}: not a value of status']
    assert fleet_gauges_summed('max by (job) (delta(publish_worker_parked_posts{a="b"}[1h]))') == []
    assert fleet_gauges_summed('time() - max(publish_worker_sweep_last_success_timestamp_seconds'
                               '{a="b"})') == []
    assert fleet_gauges_summed('sum by (job) (publish_worker_accounts{a="b"})') == [
        "publish_worker_accounts under sum"]
    assert fleet_gauges_summed('publish_worker_parked_posts{a="b"} > 0') == [
        "publish_worker_parked_posts under None"]


# --- the Grafana dashboard ----------------------------------------------------------


def dashboard_exprs(dashboard):
    exprs = []
    for panel in dashboard["panels"]:
        exprs += [target["expr"] for target in panel.get("targets", [])]
    return exprs


def test_dashboard_configmap_for_the_grafana_sidecar(tmp_path):
    docs = render(tmp_path, {"grafanaDashboard": {"enabled": True,
                                                  "annotations": {"grafana_folder": "Publishing"}}})
    config_map = one(docs, "ConfigMap")
    assert config_map["metadata"]["name"] == f"{FULLNAME}-dashboard"
    assert config_map["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert config_map["metadata"]["annotations"] == {"grafana_folder": "Publishing"}
    assert json.loads(config_map["data"]["publish-worker.json"]) == json.loads(
        DASHBOARD.read_text())
    docs = render(tmp_path, {"grafanaDashboard": {
        "enabled": True, "namespace": "monitoring", "sidecarLabel": "dashboards",
        "sidecarLabelValue": "publishing"}})
    meta = one(docs, "ConfigMap")["metadata"]
    assert meta["labels"]["dashboards"] == "publishing" and "grafana_dashboard" not in meta["labels"]
    assert meta["namespace"] == "monitoring"


def test_dashboard_uses_only_exported_metrics_and_filters_every_query():
    dashboard = json.loads(DASHBOARD.read_text())
    known = exported_metrics()
    exprs = dashboard_exprs(dashboard)
    assert len(exprs) >= 25
    for expr in exprs:
        assert problems_in(expr, known) == [], expr
        for selector in re.findall(r"\b[a-z_]+\{([^}]*)\}", expr):
            assert 'namespace=~"$namespace"' in selector and 'job=~"$job"' in selector, expr
        assert fleet_gauges_summed(expr) == [], expr  # fleet-wide figures: max


def test_dashboard_shows_the_metrics_that_matter():
    used = set()
    for expr in dashboard_exprs(json.loads(DASHBOARD.read_text())):
        used |= set(re.findall(r"\b((?:publish_worker|process)_[a-z0-9_]+)\{", expr))
    for name in ("publish_worker_results_total", "publish_worker_errors_total",
                 "publish_worker_api_calls_total", "publish_worker_api_call_duration_seconds_bucket",
                 "publish_worker_consumer_lag", "publish_worker_parked_posts",
                 "publish_worker_accounts", "publish_worker_token_earliest_expiry_timestamp_seconds",
                 "publish_worker_sweep_last_success_timestamp_seconds",
                 "publish_worker_verification_last_success_timestamp_seconds",
                 "publish_worker_token_refreshes_total", "publish_worker_token_verifications_total",
                 "publish_worker_redis_errors_total", "publish_worker_token_records",
                 "publish_worker_quota_waits_total"):
        assert name in used, name


def test_dashboard_queries_parse(tmp_path):
    """Every query as PromQL (Grafana's variables replaced), checked by promtool
    as recording rules."""
    exprs = dashboard_exprs(json.loads(DASHBOARD.read_text()))
    rules = [{"record": f"dashboard:query_{i}",
              "expr": e.replace("$__rate_interval", "5m").replace("$namespace", ".*")
                       .replace("$job", ".*")} for i, e in enumerate(exprs)]
    path = write_rules(tmp_path / "dashboard-rules.yaml", [{"name": "dashboard", "rules": rules}])
    proc = promtool("check", "rules", str(path))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    # and the check bites
    rules.append({"record": "dashboard:broken", "expr": "sum(rate(x[5m])"})
    write_rules(path, [{"name": "dashboard", "rules": rules}])
    assert promtool("check", "rules", str(path)).returncode != 0


def test_dashboard_variables_and_ids():
    dashboard = json.loads(DASHBOARD.read_text())
    variables = {v["name"] for v in dashboard["templating"]["list"]}
    assert variables == {"datasource", "namespace", "job"}
    ids = [panel["id"] for panel in dashboard["panels"]]
    assert len(ids) == len(set(ids)), "panel ids must be unique"
    for panel in dashboard["panels"]:
        if panel["type"] != "row":
            assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}
            assert panel["title"] and panel["description"], panel["title"]


# --- against a running worker -------------------------------------------------------


def used_metric_families(tmp_path):
    """The worker's metric families the rules and the dashboard query."""
    exprs = [rule["expr"] for rule in alerts(rule_spec(tmp_path))]
    exprs += dashboard_exprs(json.loads(DASHBOARD.read_text()))
    names = set()
    for expr in exprs:
        names |= set(re.findall(r"\b((?:publish_worker|process)_[a-z0-9_]+)\{", expr))
    return {re.sub(r"_bucket$", "", name) for name in names}


def test_a_worker_exports_every_series_the_rules_and_dashboard_use(tmp_path, worker_env, workers,
                                                                    fake, run_cli):
    env = worker_env(TOKEN_VERIFY_INTERVAL_S="1", TOKEN_SWEEP_INTERVAL_S="1")
    connect_account(run_cli, env, fake, "acct-dashboard")  # an active token: its expiry
    w = workers.start(env)
    used = used_metric_families(tmp_path)
    assert "publish_worker_verification_last_success_timestamp_seconds" in used

    def missing():
        types = set(re.findall(r"^# TYPE (\S+) ", w.metrics(), flags=re.M))
        return used - types
    wait_until(lambda: not missing(), timeout=30,
               message=lambda: f"not in /metrics: {sorted(missing())}\n{w.tail()}")
    assert w.stop() == 0
