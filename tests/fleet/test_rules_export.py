"""``mqtop rules export --format prometheus``: promtool accepts the file, and promtool's own
rule unit tests show the exported rules fire on the same data, with the same labels, as
mqtop's evaluator would (hostile names included)."""

from __future__ import annotations

import re
import subprocess

import pytest
import yaml

from tests.conftest import ROOT
from tests.support.prometheus import check_rules, unit_test_rules

RICH = """
alerts:
  - {name: QueueBacklog, metric: queue_length, op: ">", threshold: 1000, for: 1m,
     severity: warning, match: {broker: "rab*", queue: "orders.*"},
     labels: {team: payments, "runbook-url": "https://wiki.example/{{x}}"},
     summary: "{broker}/{queue} has {value:.0f} waiting (> {threshold}) {{literal}} {unknown}"}
  - {name: "Lag of \\"groups\\"", metric: consumer_lag_seconds, op: ">=", threshold: 60,
     for: 1h30m, severity: critical, match: {group: "?*", kind: "topic"}}
  - {name: Growing, metric: queue_length, function: rate, window: 5m, op: ">", threshold: 2,
     match: {queue: "[!x]*"}}
  - {name: Surge, metric: queue_length, function: increase, window: 90s, op: ">", threshold: 100}
  - {name: AvgErrors, metric: error_rate, function: avg, window: 10m, op: ">", threshold: 0.05,
     severity: critical}
  - {name: PeakAge, metric: latency_seconds, function: max, window: 2m, op: ">", threshold: 600}
  - {name: NoConsumers, metric: consumers, op: "==", threshold: 0, severity: info,
     match: {queue: "*"}, labels: {severity: ignored, broker: ignored, "0bad": x}}
  - {name: Weird, metric: in_flight, op: "!=", threshold: 1.5e300,
     match: {queue: "a\\"b\\\\c{{d}}[*"}}
"""


def export(run_cli, write_config, text: str | None, *extra: str) -> str:
    args = ["rules", "export", "--format", "prometheus", *extra]
    if text is not None:
        args[2:2] = ["--config", str(write_config(text))]
    result = run_cli(*args, timeout=60)
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_shipped_defaults_pass_promtool(promtool, run_cli, write_config, tmp_path):
    out = export(run_cli, write_config, None)
    path = tmp_path / "defaults.yml"
    path.write_text(out)
    checked = check_rules(path)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "SUCCESS: 7 rules found" in checked.stdout  # 5 shipped + 2 built-in
    doc = yaml.safe_load(out)
    rules = {r["alert"]: r for r in doc["groups"][0]["rules"]}
    assert rules["QueueBacklog"]["expr"] == "mqtop_queue_length > 1000"
    assert rules["QueueBacklog"]["for"] == "1m"
    assert rules["HighErrorRate"]["labels"] == {"severity": "critical"}
    assert rules["BrokerDown"]["expr"] == "mqtop_up == 0"
    assert "mqtop_group_status == 2" in rules["GroupStalled"]["expr"]
    assert rules["DeadLettersArriving"]["expr"] == "max_over_time(mqtop_dlq_inflow_rate[5m]) > 0"
    assert rules["DeadLettersArriving"]["labels"] == {"severity": "warning"}


