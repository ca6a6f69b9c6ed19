"""The per-environment stacks the workflows deploy (examples/staging.yaml, prod.yaml, review.yaml),
run through the real program under Pulumi's mocks: staging has prod's shape, prod is protected and
highly available, and a review stack pr-<n> has nothing protected, so the `pulumi destroy` that
closes a pull request needs no manual step."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from stack import settings
from tests.support.cloud import TEST_PRIVATE_KEY, TEST_PUBLIC_KEY, example_config
from tests.support.mocks import REVIEW_EXPIRY, Run, run_program
from tests.test_digitalocean import CLUSTER, DROPLET, LB, VPC, do_mocks, fake_address, one
from workflow.review import review_stack_file

ROOT = Path(__file__).resolve().parent.parent


def run_example(name: str, stack: str) -> Run:
    config, keys = example_config(name)
    return run_program(config, stack=stack, secret_keys=keys, mocks=do_mocks())


@pytest.fixture(scope="module")
def staging() -> Run:
    return run_example("staging", "staging")


@pytest.fixture(scope="module")
def prod() -> Run:
    return run_example("prod", "prod")


@pytest.fixture(scope="module")
def review(tmp_path_factory) -> Run:
    """pr-42 from the file CI writes: the template, the stack's own range, the deploy key and
    the runner's address (the private key is the one value CI sets after, as a secret)."""
    template = yaml.safe_load((ROOT / "examples/review.yaml").read_text())
    document = review_stack_file(template, stack="pr-42", secrets={"encryptionsalt": "v1:x"},
                                 public_key=TEST_PUBLIC_KEY, admin_cidr="198.51.100.7",
                                 expires_at=REVIEW_EXPIRY)
    directory = tmp_path_factory.mktemp("review")
    (directory / "Pulumi.pr-42.yaml").write_text(yaml.safe_dump(document))
    raw = settings.read_stack_file(directory / "Pulumi.pr-42.yaml")
    raw["ssh"] = {**raw["ssh"], "privateKey": TEST_PRIVATE_KEY}
    return run_program(raw, stack="pr-42", secret_keys=("ssh",), mocks=do_mocks())


@pytest.mark.parametrize(("name", "stack"), [("staging", "staging"), ("prod", "prod"), ("review", "pr-42")])
def test_environment_examples_leave_only_the_ssh_values_to_set(name, stack):
    loaded = settings.load(settings.read_stack_file(ROOT / f"examples/{name}.yaml"), stack=stack,
                           project_dir=ROOT, offline=True)
    assert loaded.platform == "digitalocean"
    review = ["expiresAt"] if stack.startswith("pr-") else []  # CI writes it on every run
    assert sorted(d.split(":", 2)[1] for d in loaded.deferred) == [
        *review, "ssh.adminCidrs", "ssh.privateKey", "ssh.publicKey"]
    assert loaded.ephemeral is (stack == "pr-42")


def test_each_environment_has_its_own_vpc_range():
    ranges = {name: settings.read_stack_file(ROOT / f"examples/{name}.yaml")["network"]["vpcCidr"]
              for name in ("staging", "prod")}
    ranges["dev"] = settings.from_stack_file("dev", ROOT).network.vpc_cidr
    assert len(set(ranges.values())) == 3, ranges


def test_staging_has_the_shape_of_prod(staging, prod):
    assert len(staging.monitor.by_type(DROPLET)) == 2 and len(prod.monitor.by_type(DROPLET)) == 3
    assert one(staging, LB) and one(prod, LB)
    assert one(staging, CLUSTER).inputs["version"] == one(prod, CLUSTER).inputs["version"] == "16"
    assert one(staging, VPC).inputs["ipRange"] == "10.30.0.0/16"


def test_prod_database_is_protected_and_has_a_standby(prod):
    cluster = one(prod, CLUSTER)
    assert cluster.protect, f"{cluster.urn}: not protected on prod"
    assert cluster.inputs["nodeCount"] == 2, cluster.urn
    assert prod.resolved["url"] == "https://example.com/"


def test_staging_database_is_protected_too(staging):
    cluster = one(staging, CLUSTER)
    assert cluster.protect, f"{cluster.urn}: a staging stack is not ephemeral"


def test_a_review_stack_protects_nothing_so_destroy_needs_no_manual_step(review):
    protected = [r.urn for r in review.monitor.registered if r.protect or r.retain_on_delete]
    assert protected == []
    assert one(review, CLUSTER)  # the database is there, and goes with the stack


def test_a_review_stack_is_one_droplet_in_its_own_range(review):
    assert review.monitor.by_type(LB) == []
    droplet = one(review, DROPLET)
    assert one(review, VPC).inputs["ipRange"] == "10.128.42.0/24"
    assert review.resolved["url"] == f"http://{fake_address(droplet.name)}/"
