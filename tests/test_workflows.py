"""The GitHub workflows (.github/workflows/) and the scripts they run (.github/scripts/), checked
here because they only ever run on GitHub: actionlint on every workflow, zizmor on .github/,
shellcheck on every script, the policies the workflows promise (read-only by default, one run at a
time on a stack, actions pinned to commits, secrets only in environments and never for a fork, the
policy pack on every preview and update, every secret and variable documented), and each script
run against fake `pulumi` and `gh` commands that record what they were asked."""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.support.project import copy_project

ROOT = Path(__file__).resolve().parent.parent
GITHUB = ROOT / ".github"
WORKFLOW_FILES = sorted((GITHUB / "workflows").glob("*.yml"))
ACTION_FILES = sorted((GITHUB / "actions").glob("*/action.yml"))
SCRIPT_FILES = sorted(p for p in (GITHUB / "scripts").iterdir() if p.is_file())
ON_GITHUB = os.environ.get("GITHUB_ACTIONS") == "true"
PRIVATE_KEY = "-----BEGIN OPENSSH PRIVATE KEY-----\nnot-a-real-key\n-----END OPENSSH PRIVATE KEY-----"
PUBLIC_KEY = ("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIDiDpa+Q74+gxFHdYkOMZHcBd7Av8W6x+bGgQA6CO2Df "
              "deploy@example.com")
RUNNER = "198.51.100.7/32"


def tool(name: str, install: str) -> str:
    """A linter from the project's environment (or PATH): requirements.txt installs them all, as
    wheels. Missing under GitHub Actions is a failure; elsewhere (a Python without them), a skip."""
    found = Path(sys.executable).with_name(name)
    path = str(found) if found.exists() else shutil.which(name)
    if path is None:
        if ON_GITHUB:
            pytest.fail(f"{name} is not installed: {install}")
        pytest.skip(f"{name} is not installed here: {install}")
    return path


def load(path: Path) -> dict[str, Any]:
    document = yaml.safe_load(path.read_text())
    if True in document:  # YAML 1.1 reads the key `on` as true
        document["on"] = document.pop(True)
    return document


def jobs() -> list[tuple[str, str, dict[str, Any]]]:
    return [(path.name, name, job) for path in WORKFLOW_FILES
            for name, job in load(path)["jobs"].items()]


def steps(job: dict[str, Any]) -> list[dict[str, Any]]:
    return job.get("steps") or []


def runs(job: dict[str, Any]) -> str:
    return "\n".join(step.get("run", "") for step in steps(job))


def ids(items: list[tuple[str, str, dict]]) -> list[str]:
    return [f"{workflow}:{name}" for workflow, name, _ in items]