def test_rich_config_passes_promtool_and_written_file(promtool, run_cli, write_config, tmp_path):
    target = tmp_path / "rules" / "mqtop.yml"
    target.parent.mkdir()
    config = write_config(RICH)
    result = run_cli(
        "rules", "export", "--config", str(config), "--output", str(target), "--group", "g1"
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout == ""
    checked = check_rules(target)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "SUCCESS: 10 rules found" in checked.stdout
    doc = yaml.safe_load(target.read_text())
    assert doc["groups"][0]["name"] == "g1"
    rules = {r["alert"]: r for r in doc["groups"][0]["rules"]}
    assert set(rules) >= {'Lag of "groups"', "Growing", "BrokerDown", "GroupStalled"}
    lag = rules['Lag of "groups"']
    assert lag["for"] == "1h30m"
    assert lag["expr"] == (
        '(mqtop_consumer_lag_seconds{group=~"(?s)..*"} >= 60) '
        'and ignoring(kind, dlq) mqtop_queue_info{kind="topic"}'
    )
    assert rules["Growing"]["expr"] == (
        'delta(mqtop_queue_length{queue=~"(?s)[^x].*"}[5m]) / 300 > 2'
    )
    assert rules["Surge"]["expr"] == "delta(mqtop_queue_length[1m30s]) > 100"
    assert rules["AvgErrors"]["expr"] == "avg_over_time(mqtop_error_rate[10m]) > 0.05"
    assert rules["PeakAge"]["expr"] == "max_over_time(mqtop_latency_seconds[2m]) > 600"
    # `*` matches everything, an absent label included: no matcher at all
    assert rules["NoConsumers"]["expr"] == "mqtop_consumers == 0"
    # labels named as the Alertmanager notifier names them; series labels are not overridden
    assert rules["NoConsumers"]["labels"] == {"_0bad": "x", "severity": "info"}
    assert (
        rules["QueueBacklog"]["labels"]["runbook_url"]
        == 'https://wiki.example/{{ "{" }}{{ "{" }}x}}'
    )


def test_without_builtins(run_cli, write_config):
    out = export(run_cli, write_config, RICH, "--no-builtin")
    names = [r["alert"] for r in yaml.safe_load(out)["groups"][0]["rules"]]
    assert "BrokerDown" not in names and "GroupStalled" not in names and len(names) == 8


def test_bad_config_is_exit_2(run_cli, write_config):
    path = write_config("alerts:\n  - {name: X, metric: nope, threshold: 1}\n")
    result = run_cli("rules", "export", "--config", str(path))
    assert result.returncode == 2
    assert "unknown metric" in result.stderr and "Traceback" not in result.stderr


UNIT = """
rule_files: [rules.yml]
evaluation_interval: 15s
tests:
  - interval: 15s
    input_series:
      - series: 'mqtop_queue_length{broker="rabbit",queue="orders.eu",cluster="eu-1"}'
        values: '1500x12'
      - series: 'mqtop_queue_length{broker="rabbit",queue="ordersXeu",cluster="eu-1"}'
        values: '1500x12'
      - series: 'mqtop_queue_length{broker="cache",queue="orders.eu",cluster="eu-1"}'
        values: '1500x12'
      - series: 'mqtop_consumer_lag_seconds{broker="k",queue="t",group="g",cluster="eu-2"}'
        values: '120x400'
      - series: 'mqtop_queue_info{broker="k",queue="t",group="g",cluster="eu-2",kind="topic"}'
        values: '1x400'
      - series: 'mqtop_consumer_lag_seconds{broker="k",queue="l",group="g",cluster="eu-2"}'
        values: '120x400'
      - series: 'mqtop_queue_info{broker="k",queue="l",group="g",cluster="eu-2",kind="list"}'
        values: '1x400'
      - series: 'mqtop_queue_length{broker="r",queue="grow"}'
        values: '0+60x40'
      - series: 'mqtop_up{broker="down",cluster="eu-1"}'
        values: '0x10'
      - series: 'mqtop_up{broker="fine"}'
        values: '1x10'
      - series: 'mqtop_group_status{broker="k",queue="t",group="g"}'
        values: '3x10'
      - series: 'mqtop_in_flight{broker="h",queue="a\\"b\\\\c{{d}}[x"}'
        values: '7x10'
    alert_rule_test:
      - eval_time: 30s
        alertname: QueueBacklog
        exp_alerts: []
      - eval_time: 2m
        alertname: QueueBacklog
        exp_alerts:
          - exp_labels: {severity: warning, team: payments, runbook_url: "https://wiki.example/{{x}}",
                         broker: rabbit, queue: orders.eu, cluster: eu-1}
            exp_annotations:
              summary: "rabbit/orders.eu has 1500 waiting (> 1000) {literal} {unknown}"
              threshold: "1000"
      - eval_time: 89m
        alertname: 'Lag of "groups"'
        exp_alerts: []
      - eval_time: 91m
        alertname: 'Lag of "groups"'
        exp_alerts:
          - exp_labels: {severity: critical, broker: k, queue: t, group: g, cluster: eu-2}
            exp_annotations:
              summary: 'k/t [g]: consumer_lag_seconds 120 >= 60'
              threshold: "60"
      - eval_time: 8m
        alertname: Growing
        exp_alerts:
          - exp_labels: {severity: warning, broker: r, queue: grow}
            exp_annotations:
              summary: 'r/grow: rate(queue_length[5m]) 4 > 2'
              threshold: "2"
      - eval_time: 1m
        alertname: BrokerDown
        exp_alerts:
          - exp_labels: {severity: critical, broker: down, cluster: eu-1}
            exp_annotations:
              summary: 'broker down is unreachable (the last poll by mqtop failed)'
      - eval_time: 1m
        alertname: GroupStalled
        exp_alerts:
          - exp_labels: {severity: critical, broker: k, queue: t, group: g}
            exp_annotations:
              summary: 'k/t [g]: consumer group g is STOP'
      - eval_time: 1m
        alertname: Weird
        exp_alerts:
          - exp_labels: {severity: warning, broker: h, queue: 'a"b\\c{{d}}[x'}
            exp_annotations:
              summary: 'h/a"b\\c{{d}}[x: in_flight 7 != 1.5e+300'
              threshold: "1.5e+300"
"""


def test_exported_rules_fire_like_mqtop(promtool, run_cli, write_config, tmp_path):
    """promtool's rule unit tests: thresholds, `for`, globs, kind joins, functions, built-ins,
    labels and summaries, a hostile queue name."""
    (tmp_path / "rules.yml").write_text(export(run_cli, write_config, RICH))
    unit = tmp_path / "unit.yml"
    unit.write_text(UNIT)
    result = unit_test_rules(unit)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


# ---------------------------------------------------------------- the examples in docs

DOC = ROOT / "docs" / "alerts.md"


def doc_examples() -> list[tuple[str, list[str]]]:
    """(config YAML, expected expressions) of each example in the export section."""
    text = DOC.read_text()
    section = text.split("## Rules in Prometheus", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```(yaml|promql)\n(.*?)```", section, re.S)
    examples: list[tuple[str, list[str]]] = []
    for kind, body in blocks:
        if kind == "yaml" and body.lstrip().startswith("alerts:"):
            examples.append((body, []))
        elif kind == "promql" and examples:
            examples[-1][1].extend(line for line in body.splitlines() if line.strip())
    return examples


def test_docs_have_export_examples():
    examples = doc_examples()
    assert len(examples) >= 3
    assert all(expected for _, expected in examples)


@pytest.mark.parametrize("index", range(len(doc_examples())))
def test_docs_example_exports_and_passes_promtool(index, promtool, run_cli, write_config, tmp_path):
    config, expected = doc_examples()[index]
    out = export(run_cli, write_config, config, "--no-builtin")
    path = tmp_path / "example.yml"
    path.write_text(out)
    checked = check_rules(path)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    exprs = [r["expr"] for r in yaml.safe_load(out)["groups"][0]["rules"]]
    assert exprs == expected


def test_promtool_rejects_what_it_should(promtool, tmp_path):
    """The check is real: a broken expression fails it."""
    path = tmp_path / "bad.yml"
    path.write_text("groups:\n- name: x\n  rules:\n  - alert: A\n    expr: 'mqtop_up =='\n")
    assert check_rules(path).returncode != 0
    assert subprocess.run([promtool, "--version"], capture_output=True).returncode == 0
