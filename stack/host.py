"""AppHost: one host's steps, bootstrap → env → release → configure (→ certificate) → health gate.

Every step is a pulumi-command `remote.Command` (the release archive a `CopyToRemote`) whose
inputs are the script itself and a content hash, so an unchanged `pulumi up` runs nothing, and
a change runs exactly the steps whose content changed. Each step also has `update` set to its
script: pulumi-command then re-runs it in place when its inputs change, never replaces it, so
no step has a delete action and destroying a stack never needs the hosts to be reachable.
Every step's connection is pinned to the host's SSH key and waits for the host key check, a
local command that runs whenever one of the steps does (stack.hostkeys).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pulumi
from pulumi_command import local, remote

from stack import hostkeys, render, scripts
from stack.inventory import Host
from stack.paths import Paths
from stack.release import Release
from stack.settings import Settings
from stack.site import DatabaseAdmin

# A host that is still booting refuses SSH for a while: keep dialling (60 x 10 s).
DIAL_ERROR_LIMIT = 60
PER_DIAL_TIMEOUT = 10


def sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def text_sha(script: pulumi.Output[scripts.Script]) -> pulumi.Output[str]:
    return script.apply(lambda made: sha(made.text()))


@dataclass
class AppHostArgs:
    settings: Settings
    host: Host  # its name and the address SSH reaches it at
    release: Release
    files: dict[str, str]  # the rendered host files (render.render_host)
    secret_env: pulumi.Output[str]  # EnvironmentFile lines of the secrets (DATABASE_URL, ...)
    run_release_command: bool = False  # the first host of a rollout runs app.releaseCommand
    after: list[pulumi.Resource] = field(default_factory=list)  # steps that must finish first
    database_admin: DatabaseAdmin | None = None  # the first host grants the app's database user
    release_after: list[pulumi.Resource] = field(default_factory=list)  # e.g. that grant step


def connection(settings: Settings, address: pulumi.Input[str],
               host_key: pulumi.Input[str] | None = None) -> remote.ConnectionArgs:
    """How the steps log in to a host, pinned to `host_key` (stack.hostkeys)."""
    ssh = settings.ssh
    key = ssh.private_key.value if ssh.private_key and ssh.private_key.known else None
    proxy = None
    if ssh.bastion:
        proxy = remote.ProxyConnectionArgs(
            host=ssh.bastion.host, user=ssh.bastion.user, port=ssh.bastion.port,
            private_key=pulumi.Output.secret(key) if key else None,
            dial_error_limit=DIAL_ERROR_LIMIT, per_dial_timeout=PER_DIAL_TIMEOUT)
    return remote.ConnectionArgs(
        host=address, user=ssh.user, port=ssh.port,
        private_key=pulumi.Output.secret(key) if key else None,
        host_key=host_key, proxy=proxy,
        dial_error_limit=DIAL_ERROR_LIMIT, per_dial_timeout=PER_DIAL_TIMEOUT)


class AppHost(pulumi.ComponentResource):
    """The app rolled onto one host. `gate` is the step later batches wait for."""

    gate: remote.Command
    release: remote.Command
    database: remote.Command | None = None
    certificate: remote.Command | None = None  # with tls.enabled

    def __init__(self, name: str, args: AppHostArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("flask-stack:hosts:AppHost", name, None, opts)
        s, host = args.settings, args.host.name
        # Messages name the host with its address, which on a cloud is known only once the
        # machine exists: the scripts that report are made when it is.
        address = pulumi.Output.from_input(args.host.address)
        paths = Paths(s.app.name)

        def at(make: Callable[[str], scripts.Script]) -> pulumi.Output[scripts.Script]:
            return address.apply(lambda where: make(str(where or "")))

        app_env = args.files[paths.env_file]
        admin = args.database_admin
        makers: dict[str, Callable[[str], scripts.Script]] = {
            "bootstrap": lambda where: scripts.bootstrap(s, host, where, files=args.files),
            "env": lambda where: scripts.env(s, host, app_env, where),
            "release": lambda where: scripts.release(
                s, host, args.release, release_command=args.run_release_command, address=where,
                wsgi=args.files[paths.wsgi], files=args.files),
            "configure": lambda where: scripts.configure(s, host, args.files, where),
            "gate": lambda where: scripts.gate(s, host, where),
        }
        if admin is not None:
            makers["database"] = lambda where: scripts.database(s, host, admin.database, admin.user,
                                                                address=where)
        if s.tls.enabled:
            makers["certificate"] = lambda where: scripts.certificate(s, host, args.files, where)
        # Every step's command line, made now with the host's name for its address (a cloud
        # host's is known only once it exists): one too long for SSH (scripts.as_root refuses
        # it) stops the program before any step of this host is declared, in a preview too.
        try:
            for make in makers.values():
                scripts.as_root(s, make(host))
        except scripts.CommandTooLong as exc:
            raise pulumi.RunError(str(exc)) from None

        step_scripts = {step: at(make) for step, make in makers.items()}
        config_files = {f.path: args.files[f.path] for f in scripts.config_files(s, args.files)}
        config_hash = render.content_hash(config_files)
        configure_triggers: list[Any] = [config_hash]
        if s.front == "nginx" and s.front_workers is None and s.hosts.size:
            # Nginx's worker count comes from the host's CPUs when configure runs; a resized
            # host (new size, same machine) runs it again so the count follows the new CPUs.
            configure_triggers.append(f"size {s.hosts.size}")
        # Whenever any step of this host would run, its key is checked first: the check's
        # triggers are what the steps' inputs are made of. The secrets count as the config
        # gives them: a cloud database's URL (and its admin login) exists only once the
        # database does, and the check, with bootstrap after it, must not wait for that.
        given = [s.database.url.value if s.database.url else None,
                 *(value.value for _, value in s.app.secret_env)]
        check_triggers: list[Any] = [*(text_sha(made) for made in step_scripts.values()),
                                     args.release.sha256, *configure_triggers,
                                     pulumi.Output.secret(sha(json.dumps(given)))]
        self.host_key, check = self._host_key(name, s, args.host, address, check_triggers)
        conn = connection(s, args.host.address, self.host_key)

        def step(suffix: str, script: scripts.Script | pulumi.Output[scripts.Script],
                 depends: list[pulumi.Resource], triggers: list[Any],
                 stdin: pulumi.Input[str] | None = None) -> remote.Command:
            line = (script.apply(lambda made: scripts.as_root(s, made))
                    if isinstance(script, pulumi.Output) else scripts.as_root(s, script))
            return remote.Command(
                f"{name}-{suffix}", connection=conn, create=line, update=line, stdin=stdin,
                triggers=triggers, logging="stdoutAndStderr",
                opts=pulumi.ResourceOptions(parent=self, depends_on=[check, *depends]))

        bootstrap_script = step_scripts["bootstrap"]
        # Bootstrap and upload touch nothing that serves, so every host does them at once;
        # the steps that change what a host serves wait for the previous batch (args.after).
        bootstrap = step("bootstrap", bootstrap_script, [], [text_sha(bootstrap_script)])

        env_script = step_scripts["env"]
        env = step("env", env_script, [bootstrap, *args.after],
                   [text_sha(env_script), args.secret_env.apply(sha)], stdin=args.secret_env)

        upload = remote.CopyToRemote(
            f"{name}-upload", connection=conn, source=pulumi.FileAsset(str(args.release.archive)),
            remote_path=paths.archive(args.release), triggers=[args.release.sha256],
            opts=pulumi.ResourceOptions(parent=self, depends_on=[check, bootstrap]))

        release_waits = [upload, env, *args.after, *args.release_after]
        if admin is not None:
            database_script = step_scripts["database"]
            self.database = step("database", database_script, [bootstrap],
                                 [text_sha(database_script), admin.env.apply(sha)], stdin=admin.env)
            release_waits.append(self.database)
        release_script = step_scripts["release"]
        release = step("release", release_script, release_waits, [args.release.sha256])
        self.release = release

        configure = step("configure", step_scripts["configure"],
                         [release, env, *args.after], configure_triggers)

        served = [configure]
        gate_triggers: list[Any] = [args.release.sha256, config_hash, env.triggers]
        if s.tls.enabled:
            # After configure: the front answers the ACME challenges by then. certbot.timer
            # renews afterwards, so this runs again only when the domain or ACME settings change.
            certificate_script = step_scripts["certificate"]
            certificate = step("certificate", certificate_script, [configure],
                               [text_sha(certificate_script)])
            self.certificate = certificate
            served.append(certificate)
            gate_triggers.append(certificate.triggers)

        gate_script = step_scripts["gate"]
        self.gate = step("gate", gate_script, [*served, release, env], gate_triggers)
        self.release_id = args.release.id
        self.register_outputs({"release": args.release.id, "config": config_hash,
                               "hostKey": self.host_key})

    def _host_key(self, name: str, s: Settings, host: Host, address: pulumi.Output[str],
                  triggers: list[Any]) -> tuple[pulumi.Output[str], local.Command]:
        """The key this host's connections are pinned to (the config's, or recorded at a cloud
        machine's first contact), and the step that checks it before every other (stack.hostkeys)."""
        bastion_key = (pulumi.Output.secret(s.ssh.private_key.value)
                       if s.ssh.bastion and s.ssh.private_key and s.ssh.private_key.known else None)

        def run(suffix: str, script: pulumi.Output[scripts.Script], **more: Any) -> local.Command:
            line = script.apply(lambda made: made.text())
            return local.Command(f"{name}-{suffix}", create=line, interpreter=["/bin/bash", "-c"],
                                 stdin=bastion_key, logging="stdoutAndStderr",
                                 **more)

        configured = hostkeys.configured(s, host.address)
        if configured is not None:
            key: pulumi.Output[str] = pulumi.Output.from_input(configured)
        else:
            # Once per machine: a new machine id replaces the step, a new first contact. Any
            # other change (its address, the script, the bastion's key) runs `update`, which
            # only prints the key recorded before: it never records again.
            record = run("hostkey-record", address.apply(
                lambda where: hostkeys.script(s, host.name, str(where or ""), None)),
                update=hostkeys.KEEP_RECORD, triggers=[host.machine],
                opts=pulumi.ResourceOptions(parent=self, replace_on_changes=["triggers"]))
            key = record.stdout
        script = pulumi.Output.all(address, key).apply(
            lambda both: hostkeys.script(s, host.name, str(both[0] or ""), str(both[1] or "")))
        check = run("hostkey", script, update=script.apply(lambda made: made.text()),
                    triggers=triggers, opts=pulumi.ResourceOptions(parent=self))
        return key, check
