"""The `alerts` and `logs` sections and database.maxStorageGb (stack/settings/alerts.py): what
they accept, their per-environment defaults, and what they refuse, each error naming its key."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from stack import settings
from stack.settings import Secret, SettingsError
from stack.settings.alerts import class_memory_gib, max_connections
from tests.support.cloud import example_config, with_changes

ROOT = Path(__file__).resolve().parent.parent
AWS, AWS_KEYS = example_config("aws-minimal")
REVIEW = "2030-01-01T00:00:00Z"


def load(config: dict[str, Any], stack: str = "staging") -> settings.Settings:
    return settings.load(config, stack=stack, project_dir=ROOT, secret_keys=frozenset(AWS_KEYS))


def errors(config: dict[str, Any], stack: str = "staging") -> list[str]:
    with pytest.raises(SettingsError) as caught:
        load(config, stack)
    return caught.value.errors


def test_one_address_or_a_list():
    assert load(AWS).alerts.email == ("ops@example.com",)
    listed = load(with_changes(AWS, alerts={"email": ["a@example.com", "b@example.org"]}))
    assert listed.alerts.email == ("a@example.com", "b@example.org")


@pytest.mark.parametrize(("email", "expected"), [
    (["a@example.com", "not an address"],
     'flask-stack:alerts.email[1]: expected an email address like "ops@example.com", got "not an address"'),
    ("ops@", 'flask-stack:alerts.email: expected an email address like "ops@example.com", got "ops@"'),
    (["a@example.com", "a@example.com"], "flask-stack:alerts.email: lists an address twice"),
    ([f"a{i}@example.com" for i in range(11)],
     "flask-stack:alerts.email: has 11 addresses; at most 10 (use a mailing list)"),
])
def test_bad_addresses_are_refused_by_path(email, expected):
    assert errors(with_changes(AWS, alerts={"email": email})) == [expected]


def test_the_webhook_is_https_and_may_be_a_secret():
    plain = load(with_changes(AWS, alerts={"webhook": "https://hooks.example.com/sns"})).alerts
    assert isinstance(plain.webhook, Secret) and plain.webhook.value == "https://hooks.example.com/sns"
    secret = load(with_changes(AWS, alerts={"webhook": Secret("https://relay.example.com/x?t=1")}))
    assert secret.alerts.webhook.value == "https://relay.example.com/x?t=1"
    assert errors(with_changes(AWS, alerts={"webhook": "http://hooks.example.com/sns"})) == [
        'flask-stack:alerts.webhook: must be an https:// URL like "https://hooks.example.com/sns", '
        'got "http://hooks.example.com/sns"']
    shown = errors(with_changes(AWS, alerts={"webhook": Secret("http://x.example.com/T0KEN")}))
    assert shown == ["flask-stack:alerts.webhook: must be an https:// URL (the secret's value is not shown)"]
    assert "T0KEN" not in "".join(shown)


def test_thresholds_are_sized_per_environment():
    staging, prod = load(AWS).alerts, load(AWS, "prod").alerts
    assert (staging.cpu_percent, staging.error_rate_percent, staging.response_time_ms) == (90, 5, 2000)
    assert (prod.cpu_percent, prod.error_rate_percent, prod.response_time_ms) == (80, 1, 1000)
    assert staging.enabled and prod.enabled
    assert load(AWS, "prod").logs.retention_days == 90 and load(AWS).logs.retention_days == 30
    assert load(AWS).logs.access_logs is True and load(AWS).logs.flow_logs is False


def test_an_ephemeral_stack_gets_no_paid_extras_unless_it_asks():
    review = load(with_changes(AWS, expiresAt=REVIEW), "pr-3")
    assert review.alerts.enabled is False
    assert (review.logs.access_logs, review.logs.flow_logs, review.logs.retention_days) == (False, False, 7)
    assert review.database.max_storage_gb == 0
    asked = load(with_changes(AWS, expiresAt=REVIEW, alerts={"enabled": True, "email": "a@example.com"},
                              logs={"accessLogs": True}), "pr-3")
    assert asked.alerts.enabled and asked.logs.access_logs


def test_the_database_thresholds_follow_its_size():
    small = load(with_changes(AWS, database={"size": "db.t4g.micro", "storageGb": 20})).alerts
    assert (small.free_storage_gb, small.free_memory_mb, small.database_connections) == (1, 64, 80)
    big = load(with_changes(AWS, database={"size": "db.r6g.2xlarge", "storageGb": 400})).alerts
    assert (big.free_storage_gb, big.free_memory_mb) == (20, 3276)
    assert big.database_connections == max_connections("db.r6g.2xlarge") * 80 // 100


@pytest.mark.parametrize(("size", "gib"), [
    ("db.t4g.micro", 1), ("db.t3.small", 2), ("db.t4g.medium", 4), ("db.m6g.large", 8),
    ("db.m7g.4xlarge", 64), ("db.r6g.large", 16), ("db.r7g.16xlarge", 512), ("db.x2g.large", 32),
    ("db.z1d.large", None), ("db.t4g.2small", None),
])
def test_class_memory(size, gib):
    assert class_memory_gib(size) == (None if gib is None else float(gib))


def test_max_connections_is_capped_as_rds_caps_it():
    assert max_connections("db.t4g.micro") == 101  # 1 GiB less 10%, / 9531392
    assert max_connections("db.r7g.16xlarge") == 5000


def test_an_unknown_class_needs_its_connection_limit():
    config = with_changes(AWS, database={"size": "db.z1d.large"})
    assert errors(config) == [
        'flask-stack:alerts.databaseConnections: is required with database.size "db.z1d.large": '
        "its default (80% of the class's max_connections) is computed from the memory of the "
        "db.t*, db.m*, db.r* and db.x* classes only; set it to the connection count that should "
        "wake someone"]
    given = load(with_changes(config, alerts={"email": "a@example.com", "databaseConnections": 300}))
    assert given.alerts.database_connections == 300


def test_free_storage_must_be_below_the_storage():
    assert errors(with_changes(AWS, alerts={"email": "a@example.com", "freeStorageGb": 20})) == [
        "flask-stack:alerts.freeStorageGb: must be below database.storageGb (20), got 20: the "
        "alarm would always fire"]


def test_retention_is_a_period_cloudwatch_logs_keeps():
    assert load(with_changes(AWS, logs={"retentionDays": 365})).logs.retention_days == 365
    [message] = errors(with_changes(AWS, logs={"retentionDays": 45}))
    assert message.startswith("flask-stack:logs.retentionDays: must be one of the periods")
    assert message.endswith("got 45")


@pytest.mark.parametrize(("value", "problem"), [
    (21, "must be 0 (no storage autoscaling) or at least 22 (10% above database.storageGb, 20), got 21"),
    (70000, "must be a whole number from 0 to 65536 GB or 0 (off), got 70000"),
])
def test_max_storage_is_off_or_above_the_storage(value, problem):
    assert errors(with_changes(AWS, database={"maxStorageGb": value})) == [
        f"flask-stack:database.maxStorageGb: {problem}"]


def test_max_storage_defaults_to_four_times_the_storage_and_0_turns_it_off():
    assert load(AWS).database.max_storage_gb == 80
    assert load(with_changes(AWS, database={"maxStorageGb": 0})).database.max_storage_gb == 0


def test_prod_without_a_destination_is_warned_about():
    config = {**AWS, "alerts": {}}
    warned = load(config, "prod").warnings
    assert any(w.startswith("flask-stack:alerts.email: not set on prod") for w in warned), warned
    assert not any("alerts" in w for w in load(config).warnings)  # staging may go without
    assert not any("alerts" in w for w in load(AWS, "prod").warnings)


@pytest.mark.parametrize("platform", ["existing", "heroku"])
def test_the_sections_are_refused_off_the_clouds(platform):
    config, keys = example_config(f"{platform}-minimal")
    config = {**config, "alerts": {"email": "a@example.com"}, "logs": {"flowLogs": True}}
    with pytest.raises(SettingsError) as caught:
        settings.load(config, stack="staging", project_dir=ROOT, secret_keys=frozenset(keys))
    found = [e for e in caught.value.errors if e.startswith(("flask-stack:alerts", "flask-stack:logs"))]
    assert found == [
        "flask-stack:alerts: is only for platforms aws and digitalocean (the alerts are built on "
        "AWS (CloudWatch through SNS) and DigitalOcean (monitor alerts and an uptime check) so "
        f"far); this stack's platform is {platform}, remove it",
        "flask-stack:logs: is only for platform aws (access logs and flow logs are built on AWS "
        "only so far; DigitalOcean's load balancer keeps no access logs); this stack's platform "
        f"is {platform}, remove it"]


# -- DigitalOcean ------------------------------------------------------------------------------
DO, DO_KEYS = example_config("digitalocean-minimal")


def load_do(config: dict[str, Any], stack: str = "staging") -> settings.Settings:
    return settings.load(config, stack=stack, project_dir=ROOT, secret_keys=frozenset(DO_KEYS))


def do_errors(config: dict[str, Any], stack: str = "staging") -> list[str]:
    with pytest.raises(SettingsError) as caught:
        load_do(config, stack)
    return caught.value.errors


def test_digitalocean_takes_alerts_with_percent_thresholds_per_environment():
    staging = load_do(with_changes(DO, alerts={"email": "ops@example.com"})).alerts
    assert (staging.cpu_percent, staging.memory_percent, staging.disk_percent) == (90, 90, 90)
    prod = load_do(with_changes(DO, alerts={"email": "ops@example.com"}), "prod").alerts
    assert (prod.cpu_percent, prod.memory_percent, prod.disk_percent) == (80, 85, 80)
    assert (prod.error_rate_percent, prod.response_time_ms) == (1, 1000)
    review = load_do(with_changes(DO, expiresAt=REVIEW), "pr-7")
    assert not review.alerts.enabled  # no paid extras (the uptime check) on a review stack
    assert not review.database.storage_autoscale


def test_digitalocean_refuses_the_rds_thresholds_and_aws_the_percentages():
    found = do_errors(with_changes(DO, alerts={"freeStorageGb": 5, "databaseConnections": 10}))
    assert found == [f"flask-stack:alerts.{key}: is only for platform aws (it sizes an RDS alarm); on "
                     "digitalocean the database's alerts are percentages: alerts.cpuPercent, "
                     "alerts.memoryPercent, alerts.diskPercent; remove it"
                     for key in ("freeStorageGb", "databaseConnections")]
    assert errors(with_changes(AWS, alerts={"diskPercent": 80})) == [
        "flask-stack:alerts.diskPercent: is only for platform digitalocean (CloudWatch has no memory "
        "or disk metric of an instance without the CloudWatch agent); remove it"]


def test_a_digitalocean_webhook_is_slack_and_names_its_channel():
    hook = Secret("https://hooks.slack.com/services/T0/B0/x")
    assert do_errors(with_changes(DO, alerts={"webhook": hook})) == [
        'flask-stack:alerts.slackChannel: is required with alerts.webhook on digitalocean: '
        'DigitalOcean posts to a Slack incoming webhook and names its channel; pulumi config set '
        '--path alerts.slackChannel "#ops"']
    loaded = load_do(with_changes(DO, alerts={"webhook": hook, "slackChannel": "#ops"})).alerts
    assert loaded.slack_channel == "#ops"
    assert do_errors(with_changes(DO, alerts={"slackChannel": "#ops"}))[0].startswith(
        "flask-stack:alerts.slackChannel: has no webhook to post through")


def test_prod_on_digitalocean_without_a_destination_is_warned_about():
    warned = load_do(DO, "prod").warnings
    assert any(w.startswith("flask-stack:alerts.email: not set on prod") for w in warned), warned
