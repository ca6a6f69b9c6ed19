"""Running the real program under Pulumi's own unit-test mocks, recording every resource.

`RecordingMonitor` keeps each RegisterResource request (type, name, parent, dependencies,
inputs) so tests can walk the whole resource graph; `run_program` sets config and mocks, runs
`stack.program.run()` with preview off (so apply callbacks really run) and returns the monitor.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import pulumi
from pulumi.runtime import mocks as pulumi_mocks

PROJECT = "flask-stack"


@dataclass
class Registered:
    type: str
    name: str
    parent: str
    dependencies: list[str]
    inputs: dict[str, Any]


class RecordingMonitor(pulumi_mocks.MockMonitor):
    def __init__(self, mocks: pulumi_mocks.Mocks):
        super().__init__(mocks)
        self.registered: list[Registered] = []

    def RegisterResource(self, request):  # noqa: N802 - the gRPC method's name
        if request.type != "pulumi:pulumi:Stack":
            inputs = pulumi.runtime.rpc.deserialize_properties(request.object)
            self.registered.append(Registered(request.type, request.name, request.parent,
                                              list(request.dependencies), dict(inputs)))
        return super().RegisterResource(request)


class StrictMocks(pulumi_mocks.Mocks):
    """Resources get their inputs back as state; an invoke nobody expected fails loudly."""

    def __init__(self, calls: dict[str, dict] | None = None):
        self.calls = calls or {}

    def new_resource(self, args: pulumi_mocks.MockResourceArgs):
        return f"{args.name}-id", dict(args.inputs)

    def call(self, args: pulumi_mocks.MockCallArgs):
        if args.token not in self.calls:
            raise AssertionError(f"unexpected invoke {args.token}({args.args})")
        return self.calls[args.token], []


@dataclass
class Run:
    monitor: RecordingMonitor
    outputs: dict[str, Any] = field(default_factory=dict)


def set_config(config: dict[str, Any], secret_keys: tuple[str, ...] = ()) -> None:
    """Config as the CLI hands it over: prefixed keys, objects JSON-encoded, values as strings."""
    values = {}
    for key, value in config.items():
        text = value if isinstance(value, str) else json.dumps(value)
        values[f"{PROJECT}:{key}"] = text
    pulumi.runtime.set_all_config(values, [f"{PROJECT}:{k}" for k in secret_keys])


def run_program(config: dict[str, Any], *, stack: str = "test", secret_keys: tuple[str, ...] = (),
                mocks: pulumi_mocks.Mocks | None = None) -> Run:
    monitor = RecordingMonitor(mocks or StrictMocks())
    pulumi.runtime.set_mocks(monitor.mocks, project=PROJECT, stack=stack, preview=False,
                             monitor=monitor)
    set_config(config, secret_keys)
    from stack import program

    outputs = program.run()
    return Run(monitor=monitor, outputs=outputs)