# -- linters --------------------------------------------------------------------------------------
@pytest.mark.parametrize("path", WORKFLOW_FILES, ids=lambda p: p.name)
def test_actionlint_passes(path):
    actionlint = tool("actionlint", "bin/test installs it from requirements.lock")
    shellcheck = tool("shellcheck", "bin/test installs it from requirements.lock")
    result = subprocess.run([actionlint, "-no-color", "-shellcheck", shellcheck, str(path)],
                            cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr


def test_actionlint_finds_a_broken_workflow(tmp_path):
    actionlint = tool("actionlint", "bin/test installs it from requirements.lock")
    bad = tmp_path / ".github/workflows/bad.yml"
    bad.parent.mkdir(parents=True)
    bad.write_text(textwrap.dedent("""\
        on: push
        jobs:
          x:
            runs-on: ubuntu-24.04
            steps:
              - run: echo "${{ github.event.pull_request.title }}"
              - uses: actions/checkout@v6
                with:
                  no-such-input: true
        """))
    result = subprocess.run([actionlint, "-no-color", str(bad)], cwd=tmp_path, capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "no-such-input" in result.stdout


def zizmor(*args: str, cwd: Path = ROOT) -> list[dict[str, Any]]:
    # --strict-collection: a file that does not match GitHub's schema (dependabot.yml included)
    # fails instead of being skipped with a warning
    result = subprocess.run([tool("zizmor", "bin/test installs it from requirements.lock"), "--offline",
                             "--strict-collection", "--format", "json-v1", *args], cwd=cwd,
                            capture_output=True, text=True, timeout=120)
    assert result.stdout.startswith("["), result.stdout + result.stderr
    return json.loads(result.stdout)


def where(finding: dict[str, Any]) -> str:
    location = finding["locations"][0]["symbolic"]["key"]["Local"]["verbatim_path"]
    return f"{finding['ident']} ({finding['determinations']['severity']}) in {location}"


@pytest.mark.parametrize("persona", ["regular", "auditor"])
def test_zizmor_finds_nothing(persona):
    """zizmor over .github/ (workflows, the setup action, dependabot.yml) with .github/zizmor.yml's
    ignores, each of which says why it stays: its default persona, and the auditor's too (which
    adds, among others, secrets read outside a GitHub environment)."""
    findings = zizmor("--persona", persona, ".github")
    assert [where(f) for f in findings] == []


def test_zizmors_ignores_are_only_the_ones_reasoned_in_its_config():
    ignored = {f["ident"] for f in zizmor("--no-ignores", ".github")}
    config = yaml.safe_load((GITHUB / "zizmor.yml").read_text())
    assert ignored == set(config["rules"]) == {"self-repository"}


def test_zizmor_finds_a_tag_pin_and_a_secret_outside_an_environment(tmp_path):
    bad = tmp_path / ".github/workflows/bad.yml"
    bad.parent.mkdir(parents=True)
    bad.write_text(textwrap.dedent("""\
        on: push
        permissions: {}
        jobs:
          x:
            runs-on: ubuntu-24.04
            steps:
              - uses: actions/checkout@v6
                with:
                  persist-credentials: false
              - run: echo "$TOKEN"
                env:
                  TOKEN: ${{ secrets.TOKEN }}
        """))
    found = {f["ident"] for f in zizmor("--persona", "auditor", ".", cwd=tmp_path)}
    assert {"unpinned-uses", "secrets-outside-env"} <= found, found


@pytest.mark.parametrize("path", SCRIPT_FILES, ids=lambda p: p.name)
def test_shellcheck_passes(path):
    shellcheck = tool("shellcheck", "bin/test installs it from requirements.lock")
    result = subprocess.run([shellcheck, "-x", "--source-path=SCRIPTDIR", str(path)], cwd=ROOT,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr


def test_shellcheck_finds_a_broken_script(tmp_path):
    shellcheck = tool("shellcheck", "bin/test installs it from requirements.lock")
    bad = tmp_path / "bad"
    bad.write_text("#!/usr/bin/env bash\nfor f in $(ls $1); do rm $f; done\n")
    result = subprocess.run([shellcheck, str(bad)], capture_output=True, text=True, timeout=120)
    assert result.returncode == 1 and "SC2045" in result.stdout, result.stdout


def run_blocks() -> list[tuple[str, str]]:
    found = []
    for path in [*WORKFLOW_FILES, *ACTION_FILES]:
        document = load(path)
        every = [s for job in (document.get("jobs") or {}).values() for s in steps(job)]
        every += (document.get("runs") or {}).get("steps") or []
        found += [(f"{path.name}: {s.get('name') or s['run'][:40]}", s["run"]) for s in every if "run" in s]
    return found


@pytest.mark.parametrize(("where", "script"), run_blocks(), ids=[w for w, _ in run_blocks()])
def test_shellcheck_passes_on_every_run_block(where, script, tmp_path):
    """What actionlint does with shellcheck, also where actionlint cannot be installed."""
    shellcheck = tool("shellcheck", "bin/test installs it from requirements.lock")
    path = tmp_path / "step.sh"
    path.write_text("#!/usr/bin/env bash\nset -eo pipefail\n" + script)  # GitHub's bash -e {0}
    result = subprocess.run([shellcheck, str(path)], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, f"{where}\n{result.stdout}"


def test_every_script_is_executable_with_a_bash_shebang():
    for path in SCRIPT_FILES:
        if path.name == "lib.sh":  # sourced, never run
            continue
        assert os.access(path, os.X_OK), f"{path} is not executable"
        assert path.read_text().startswith("#!/usr/bin/env bash\n"), path
        assert "set -euo pipefail" in path.read_text(), path


# -- the policies the workflows promise ----------------------------------------------------------
def test_every_workflow_starts_read_only():
    for path in WORKFLOW_FILES:
        assert load(path)["permissions"] == {"contents": "read"}, path.name


COMMENTS = re.compile(r"\.github/scripts/(pr-comment|pr-preview)\b")
CHANGES_A_STACK = re.compile(r"\.github/scripts/(review-stack (prepare|destroy)|deploy-prepare)\b")


@pytest.mark.parametrize(("workflow", "name", "job"), jobs(), ids=ids(jobs()))
def test_write_permissions_only_where_they_are_used(workflow, name, job):
    if "uses" in job:  # a reusable workflow: its own file sets its permissions
        return
    granted = job.get("permissions", load(GITHUB / "workflows" / workflow)["permissions"])
    assert granted.get("contents") == "read", f"{workflow}:{name}"
    comments = bool(COMMENTS.search(runs(job)))
    assert (granted.get("pull-requests") == "write") == comments, (
        f"{workflow}:{name}: pull-requests: write must go with a step that comments, and only then")
    assert set(granted) <= {"contents", "pull-requests", "id-token"}, f"{workflow}:{name}: {granted}"
    if granted.get("id-token") == "write":  # only to hand GitHub's OIDC token to AWS
        setup = [s for s in steps(job) if s.get("uses") == "./.github/actions/setup"]
        assert setup and "aws-role-arn" in setup[0].get("with", {}), f"{workflow}:{name}"
        # in an environment, so the token's subject names it and a role can trust only that one
        assert job.get("environment"), f"{workflow}:{name}: id-token: write outside an environment"


def changes_a_stack(job: dict[str, Any]) -> bool:
    pulumi_up = any(str(s.get("uses", "")).startswith("pulumi/actions@")
                    and (s.get("with") or {}).get("command") in ("up", "destroy", "refresh")
                    for s in steps(job))
    return pulumi_up or bool(CHANGES_A_STACK.search(runs(job)))


STACK_JOBS = [j for j in jobs() if changes_a_stack(j[2])]


def test_the_stack_changing_jobs_are_found():
    assert sorted(ids(STACK_JOBS)) == [
        "deploy.yml:prod", "deploy.yml:staging", "review-stack.yml:destroy", "review-stack.yml:up",
        "review-sweep.yml:destroy"]


@pytest.mark.parametrize(("workflow", "name", "job"), STACK_JOBS, ids=ids(STACK_JOBS))
def test_a_stack_has_one_run_at_a_time_and_none_is_cancelled(workflow, name, job):
    concurrency = job.get("concurrency") or {}
    assert str(concurrency.get("group", "")).startswith("flask-stack-"), f"{workflow}:{name}"
    assert concurrency.get("cancel-in-progress") is False, f"{workflow}:{name}"


def test_a_review_stack_has_the_same_group_in_every_workflow():
    groups = {f"{w}:{n}": j["concurrency"]["group"] for w, n, j in STACK_JOBS if "review" in w}
    pr = "flask-stack-pr-${{ github.event.pull_request.number }}"
    assert groups == {"review-stack.yml:up": pr, "review-stack.yml:destroy": pr,
                      "review-sweep.yml:destroy": "flask-stack-${{ matrix.stack }}"}
    # the sweep's matrix holds plain pr-<n> names (python -m workflow expired), so the groups meet


# Every input of pulumi/actions v7.0.0, as its action.yml at 8e5e406f declares them.
PULUMI_ACTIONS_INPUTS = {
    "always-include-summary", "cloud-url", "color", "command", "comment-on-pr", "comment-on-pr-number",
    "comment-on-summary", "config-map", "continue-on-error", "debug", "diff", "edit-pr-comment",
    "exclude", "exclude-dependents", "exclude-protected", "expect-no-changes", "github-token",
    "log-flow", "log-verbosity", "message", "parallel", "plan", "policyPackConfigs", "policyPacks",
    "pulumi-version", "pulumi-version-file", "refresh", "remove", "replace", "secrets-provider",
    "stack-name", "suppress-outputs", "suppress-progress", "target", "target-dependents", "upsert",
    "work-dir"}
MINIMUM = {"actions/checkout": 6, "actions/setup-python": 6, "pulumi/actions": 7}
USES = re.compile(r"^\s*(?:-\s+)?uses:\s*(\S+)(.*)$", re.M)
PINNED = re.compile(r"(?P<name>[\w.-]+/[\w./-]+)@(?P<sha>[0-9a-f]{40})")
VERSION_COMMENT = re.compile(r"\s+# (?P<tag>v\d+\.\d+\.\d+)")


def remote_uses() -> list[tuple[str, str, str]]:
    """(file, reference, the rest of the line) of every `uses:` naming another repository."""
    return [(path.name, ref, rest) for path in [*WORKFLOW_FILES, *ACTION_FILES]
            for ref, rest in USES.findall(path.read_text()) if not ref.startswith("./")]


def test_every_remote_action_is_pinned_to_a_commit_with_its_version_beside_it():
    """A tag can be moved to other code; a commit cannot. The comment is what Dependabot updates
    with the SHA, and what a reader checks the SHA against (docs/security.md)."""
    found = remote_uses()
    assert len(found) >= 15, found
    for workflow, ref, rest in found:
        pinned, comment = PINNED.fullmatch(ref), VERSION_COMMENT.fullmatch(rest)
        assert pinned, f"{workflow}: {ref} is not pinned to a full commit SHA"
        assert comment, f"{workflow}: {ref} has no `# vX.Y.Z` comment naming its release"
        minimum = MINIMUM.get(pinned["name"])
        if minimum:
            assert int(comment["tag"][1:].split(".")[0]) >= minimum, f"{workflow}: {ref}{rest}"


def test_one_action_is_pinned_to_one_commit_everywhere():
    commits: dict[str, set[str]] = {}
    for _, ref, rest in remote_uses():
        commits.setdefault(ref.split("@")[0], set()).add(ref.split("@")[1] + rest)
    assert {name: pins for name, pins in commits.items() if len(pins) > 1} == {}


def test_the_pin_check_refuses_tags_and_bare_shas():
    for ref, rest in [("actions/checkout@v6", ""), ("actions/checkout@v6.1.0", ""),
                      ("actions/checkout@d23441a", " # v6.1.0"),
                      ("actions/checkout@d23441a48e516b6c34aea4fa41551a30e30af803", ""),
                      ("actions/checkout@d23441a48e516b6c34aea4fa41551a30e30af803", " # v6")]:
        assert not (PINNED.fullmatch(ref) and VERSION_COMMENT.fullmatch(rest)), ref + rest


def test_the_container_image_is_pinned_by_digest():
    images = [job["container"] for _, _, job in jobs() if "container" in job]
    assert images, "tests.yml runs in a container"
    for image in images:
        image = image["image"] if isinstance(image, dict) else image
        assert re.fullmatch(r"[\w./-]+:[\w.-]+@sha256:[0-9a-f]{64}", image), image


def test_dependabot_updates_every_place_an_action_is_pinned():
    config = yaml.safe_load((GITHUB / "dependabot.yml").read_text())
    actions = [u for u in config["updates"] if u["package-ecosystem"] == "github-actions"]
    assert len(actions) == 1
    wanted = {"/"} | {f"/{p.parent.relative_to(ROOT)}" for p in ACTION_FILES}
    assert set(actions[0]["directories"]) == wanted


def test_every_pulumi_actions_preview_or_up_runs_the_policy_pack():
    found = []
    for workflow, name, job in jobs():
        for step in steps(job):
            given = step.get("with") or {}
            if str(step.get("uses", "")).startswith("pulumi/actions@") and given.get("command") in (
                    "preview", "up"):
                found.append(f"{workflow}:{name}")
                assert given.get("policyPacks") == "policy", f"{workflow}:{name}: {step.get('name')}"
    assert sorted(found) == ["deploy.yml:prod", "deploy.yml:staging", "review-stack.yml:up"]


def test_pulumi_actions_steps_give_only_inputs_it_has():
    """A misspelt input (`policy-packs`) would be ignored with a warning and the update run
    without the pack; these inputs were read from pulumi/actions' action.yml at the pinned commit."""
    for path in [*WORKFLOW_FILES, *ACTION_FILES]:
        document = load(path)
        every = [s for job in (document.get("jobs") or {}).values() for s in steps(job)]
        every += (document.get("runs") or {}).get("steps") or []
        for step in every:
            if str(step.get("uses", "")).startswith("pulumi/actions@"):
                assert set(step.get("with") or {}) <= PULUMI_ACTIONS_INPUTS, f"{path.name}: {step}"


def test_every_job_that_previews_or_updates_sets_up_the_policy_packs_venv():
    setup = load(GITHUB / "actions" / "setup" / "action.yml")["runs"]["steps"]
    pack = yaml.safe_load((ROOT / "policy" / "PulumiPolicy.yaml").read_text())
    venv = pack["runtime"]["options"]["virtualenv"]
    made = [s["run"] for s in setup if "ensure_policy_venv" in s.get("run", "")]
    assert made and ". bin/common.sh" in made[0]
    assert re.search(rf'^ensure_policy_venv\(\) {{ sync_venv "\$ROOT/policy/{venv}" ',
                     (ROOT / "bin" / "common.sh").read_text(), re.M)
    for workflow, name, job in jobs():
        runs_pulumi = "--policy-pack" in json.dumps(job) or "policyPacks" in json.dumps(job) or \
            ".github/scripts/pr-preview" in runs(job)
        if runs_pulumi:
            uses = [s.get("uses") for s in steps(job)]
            assert "./.github/actions/setup" in uses, f"{workflow}:{name}"
            first = next(i for i, s in enumerate(steps(job)) if "policyPacks" in json.dumps(s)
                         or ".github/scripts/pr-preview" in s.get("run", ""))
            assert uses.index("./.github/actions/setup") < first, f"{workflow}:{name}"


def test_no_expression_is_expanded_inside_a_script():
    """Values reach `run:` scripts through env, never as `${{ }}` pasted into the shell text,
    where a branch name or title could inject commands."""
    for path in [*WORKFLOW_FILES, *ACTION_FILES]:
        document = load(path)
        every = [s for job in (document.get("jobs") or {}).values() for s in steps(job)]
        every += (document.get("runs") or {}).get("steps") or []
        for step in every:
            assert "${{" not in step.get("run", ""), f"{path.name}: {step.get('name') or step['run'][:60]}"


@pytest.mark.parametrize(("workflow", "name", "job"), jobs(), ids=ids(jobs()))
def test_every_job_has_a_timeout(workflow, name, job):
    assert "uses" in job or isinstance(job.get("timeout-minutes"), int), f"{workflow}:{name}"


def test_jobs_on_pull_requests_with_secrets_skip_forks():
    for path in WORKFLOW_FILES:
        document = load(path)
        if "pull_request" not in document["on"]:
            continue
        for name, job in document["jobs"].items():
            if "secrets." in json.dumps(job):
                not_forks = "github.event.pull_request.head.repo.full_name == github.repository"
                assert not_forks in job.get("if", ""), (
                    f"{path.name}:{name} hands secrets to a pull request's code without excluding forks")


# The GitHub environment of each job that reads a secret (docs/environments.md, "GitHub
# environments"): its secrets override the repository's, its protection rules gate the job, and
# GitHub's OIDC token names it in its subject.
ENVIRONMENTS = {
    "pull-request.yml:preview": "preview",
    "deploy.yml:staging": "staging", "deploy.yml:prod": "production",
    "review-stack.yml:up": "review", "review-stack.yml:destroy": "review",
    "review-sweep.yml:find": "review", "review-sweep.yml:destroy": "review",
    "review-sweep.yml:drift": "drift",
}


def environment(job: dict[str, Any]) -> str | None:
    env = job.get("environment")
    return env.get("name") if isinstance(env, dict) else env


def test_every_job_that_reads_a_secret_runs_in_its_environment():
    found = {f"{w}:{n}": environment(j) for w, n, j in jobs() if "secrets." in json.dumps(j)}
    assert found == ENVIRONMENTS


def test_no_job_without_secrets_is_in_an_environment():
    assert [f"{w}:{n}" for w, n, j in jobs()
            if environment(j) and f"{w}:{n}" not in ENVIRONMENTS] == []


def test_every_environment_is_in_the_docs_table():
    text = (ROOT / "docs" / "environments.md").read_text()
    rows = set(re.findall(r"^\| `([a-z][a-z0-9-]*)` \|", text, re.M))
    assert set(ENVIRONMENTS.values()) <= rows, sorted(set(ENVIRONMENTS.values()) - rows)


def test_dependabots_pull_requests_get_no_review_stack():
    """Dependabot's runs get no Actions secrets, and its pull requests change only pinned actions."""
    for name in ("up", "destroy"):
        job = load(GITHUB / "workflows" / "review-stack.yml")["jobs"][name]
        assert "github.event.pull_request.user.login != 'dependabot[bot]'" in job["if"], name


def test_expressions_name_steps_and_jobs_that_exist():
    """steps.<id> names an earlier step of the same job; needs.<job> a job this one needs."""
    for path in WORKFLOW_FILES:
        document = load(path)
        for name, job in document["jobs"].items():
            needs = job.get("needs") or []
            needs = [needs] if isinstance(needs, str) else needs
            text = json.dumps(job)
            for other in re.findall(r"needs\.([A-Za-z0-9_-]+)\.", text):
                assert other in needs and other in document["jobs"], f"{path.name}:{name}: needs.{other}"
            seen: list[str] = []
            for step in steps(job):
                for used in re.findall(r"steps\.([A-Za-z0-9_-]+)\.", json.dumps(step)):
                    assert used in seen, f"{path.name}:{name}: steps.{used} before or without its step"
                if "id" in step:
                    seen.append(step["id"])
            for key in ("environment", "outputs"):  # evaluated after the steps
                for used in re.findall(r"steps\.([A-Za-z0-9_-]+)\.", json.dumps(job.get(key) or "")):
                    assert used in seen, f"{path.name}:{name}: {key} uses steps.{used}"


def test_the_scripts_the_workflows_run_exist():
    named = set()
    for path in [*WORKFLOW_FILES, *ACTION_FILES]:
        named |= set(re.findall(r"\.github/scripts/([a-z-]+)", path.read_text()))
    assert named
    for script in named:
        assert os.access(GITHUB / "scripts" / script, os.X_OK), script


def test_the_pulumi_cli_is_the_sdk_version():
    pin = re.search(r"^pulumi==(\S+)$", (ROOT / "requirements.txt").read_text(), re.M).group(1)
    assert (GITHUB / "pulumi-version").read_text().strip() == pin


def test_every_secret_and_variable_is_in_the_readme_table():
    used = set()
    for path in [*WORKFLOW_FILES, *ACTION_FILES]:
        used |= set(re.findall(r"\b(?:secrets|vars)\.([A-Z][A-Z0-9_]*)", path.read_text()))
    readme = (ROOT / "docs" / "environments.md").read_text()
    rows = set(re.findall(r"^\| `([A-Z][A-Z0-9_]*)` \|", readme, re.M))
    assert used, "no secrets or variables found"
    assert used <= rows, f"not in the README's table: {sorted(used - rows)}"


# -- the scripts, against fake pulumi and gh -------------------------------------------------------
FAKE_PULUMI = r'''
import json, os, sys
from pathlib import Path
import yaml

args = [a for a in sys.argv[1:] if a != "--non-interactive"]
if "--color" in args:
    i = args.index("--color"); del args[i:i + 2]
entry = {"argv": args}
if args[:2] == ["config", "set"]:
    value = sys.stdin.read()
    entry["stdin"] = {"length": len(value), "private_key": value.startswith("-----BEGIN")}
with open(os.environ["FAKE_LOG"], "a") as log:
    log.write(json.dumps({"cmd": "pulumi", **entry}) + "\n")

def option(name):
    return args[args.index(name) + 1] if name in args else None

if args[:2] == ["stack", "ls"]:
    if os.environ.get("FAKE_LS_RC"):
        print("error: could not read the backend", file=sys.stderr)
        sys.exit(int(os.environ["FAKE_LS_RC"]))
    print(os.environ.get("FAKE_STACKS", "[]"))
elif args[:2] == ["stack", "init"]:
    Path(f"Pulumi.{args[2]}.yaml").write_text(
        f"secretsprovider: {option('--secrets-provider')}\nencryptedkey: a2V5\n"
        if option("--secrets-provider") else "encryptionsalt: v1:from-init\n")
elif args[:2] == ["stack", "export"]:
    print(os.environ.get("FAKE_EXPORT") or json.dumps({"version": 3, "deployment": {
        "secrets_providers": {"type": "passphrase", "state": {"salt": "v1:from-state"}}}}))
elif args[:2] == ["config", "set"]:
    path = Path(f"Pulumi.{option('--stack')}.yaml")
    document = yaml.safe_load(path.read_text()) or {}
    section, key = option("--path").split(".", 1)
    config = document.setdefault("config", {})
    config.setdefault(f"flask-stack:{section}", {})[key] = {"secure": "v1:fake"}
    path.write_text(yaml.safe_dump(document))
elif args[:1] == ["preview"]:
    stack = option("--stack")
    print(os.environ.get(f"FAKE_PREVIEW_{stack}", "Previewing update\n\nResources:\n    ~ 1 to update\n"))
    sys.exit(int(os.environ.get(f"FAKE_PREVIEW_RC_{stack}", "0")))
elif args[:1] == ["destroy"]:
    sys.exit(int(os.environ.get("FAKE_DESTROY_RC", "0")))
'''

FAKE_GH = r'''
import json, os, sys
args = sys.argv[1:]
entry = {"cmd": "gh", "argv": args}
if "--input" in args:
    entry["body"] = json.load(open(args[args.index("--input") + 1]))["body"]
with open(os.environ["FAKE_LOG"], "a") as log:
    log.write(json.dumps(entry) + "\n")
if args[:2] == ["api", "--paginate"]:
    print(os.environ.get("FAKE_COMMENTS", "[]"))
elif args[:2] == ["pr", "list"]:
    print(os.environ.get("FAKE_OPEN_PRS", "[]"))
    sys.exit(int(os.environ.get("FAKE_GH_RC", "0")))
'''

COPIED = (".github", "stack", "workflow", "templates", "app", "examples", "Pulumi.yaml", "Pulumi.dev.yaml")


class Project:
    """A copy of the project with fake `pulumi` and `gh` first on PATH."""

    def __init__(self, root: Path):
        self.root = root
        self.log = root.parent / "calls.jsonl"
        self.outputs = root.parent / "github-output"
        bin_dir = root.parent / "fake-bin"
        bin_dir.mkdir()
        for name, body in (("pulumi", FAKE_PULUMI), ("gh", FAKE_GH)):
            (bin_dir / name).write_text(f"#!{sys.executable}\n{body}")
            (bin_dir / name).chmod(0o755)
        self.env = {
            "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}", "HOME": str(root.parent),
            "FAKE_LOG": str(self.log), "GITHUB_OUTPUT": str(self.outputs),
            "GITHUB_REPOSITORY": "octo/flask", "RUNNER_CIDR": RUNNER, "LANG": "C.UTF-8",
        }

    def run(self, script: str, *args: str, **env: str) -> subprocess.CompletedProcess:
        return subprocess.run([str(self.root / ".github/scripts" / script), *args], cwd=self.root,
                              env={**self.env, **env}, capture_output=True, text=True, timeout=300)

    def calls(self, cmd: str | None = None) -> list[dict[str, Any]]:
        if not self.log.exists():
            return []
        entries = [json.loads(line) for line in self.log.read_text().splitlines()]
        return [e for e in entries if cmd is None or e["cmd"] == cmd]

    def argvs(self, cmd: str) -> list[list[str]]:
        return [e["argv"] for e in self.calls(cmd)]

    def output(self) -> dict[str, str]:
        if not self.outputs.exists():
            return {}
        return dict(line.split("=", 1) for line in self.outputs.read_text().splitlines())

    def stack_file(self, stack: str) -> dict[str, Any]:
        return yaml.safe_load((self.root / f"Pulumi.{stack}.yaml").read_text())


def without_policy_pack(project: Project) -> list[list[str]]:
    """Each recorded `pulumi preview` or `pulumi up` that does not run the policy pack."""
    return [argv for argv in project.argvs("pulumi") if argv[:1] in (["preview"], ["up"])
            and not any(argv[i:i + 2] == ["--policy-pack", "policy"] for i in range(len(argv)))]


@pytest.fixture
def project(tmp_path):
    root = copy_project(tmp_path / "project", COPIED)
    (root / ".venv").symlink_to(Path(sys.executable).parent.parent)
    project = Project(root)
    yield project
    # whatever a test ran, no preview or update left the policy pack out (docs/policy.md)
    assert without_policy_pack(project) == []


def full_stack_file(example: str) -> str:
    """An example with the SSH values a team would have set."""
    document = yaml.safe_load((ROOT / f"examples/{example}.yaml").read_text())
    document = {"encryptionsalt": "v1:team-salt", **document}
    document["config"]["flask-stack:ssh"] = {
        "publicKey": PUBLIC_KEY, "privateKey": {"secure": "v1:team"}, "adminCidrs": ["203.0.113.7/32"]}
    return yaml.safe_dump(document)


# pr-comment
def test_pr_comment_posts_a_new_comment(project, tmp_path):
    (tmp_path / "c.json").write_text(json.dumps({"body": "<!-- flask-stack-review -->\nhello"}))
    others = [{"id": 5, "user": {"login": "alice"}, "body": "quoting <!-- flask-stack-review -->"}]
    result = project.run("pr-comment", "flask-stack-review", str(tmp_path / "c.json"), "12",
                         FAKE_COMMENTS=json.dumps(others))
    assert result.returncode == 0, result.stderr
    assert project.argvs("gh")[0][:2] == ["api", "--paginate"]
    post = project.calls("gh")[1]
    assert post["argv"][:4] == ["api", "--method", "POST", "repos/octo/flask/issues/12/comments"]
    assert post["body"].endswith("hello")


def test_pr_comment_edits_the_bots_comment(project, tmp_path):
    (tmp_path / "c.json").write_text(json.dumps({"body": "<!-- flask-stack-preview -->\nnew"}))
    pages = (json.dumps([{"id": 1, "user": {"login": "github-actions[bot]"}, "body": "other"}])
             + json.dumps([{"id": 99, "user": {"login": "github-actions[bot]"},
                            "body": "<!-- flask-stack-preview -->\nold"}]))
    result = project.run("pr-comment", "flask-stack-preview", str(tmp_path / "c.json"),
                         PR_NUMBER="12", FAKE_COMMENTS=pages)
    assert result.returncode == 0, result.stderr
    assert project.argvs("gh")[1][:4] == ["api", "--method", "PATCH", "repos/octo/flask/issues/comments/99"]
    assert len(project.calls("gh")) == 2


# pulumi-login
def test_pulumi_login_lists_everything_missing_at_once(project):
    result = project.run("pulumi-login")
    assert result.returncode == 1
    assert "PULUMI_BACKEND_URL" in result.stdout and "PULUMI_ACCESS_TOKEN" in result.stdout
    assert project.calls("pulumi") == []
    result = project.run("pulumi-login", PULUMI_BACKEND_URL="s3://state?region=eu-west-1")
    errors = [line for line in result.stdout.splitlines() if line.startswith("::error")]
    assert len(errors) == 2, result.stdout
    assert "PULUMI_CONFIG_PASSPHRASE" in errors[0] and "AWS_ACCESS_KEY_ID" in errors[1]


def test_pulumi_login_logs_in_to_the_backend(project):
    result = project.run("pulumi-login", PULUMI_BACKEND_URL="s3://state?region=eu-west-1",
                         PULUMI_CONFIG_PASSPHRASE="pw", AWS_ACCESS_KEY_ID="AKIA")
    assert result.returncode == 0, result.stdout + result.stderr
    assert project.argvs("pulumi") == [["login", "s3://state?region=eu-west-1"]]


def test_pulumi_login_with_kms_needs_no_passphrase(project):
    result = project.run("pulumi-login", PULUMI_BACKEND_URL="s3://state", AWS_ACCESS_KEY_ID="AKIA",
                         PULUMI_SECRETS_PROVIDER="awskms://alias/fs?region=eu-west-1")
    assert result.returncode == 0, result.stdout + result.stderr


# review-stack
REVIEW_ENV = {"SSH_PUBLIC_KEY": PUBLIC_KEY, "SSH_PRIVATE_KEY": PRIVATE_KEY}


def test_review_stack_prepare_creates_a_new_stack(project):
    result = project.run("review-stack", "prepare", "pr-12", **REVIEW_ENV)
    assert result.returncode == 0, result.stdout + result.stderr
    argvs = project.argvs("pulumi")
    assert ["stack", "init", "pr-12"] in argvs
    document = project.stack_file("pr-12")
    assert document["encryptionsalt"] == "v1:from-init"
    ssh = document["config"]["flask-stack:ssh"]
    assert (ssh["publicKey"], ssh["adminCidrs"]) == (PUBLIC_KEY, [RUNNER])
    assert ssh["privateKey"] == {"secure": "v1:fake"}
    assert document["config"]["flask-stack:network"]["vpcCidr"] == "10.128.12.0/24"
    key_set = [e for e in project.calls("pulumi") if e["argv"][:2] == ["config", "set"]]
    assert key_set[0]["stdin"]["private_key"], "the private key goes in on stdin"
    assert all("PRIVATE KEY" not in " ".join(e["argv"]) for e in project.calls())


def test_review_stack_prepare_uses_the_secrets_provider_variable(project):
    result = project.run("review-stack", "prepare", "pr-12", **REVIEW_ENV,
                         PULUMI_SECRETS_PROVIDER="awskms://alias/fs?region=eu-west-1")
    assert result.returncode == 0, result.stdout + result.stderr
    init = ["stack", "init", "pr-12", "--secrets-provider", "awskms://alias/fs?region=eu-west-1"]
    assert init in project.argvs("pulumi")
    assert project.stack_file("pr-12")["secretsprovider"] == "awskms://alias/fs?region=eu-west-1"


def test_review_stack_prepare_rebuilds_an_existing_stacks_file_from_its_state(project):
    result = project.run("review-stack", "prepare", "pr-12", **REVIEW_ENV,
                         FAKE_STACKS=json.dumps([{"name": "pr-12", "lastUpdate": "2026-11-20T10:00:00Z"}]))
    assert result.returncode == 0, result.stdout + result.stderr
    argvs = project.argvs("pulumi")
    assert not any(a[:2] == ["stack", "init"] for a in argvs)
    assert ["stack", "export", "--stack", "pr-12"] in argvs
    assert project.stack_file("pr-12")["encryptionsalt"] == "v1:from-state"


def test_a_heroku_review_stack_needs_no_deploy_key_and_gets_its_own_app(project):
    template = project.root / "examples" / "review.yaml"
    template.write_text("config:\n  flask-stack:platform: heroku\n"
                        "  flask-stack:heroku:\n    appName: acme-rocket-staging\n")
    result = project.run("review-stack", "prepare", "pr-12")
    assert result.returncode == 0, result.stdout + result.stderr
    config = project.stack_file("pr-12")["config"]
    assert config["flask-stack:heroku"] == {"appName": "acme-rocket-staging-pr-12"}
    assert "flask-stack:ssh" not in config and "flask-stack:network" not in config
    assert not any(a[:2] == ["config", "set"] for a in project.argvs("pulumi"))


def test_review_stack_prepare_needs_the_deploy_key(project):
    result = project.run("review-stack", "prepare", "pr-12", SSH_PUBLIC_KEY=PUBLIC_KEY)
    assert result.returncode == 1 and "SSH_PRIVATE_KEY" in result.stdout
    assert project.calls("pulumi") == []


def test_review_stack_destroy_removes_the_stack(project):
    result = project.run("review-stack", "destroy", "pr-12", FAKE_STACKS=json.dumps([{"name": "pr-12"}]))
    assert result.returncode == 0, result.stdout + result.stderr
    destroy = next(a for a in project.argvs("pulumi") if a[0] == "destroy")
    assert destroy[:3] == ["destroy", "--stack", "pr-12"]
    assert {"--yes", "--remove", "--skip-preview"} <= set(destroy)
    assert project.stack_file("pr-12")["encryptionsalt"] == "v1:from-state"  # to decrypt the state


def test_review_stack_destroy_of_a_missing_stack_does_nothing(project):
    result = project.run("review-stack", "destroy", "pr-12")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "::notice title=No review stack::" in result.stdout
    assert not any(a[0] == "destroy" for a in project.argvs("pulumi"))


def test_review_stack_destroy_stops_when_the_backend_cannot_be_read(project):
    result = project.run("review-stack", "destroy", "pr-12", FAKE_LS_RC="255")
    assert result.returncode == 255, result.stdout + result.stderr
    assert "nothing to destroy" not in result.stdout


def test_review_stack_destroy_fails_with_pulumi(project):
    result = project.run("review-stack", "destroy", "pr-12", FAKE_STACKS=json.dumps([{"name": "pr-12"}]),
                         FAKE_DESTROY_RC="1")
    assert result.returncode == 1


@pytest.mark.parametrize("stack", ["staging", "pr-0", "pr-1;rm -rf /"])
def test_review_stack_touches_only_review_stacks(project, stack):
    result = project.run("review-stack", "destroy", stack)
    assert result.returncode == 1 and "not a review stack" in result.stdout
    assert project.calls() == []


# deploy-prepare
def test_deploy_prepare_skips_a_stack_the_repository_does_not_have(project):
    result = project.run("deploy-prepare", "staging")
    assert result.returncode == 0, result.stdout + result.stderr
    assert project.output() == {"present": "false"}
    assert "::notice title=No Pulumi.staging.yaml::" in result.stdout
    assert project.calls() == []


LOGIN_ENV = {"PULUMI_BACKEND_URL": "file:///tmp/state", "PULUMI_CONFIG_PASSPHRASE": "pw"}


def test_deploy_prepare_lets_the_runner_in_and_logs_in(project):
    (project.root / "Pulumi.staging.yaml").write_text(full_stack_file("staging"))
    result = project.run("deploy-prepare", "staging", **LOGIN_ENV)
    assert result.returncode == 0, result.stdout + result.stderr
    assert project.output() == {"present": "true"}
    assert project.argvs("pulumi") == [["login", "file:///tmp/state"]]
    document = project.stack_file("staging")
    assert document["config"]["flask-stack:ssh"]["adminCidrs"] == ["203.0.113.7/32", RUNNER]
    assert document["encryptionsalt"] == "v1:team-salt"


def test_deploy_prepare_can_leave_the_file_as_committed(project):
    text = full_stack_file("prod")
    (project.root / "Pulumi.prod.yaml").write_text(text)
    result = project.run("deploy-prepare", "prod", SSH_FROM_RUNNER="false", **LOGIN_ENV)
    assert result.returncode == 0, result.stdout + result.stderr
    assert (project.root / "Pulumi.prod.yaml").read_text() == text


def test_deploy_prepare_stops_on_an_incomplete_stack_file(project):
    shutil.copy(ROOT / "examples/staging.yaml", project.root / "Pulumi.staging.yaml")
    result = project.run("deploy-prepare", "staging", **LOGIN_ENV)
    assert result.returncode != 0
    assert "ssh.privateKey" in result.stderr and "present" not in project.output()


# bin/deploy, against the same fake pulumi
def fake_venv(path: Path, lock: Path) -> None:
    """A virtualenv bin/deploy takes as up to date (its stamp is that of requirements-build.lock
    and `lock`, so nothing is installed), whose python is this one."""
    (path / "bin").mkdir(parents=True)
    python = path / "bin" / "python"
    python.write_text(f'#!/bin/sh\nexec "{sys.executable}" "$@"\n')
    python.chmod(0o755)
    locks = (ROOT / "requirements-build.lock").read_bytes() + lock.read_bytes()
    (path / ".lock.sha256").write_text(hashlib.sha256(locks).hexdigest() + "\n")


@pytest.fixture
def deployable(project) -> Project:
    root = project.root
    shutil.copytree(ROOT / "bin", root / "bin")
    shutil.copytree(ROOT / "policy", root / "policy", ignore=shutil.ignore_patterns("venv", "__pycache__"))
    for name in ("requirements.txt", "requirements.lock", "requirements-build.lock"):
        shutil.copy2(ROOT / name, root / name)
    (root / ".venv").unlink()
    fake_venv(root / ".venv", root / "requirements.lock")
    fake_venv(root / "policy" / "venv", root / "policy" / "requirements.lock")
    (root / "Pulumi.staging.yaml").write_text(full_stack_file("staging"))
    return project


def deploy(project: Project, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(project.root / "bin" / "deploy"), *args], cwd=project.root,
                          env={**project.env, "DIGITALOCEAN_TOKEN": "dop_v1_fake"}, capture_output=True,
                          text=True, timeout=300)


@pytest.mark.parametrize(("action", "command"), [
    ("preview", ["preview", "--diff", "--stack", "staging", "--policy-pack", "policy"]),
    ("up", ["up", "--stack", "staging", "--policy-pack", "policy"]),
])
def test_bin_deploy_previews_and_updates_with_the_policy_pack(deployable, action, command):
    result = deploy(deployable, "staging", action)
    assert result.returncode == 0, result.stdout + result.stderr
    assert deployable.argvs("pulumi")[-1] == command
    assert "installing" not in result.stderr  # both virtualenvs were taken as they are


def test_bin_deploy_destroys_without_it(deployable):
    result = deploy(deployable, "staging", "destroy")
    assert result.returncode == 0, result.stdout + result.stderr
    assert deployable.argvs("pulumi")[-1] == ["destroy", "--stack", "staging"]


# review-sweep
SWEEP_STACKS = json.dumps([
    {"name": "staging", "lastUpdate": "2020-01-01T00:00:00.000Z"},
    {"name": "pr-1", "lastUpdate": "2020-01-01T00:00:00.000Z"},  # open, idle for years
    {"name": "pr-2", "lastUpdate": "2999-01-01T00:00:00.000Z"},  # closed
    {"name": "pr-3", "lastUpdate": "2999-01-01T00:00:00.000Z"},  # open, fresh
])


def test_review_sweep_finds_idle_and_closed_stacks(project):
    result = project.run("review-sweep", "find", FAKE_STACKS=SWEEP_STACKS,
                         FAKE_OPEN_PRS=json.dumps([{"number": 1}, {"number": 3}]))
    assert result.returncode == 0, result.stdout + result.stderr
    assert json.loads(project.output()["stacks"]) == ["pr-1", "pr-2"]
    assert ["pr", "list", "--repo", "octo/flask", "--state", "open", "--limit", "1000", "--json",
            "number"] in project.argvs("gh")


def test_review_sweep_without_the_pull_requests_judges_by_age(project):
    result = project.run("review-sweep", "find", FAKE_STACKS=SWEEP_STACKS, FAKE_GH_RC="1")
    assert result.returncode == 0, result.stdout + result.stderr
    assert json.loads(project.output()["stacks"]) == ["pr-1"]


def test_review_sweep_check_judges_one_stack_again(project):
    prs = json.dumps([{"number": 1}, {"number": 3}])
    result = project.run("review-sweep", "check", "pr-2", FAKE_STACKS=SWEEP_STACKS, FAKE_OPEN_PRS=prs)
    assert result.returncode == 0, result.stdout + result.stderr
    assert project.output() == {"expired": "true", "reason": "pull request #2 is closed"}
    project.outputs.unlink()
    result = project.run("review-sweep", "check", "pr-3", FAKE_STACKS=SWEEP_STACKS, FAKE_OPEN_PRS=prs)
    assert result.returncode == 0, result.stdout + result.stderr
    assert project.output() == {"expired": "false"}


# pr-preview, in a git repository: main, and a pull request's merge commit on top
def git(root: Path, *args: str) -> None:
    subprocess.run(["git", "-C", str(root), "-c", "user.name=t", "-c", "user.email=t@example.com", *args],
                   check=True, capture_output=True, text=True)


@pytest.fixture
def repo(project) -> Project:
    (project.root / "Pulumi.staging.yaml").write_text(full_stack_file("staging"))
    git(project.root, "init", "-q", "-b", "main")
    (project.root / ".git/info/exclude").write_text(".venv\n")  # a symlink here: .venv/ misses it
    git(project.root, "add", "-A")
    git(project.root, "commit", "-q", "-m", "base")
    git(project.root, "checkout", "-q", "-b", "feature")
    return project


PREVIEW_ENV = {**LOGIN_ENV, "BASE_REF": "main", "PR_NUMBER": "12", "RUN_URL": "https://ci/run/1"}


def commit(project: Project, path: str, text: str) -> None:
    target = project.root / path
    target.write_text(text)
    git(project.root, "add", "-A")
    git(project.root, "commit", "-q", "-m", f"change {path}")


def posted(project: Project) -> str:
    post = [e for e in project.calls("gh") if "--method" in e["argv"]]
    assert len(post) == 1, project.calls("gh")
    return post[0]["body"]


def test_pr_preview_previews_and_diffs_an_affected_stack(repo, tmp_path):
    template = repo.root / "templates/nginx/nginx.conf.j2"
    commit(repo, "templates/nginx/nginx.conf.j2", template.read_text().replace(
        "server_tokens off;", "server_tokens off;\n    # reviewed"))
    result = repo.run("pr-preview", str(tmp_path / "results"), **PREVIEW_ENV)
    assert result.returncode == 0, result.stdout + result.stderr
    previews = [a for a in repo.argvs("pulumi") if a[0] == "preview"]
    assert previews == [["preview", "--stack", "staging", "--diff", "--policy-pack", "policy",
                         "--suppress-progress"]]
    body = posted(repo)
    assert body.startswith("<!-- flask-stack-preview -->")
    assert "| `staging` | ✅ ~ 1 to update |" in body
    assert "+    # reviewed" in body  # the stack diff of the Nginx file
    assert "`prod` is not previewed: the repository has no `Pulumi.prod.yaml`" in body
    assert "::notice title=No Pulumi.prod.yaml::" in result.stdout


# What `pulumi preview --diff` prints with an advisory violation (workflow/comments.py, policy_report)
POLICIES = (
    "Previewing update (staging):\n"
    " ~  digitalocean:index/loadBalancer:LoadBalancer: (update)\n"
    "    flask-stack-baseline@v0.1.0 [advisory]  https-when-domain  (digitalocean:index/loadBalancer"
    ":LoadBalancer: site-lb)a stack holding a certificate whose load balancer still serves plain HTTP\n"
    "Resources:\n    ~ 1 to update\n\n"
    "Policy Packs run:\n    Name                  Version\n    flask-stack-baseline  (local: policy)\n")


def test_pr_preview_puts_the_policy_packs_report_in_the_comment(repo, tmp_path):
    commit(repo, "stack/render.py", (repo.root / "stack/render.py").read_text() + "\n# touched\n")
    result = repo.run("pr-preview", str(tmp_path / "results"), **PREVIEW_ENV, FAKE_PREVIEW_staging=POLICIES)
    assert result.returncode == 0, result.stdout + result.stderr
    body = posted(repo)
    assert "| `staging` | ✅ ~ 1 to update | " in body and " | ⚠️ 1 advisory |" in body
    assert "<details open>\n<summary><code>staging</code>: policy pack, ⚠️ 1 advisory</summary>" in body
    assert "[advisory]  https-when-domain" in body


def test_pr_preview_of_a_docs_change_needs_no_login(repo, tmp_path):
    commit(repo, "README.md", "# docs only\n")
    result = repo.run("pr-preview", str(tmp_path / "results"), BASE_REF="main", PR_NUMBER="12")
    assert result.returncode == 0, result.stdout + result.stderr
    assert repo.calls("pulumi") == []
    body = posted(repo)
    assert "`staging` is not previewed: nothing this change touches reaches it" in body


def test_pr_preview_comments_then_fails_when_a_preview_fails(repo, tmp_path):
    changed = full_stack_file("staging").replace("LOG_LEVEL: debug", "LOG_LEVEL: info")
    commit(repo, "Pulumi.staging.yaml", changed)
    result = repo.run("pr-preview", str(tmp_path / "results"), **PREVIEW_ENV,
                      FAKE_PREVIEW_staging="error: could not decrypt configuration",
                      FAKE_PREVIEW_RC_staging="255")
    assert result.returncode == 1
    body = posted(repo)
    assert "| `staging` | ❌ failed (exit 255) |" in body and "could not decrypt configuration" in body
    assert '+LOG_LEVEL="info"' in body  # the diff still shows what the stack file changes


def test_pr_preview_without_a_backend_says_so_in_the_comment(repo, tmp_path):
    commit(repo, "stack/render.py", (repo.root / "stack/render.py").read_text() + "\n# touched\n")
    result = repo.run("pr-preview", str(tmp_path / "results"), BASE_REF="main", PR_NUMBER="12")
    assert result.returncode == 1
    assert "::error title=Pulumi is not set up for CI::" in result.stdout
    assert not any(a[0] == "preview" for a in repo.argvs("pulumi"))
    body = posted(repo)
    assert "**Not previewed: Pulumi is not set up for CI** (staging)" in body
