"""The database's connection budget on DigitalOcean (stack/settings/budget.py): the limits per
size, the workers a droplet runs, the refusal with its numbers, and the pool's size."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from stack import settings
from stack.settings import SettingsError
from stack.settings.budget import droplet_cpus, instance_cpus, rds_usable_connections, usable_connections
from tests.support.cloud import example_config, with_changes

ROOT = Path(__file__).resolve().parent.parent
DO, DO_KEYS = example_config("digitalocean-minimal")


def load(config: dict[str, Any], stack: str = "staging") -> settings.Settings:
    return settings.load(config, stack=stack, project_dir=ROOT, secret_keys=frozenset(DO_KEYS))


@pytest.mark.parametrize(("size", "usable"), [
    ("db-s-1vcpu-1gb", 22), ("db-s-1vcpu-2gb", 47), ("db-s-2vcpu-4gb", 97), ("db-s-4vcpu-8gb", 197),
    ("gd-2vcpu-8gb", 197), ("db-unknown", None)])
def test_digitalocean_leaves_25_connections_per_gb_less_3(size, usable):
    assert usable_connections(size) == usable


@pytest.mark.parametrize(("size", "cpus"), [("s-1vcpu-1gb", 1), ("s-2vcpu-4gb-amd", 2), ("c-4", 4),
                                            ("g-8vcpu-32gb", 8), ("weird", None)])
def test_a_droplets_cpus_come_from_its_size(size, cpus):
    assert droplet_cpus(size) == cpus


def test_the_examples_fit_their_databases():
    for name, stack in (("digitalocean-minimal", "staging"), ("digitalocean-complete", "staging"),
                        ("prod", "prod"), ("staging", "staging")):
        config, keys = example_config(name)
        settings.load(config, stack=stack, project_dir=ROOT, secret_keys=frozenset(keys))


def test_too_many_workers_for_the_database_are_refused_with_the_numbers():
    config = with_changes(DO, hosts={"count": 3}, app={"workers": 8})
    with pytest.raises(SettingsError) as caught:
        load(config)
    assert caught.value.errors == [
        "flask-stack:database.size: db-s-1vcpu-1gb leaves 22 connections to the app (25 per GB of "
        "RAM, 3 kept by DigitalOcean), but 3 hosts x 8 Gunicorn workers would open 24; set fewer "
        "workers (app.workers) or hosts, a bigger database.size, or database.pool: true (PgBouncer "
        "in transaction mode shares 22 connections among them)"]


def test_processes_and_schedules_count_once_per_host_they_run_on():
    def worker(count: int) -> dict:
        return {"worker": {"command": "python -m worker", "count": count, "on": "all"}}

    fits = with_changes(DO, hosts={"count": 2}, app={"workers": 10}, processes=worker(1))
    assert load(fits).database.pool_size == 0  # 2 x 10 + 2 = 22: exactly the limit
    with pytest.raises(SettingsError) as caught:
        load(with_changes(DO, hosts={"count": 2}, app={"workers": 10}, processes=worker(2)))
    assert "2 hosts x 10 Gunicorn workers + 4 process and schedule instances would open 24" in (
        caught.value.errors[0])


def test_auto_workers_follow_the_droplets_cpus_and_the_worker_class():
    # s-4vcpu-8gb: cores + 1 = 5 gthread workers; sync: 2 x 4 + 1 = 9; 3 hosts x 9 = 27 > 22.
    assert load(with_changes(DO, hosts={"count": 3, "size": "s-4vcpu-8gb"})).database.pool_size == 0
    with pytest.raises(SettingsError) as caught:
        load(with_changes(DO, hosts={"count": 3, "size": "s-4vcpu-8gb"}, app={"workerClass": "sync",
                                                                            "threads": 1}))
    assert "3 hosts x 9 Gunicorn workers would open 27" in caught.value.errors[0]


def test_a_pool_takes_the_stack_that_would_not_fit_and_is_sized_to_the_limit():
    config = with_changes(DO, hosts={"count": 3}, app={"workers": 8}, database={"pool": True})
    assert load(config).database.pool_size == 22  # 24 wanted, the cluster leaves 22
    small = with_changes(DO, database={"pool": True})
    assert load(small).database.pool_size == 4  # 2 hosts x (1 CPU + 1) workers
    assert load(DO).database.pool_size == 0  # no pool unless asked


# -- AWS: RDS's estimate (alerts.max_connections), no pool ---------------------------------------
AWS, AWS_KEYS = example_config("aws-minimal")


@pytest.mark.parametrize(("size", "cpus"), [("t3.small", 2), ("t2.micro", 1), ("t4g.large", 2),
                                            ("m7g.medium", 1), ("c6i.xlarge", 4), ("m6i.4xlarge", 16),
                                            ("weird", None)])
def test_an_instance_types_cpus_come_from_its_name(size, cpus):
    assert instance_cpus(size) == cpus


def test_rds_leaves_its_estimated_max_connections_less_the_superuser_reserve():
    assert (rds_usable_connections("db.t4g.micro"), rds_usable_connections("db.t4g.small")) == (98, 199)
    assert rds_usable_connections("db.unknown.class") is None


def test_an_aws_stack_past_the_rds_limit_is_refused_with_the_numbers():
    for name in ("aws-minimal", "aws-complete"):
        config, keys = example_config(name)
        settings.load(config, stack="staging", project_dir=ROOT, secret_keys=frozenset(keys))
    config = with_changes(AWS, hosts={"count": 3}, app={"workers": 40})
    with pytest.raises(SettingsError) as caught:
        settings.load(config, stack="staging", project_dir=ROOT, secret_keys=frozenset(AWS_KEYS))
    assert caught.value.errors == [
        "flask-stack:database.size: db.t4g.micro allows about 98 connections to the app (RDS's "
        "default max_connections for the class, estimated from its memory, less 3 reserved), but 3 "
        "hosts x 40 Gunicorn workers would open 120; set fewer workers (app.workers) or hosts, or a "
        "bigger database.size"]
