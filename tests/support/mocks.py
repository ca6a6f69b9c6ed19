"""Running the real program under Pulumi's own unit-test mocks, recording every resource.

`RecordingMonitor` keeps each RegisterResource request (type, name, parent, dependencies,
inputs) so tests can walk the whole resource graph; `run_program` sets config and mocks, runs
`stack.program.run()` with preview off (so apply callbacks really run) and returns the monitor.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from unittest import mock

import pulumi
from pulumi.runtime import mocks as pulumi_mocks

PROJECT = "flask-stack"
REVIEW_EXPIRY = "2026-12-01T18:00:00Z"  # expiresAt of the review stacks (pr-<n>) the tests run


SECRET_SIG = "4dabf18193072939515e22adb298388d"  # noqa: S105 - Pulumi's marker of a secret, not one


class Secret:
    """A secret input as the program sent it (to tell secret from plain in assertions)."""

    def __init__(self, value: Any):
        self.value = value

    def __repr__(self) -> str:
        return "Secret(...)"


def unwrap(value: Any) -> Any:
    """Secrets become Secret(value); everything else as sent."""
    if isinstance(value, dict):
        if value.get(SECRET_SIG) == "1b47061264138c4ac30d75fd1eb44270":
            return Secret(unwrap(value.get("value")))
        return {k: unwrap(v) for k, v in value.items()}
    if isinstance(value, list):
        return [unwrap(v) for v in value]
    return value


def plain(value: Any) -> Any:
    """The value with every secret opened."""
    if isinstance(value, Secret):
        return plain(value.value)
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [plain(v) for v in value]
    return value


@dataclass
class Registered:
    urn: str
    type: str
    name: str
    parent: str
    dependencies: list[str]
    inputs: dict[str, Any]
    protect: bool = False
    retain_on_delete: bool = False
    ignore_changes: tuple[str, ...] = ()
    delete_before_replace: bool = False
    replace_on_changes: tuple[str, ...] = ()
    provider: str = ""  # "<provider URN>::<id>" when given explicitly (or by the parent)


class RecordingMonitor(pulumi_mocks.MockMonitor):
    def __init__(self, mocks: pulumi_mocks.Mocks):
        super().__init__(mocks)
        self.registered: list[Registered] = []

    def RegisterResource(self, request):  # noqa: N802 - the gRPC method's name
        if request.type != "pulumi:pulumi:Stack":
            inputs = pulumi.runtime.rpc.deserialize_properties(request.object, keep_unknowns=True)
            urn = self.make_urn(request.parent, request.type, request.name)
            self.registered.append(Registered(
                urn, request.type, request.name, request.parent, list(request.dependencies),
                unwrap(dict(inputs)), protect=request.protect,
                retain_on_delete=request.retainOnDelete,
                ignore_changes=tuple(request.ignoreChanges),
                delete_before_replace=request.deleteBeforeReplace, provider=request.provider,
                replace_on_changes=tuple(request.replaceOnChanges)))
        return super().RegisterResource(request)

    def by_type(self, type_: str) -> list[Registered]:
        return [r for r in self.registered if r.type == type_]

    def named(self, name: str) -> Registered:
        found = [r for r in self.registered if r.name == name]
        assert len(found) == 1, f"{len(found)} resources named {name}"
        return found[0]


class StrictMocks(pulumi_mocks.Mocks):
    """Resources get their inputs back as state, plus what `outputs` adds for their type (the
    values a cloud would fill in: addresses, endpoints, generated passwords); an invoke nobody
    expected fails loudly. `calls` maps an invoke token to its result, or to a function of the
    invoke's arguments."""

    def __init__(self, calls: dict[str, Any] | None = None,
                 outputs: dict[str, Callable[[pulumi_mocks.MockResourceArgs], dict]] | None = None):
        self.calls = calls or {}
        self.outputs = outputs or {}

    def new_resource(self, args: pulumi_mocks.MockResourceArgs):
        state = dict(args.inputs)
        if args.typ == "command:local:Command":  # what a host key step prints: the key it saw
            state["stdout"] = mock_host_key(args.name)
        if args.typ in self.outputs:
            state.update(self.outputs[args.typ](args))
        return f"{args.name}-id", state

    def call(self, args: pulumi_mocks.MockCallArgs):
        if args.token not in self.calls:
            raise AssertionError(f"unexpected invoke {args.token}({args.args})")
        answer = self.calls[args.token]
        return (answer(args.args) if callable(answer) else answer), []


