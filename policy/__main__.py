"""The flask-stack security baseline: `pulumi preview --policy-pack policy` (docs/policy.md)."""

from baseline import enforcement, policies, running_stack
from pulumi_policy import PolicyPack

PolicyPack(name="flask-stack-baseline", policies=policies(enforcement(*running_stack())))