def mock_host_key(name: str) -> str:
    """A well-formed ed25519 public key line made from `name` (the mocks' recorded host keys)."""
    blob = (len(b"ssh-ed25519").to_bytes(4, "big") + b"ssh-ed25519" + (32).to_bytes(4, "big")
            + hashlib.sha256(name.encode()).digest())
    return "ssh-ed25519 " + base64.b64encode(blob).decode()


@dataclass
class Run:
    monitor: RecordingMonitor
    outputs: dict[str, Any] = field(default_factory=dict)  # as the program returned them
    resolved: dict[str, Any] = field(default_factory=dict)  # their values, secrets as Secret(...)


def set_config(config: dict[str, Any], secret_keys: tuple[str, ...] = ()) -> None:
    """Config as the CLI hands it over: prefixed keys, objects JSON-encoded, values as strings."""
    values = {}
    for key, value in config.items():
        text = value if isinstance(value, str) else json.dumps(value)
        values[f"{PROJECT}:{key}"] = text
    pulumi.runtime.set_all_config(values, [f"{PROJECT}:{k}" for k in secret_keys])


def run_program(config: dict[str, Any], *, stack: str = "test", secret_keys: tuple[str, ...] = (),
                mocks: pulumi_mocks.Mocks | None = None, pin_hosts: bool = True) -> Run:
    if re.fullmatch(r"pr-[0-9]+", stack) and "expiresAt" not in config:
        config = {**config, "expiresAt": REVIEW_EXPIRY}  # as the review-stack workflow sets it
    if pin_hosts:
        config = with_host_keys(config)
    config, project = beside_the_app(config)
    monitor = RecordingMonitor(mocks or StrictMocks())
    pulumi.runtime.set_mocks(monitor.mocks, project=PROJECT, stack=stack, preview=False,
                             monitor=monitor)
    set_config(config, secret_keys)
    from stack import program

    run = Run(monitor=monitor)

    async def resolve(key: str, value: Any) -> None:
        out = pulumi.Output.from_input(value)
        plain_value = await out.future()
        run.resolved[key] = Secret(plain_value) if await out.is_secret() else plain_value

    def program_body():
        run.outputs = program.run()
        async def resolve_all() -> None:
            await asyncio.gather(*(resolve(k, v) for k, v in run.outputs.items()))

        return pulumi.Output.from_input(asyncio.ensure_future(resolve_all()))

    with project:
        pulumi_mocks.test(program_body)()
    return run


def with_host_keys(config: dict[str, Any]) -> dict[str, Any]:
    """Servers of platform existing pinned as their user pins them before a first deploy
    (hosts.hostKeys, a mock key per address), unless the config pins any key itself."""
    hosts, ssh = config.get("hosts"), config.get("ssh")
    if (config.get("platform") != "existing" or not isinstance(hosts, dict)
            or "hostKeys" in hosts or (isinstance(ssh, dict) and "hostKey" in ssh)):
        return config
    addresses = hosts.get("addresses")
    if not isinstance(addresses, list):
        return config
    keys = {a: mock_host_key(a) for a in addresses if isinstance(a, str)}
    return {**config, "hosts": {**hosts, "hostKeys": keys}}


def beside_the_app(config: dict[str, Any]) -> tuple[dict[str, Any], contextlib.AbstractContextManager]:
    """Tests keep their apps in temporary folders and give app.path as an absolute path, which
    a real stack may not (app.path must lie inside the project). Such a program is run as if
    Pulumi.yaml sat beside the app: the project is the app's parent, app.path its name."""
    app = config.get("app")
    if not (isinstance(app, dict) and isinstance(app.get("path"), str)
            and Path(app["path"]).is_absolute()):
        return config, contextlib.nullcontext()
    path = Path(app["path"])
    from stack.settings import sources

    return ({**config, "app": {**app, "path": path.name}},
            mock.patch.object(sources, "project_dir", return_value=path.parent))
