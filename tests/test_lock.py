"""The locked dependencies (docs/security.md, "Locked dependencies"): the lock files cover the pins
a person edits, with hashes; bin/common.sh refuses a lock that no longer matches its pins and
installs with `pip --require-hashes` (run for real here against wheels made in a temporary
folder, offline); bin/lock and bin/common.sh pass shellcheck."""

from __future__ import annotations

import base64
import hashlib
import os
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from tests.test_workflows import tool

ROOT = Path(__file__).resolve().parent.parent
LOCKS = {"requirements.txt": "requirements.lock", "policy/requirements.txt": "policy/requirements.lock"}
PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)(?:\[[^\]]*\])?==([^\s;\\]+)", re.M)


def key(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def pins(text: str) -> dict[str, str]:
    return {key(name): version for name, version in PIN.findall(text)}


def entries(lock: str) -> dict[str, str]:
    """Each package of a lock with its whole entry (the pin line, its hashes, its `via`)."""
    starts = [m.start() for m in PIN.finditer(lock)] + [len(lock)]
    return {key(PIN.match(lock, a)[1]): lock[a:b] for a, b in zip(starts, starts[1:], strict=False)}


@pytest.mark.parametrize(("source", "lock"), LOCKS.items())
def test_the_lock_has_every_pin_at_its_version(source, lock):
    want = pins((ROOT / source).read_text())
    have = pins((ROOT / lock).read_text())
    assert want and {name: have.get(name) for name in want} == want


@pytest.mark.parametrize("lock", [*LOCKS.values(), "requirements-build.lock"])
def test_every_entry_of_a_lock_has_a_sha256_and_the_header_says_how_to_make_it_again(lock):
    text = (ROOT / lock).read_text()
    assert text.splitlines()[1] == "#    bin/lock", text.splitlines()[:2]
    found = entries(text)
    assert found
    for name, entry in found.items():
        assert re.search(r"--hash=sha256:[0-9a-f]{64}", entry), f"{lock}: {name} has no hash"


def test_the_locks_agree_on_what_they_share():
    """The policy pack's venv runs the program's versions (bin/lock locks it with -c), and the
    build tools are the ones the program's lock has."""
    program = pins((ROOT / "requirements.lock").read_text())
    for other in ("policy/requirements.lock", "requirements-build.lock"):
        theirs = pins((ROOT / other).read_text())
        assert {name: program.get(name) for name in theirs} == theirs, other


def test_the_universal_lock_has_wheels_for_linux_and_macos():
    """bin/deploy runs on a laptop too: the lock's hashes are for every platform's files."""
    grpcio = entries((ROOT / "requirements.lock").read_text())["grpcio"]
    assert len(re.findall("--hash=sha256:", grpcio)) > 10  # one per wheel (and the sdist)


def bash(script: str, root: Path, **env: str) -> subprocess.CompletedProcess:
    """`script` after sourcing bin/common.sh with ROOT (the project) set to `root`; pip reads
    no configuration file and no index, only the folder PIP_FIND_LINKS names."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("PIP_")}
    return subprocess.run(["bash", "-c", f'. "$0"; ROOT={root}; VENV="$ROOT/.venv"; {script}',
                           str(ROOT / "bin" / "common.sh")],
                          env={**clean, "PIP_CONFIG_FILE": os.devnull, "PIP_NO_INDEX": "1",
                               "PIP_DISABLE_PIP_VERSION_CHECK": "1", **env},
                          capture_output=True, text=True, timeout=300)


def wheel(folder: Path, name: str, version: str, body: str = "", requires: str = "") -> Path:
    """A pure-Python wheel of one module, made by hand (no build tool, no network)."""
    info = f"{name}-{version}.dist-info"
    needs = f"Requires-Dist: {requires}\n" if requires else ""
    files = {f"{name}.py": f"VERSION = {version!r}\n{body}",
             f"{info}/METADATA": f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n{needs}",
             f"{info}/WHEEL": "Wheel-Version: 1.0\nGenerator: tests\nRoot-Is-Purelib: true\n"
                              "Tag: py3-none-any\n"}
    record = []
    for path, text in files.items():
        digest = base64.urlsafe_b64encode(hashlib.sha256(text.encode()).digest()).rstrip(b"=").decode()
        record.append(f"{path},sha256={digest},{len(text.encode())}")
    files[f"{info}/RECORD"] = "\n".join([*record, f"{info}/RECORD,,"]) + "\n"
    folder.mkdir(parents=True, exist_ok=True)
    out = folder / f"{name}-{version}-py3-none-any.whl"
    with zipfile.ZipFile(out, "w") as archive:
        for path, text in files.items():
            archive.writestr(path, text)
    return out


def entry(path: Path, version: str, sha256: str | None = None) -> str:
    name = path.name.split("-")[0]
    digest = sha256 if sha256 is not None else hashlib.sha256(path.read_bytes()).hexdigest()
    hashes = f" \\\n    --hash=sha256:{digest}" if digest else ""
    return f"{name}=={version}{hashes}\n    # via -r requirements.txt\n"


@pytest.fixture
def project(tmp_path) -> Path:
    """A project with one pin (tiny==1.0), its lock, and a build lock (tinybuild), and the
    wheels of both in tmp/wheels."""
    root = tmp_path / "project"
    root.mkdir()
    tiny = wheel(tmp_path / "wheels", "tiny", "1.0")
    build = wheel(tmp_path / "wheels", "tinybuild", "2.0")
    (root / "requirements.txt").write_text("# a comment\ntiny==1.0\n")
    (root / "requirements-build.lock").write_text(entry(build, "2.0"))
    (root / "requirements.lock").write_text(
        "# This file was autogenerated by uv via the following command:\n#    bin/lock\n"
        + entry(tiny, "1.0") + entry(build, "2.0").replace("-r requirements.txt", "tiny"))
    return root


def venv_python(root: Path) -> Path:
    return root / ".venv" / "bin" / "python"


def test_ensure_venv_installs_the_lock_hash_checked_and_only_once(project):
    links = str(project.parent / "wheels")
    first = bash("ensure_venv", project, PIP_FIND_LINKS=links)
    assert first.returncode == 0, first.stderr
    assert "installing requirements.lock" in first.stderr
    got = subprocess.run([venv_python(project), "-c", "import tiny, tinybuild; print(tiny.VERSION)"],
                         capture_output=True, text=True, check=True)
    assert got.stdout == "1.0\n"
    again = bash("ensure_venv", project, PIP_FIND_LINKS=links)
    assert again.returncode == 0 and "installing" not in again.stderr, again.stderr


def test_a_wheel_that_is_not_the_one_locked_is_refused(project):
    """The index (here a folder) serves a tiny-1.0 whose bytes differ from the locked one's."""
    links = project.parent / "wheels"
    wheel(links, "tiny", "1.0", body="import os  # not what was locked\n")
    result = bash("ensure_venv", project, PIP_FIND_LINKS=str(links))
    assert result.returncode == 1
    assert "THESE PACKAGES DO NOT MATCH THE HASHES" in result.stderr, result.stderr
    assert "error: pip install --require-hashes -r requirements.lock failed" in result.stderr
    assert not (project / ".venv" / ".lock.sha256").exists()


def test_a_lock_without_hashes_is_refused(project):
    """--require-hashes: pip does not install a lock that gives no hash at all (without it, such
    a file would install unchecked: pip checks hashes only once one is given)."""
    lock = project / "requirements.lock"
    lock.write_text(re.sub(r" \\\n    --hash=sha256:[0-9a-f]+", "", lock.read_text()))
    assert "--hash" not in lock.read_text() and "tiny==1.0\n    # via" in lock.read_text()
    result = bash("ensure_venv", project, PIP_FIND_LINKS=str(project.parent / "wheels"))
    assert result.returncode == 1
    assert "Hashes are required in --require-hashes mode" in result.stderr, result.stderr


@pytest.mark.parametrize(("change", "said"), [
    (lambda text: text.replace("tiny==1.0", "tiny==1.1"), "tiny==1.1 (the lock has 1.0)"),
    (lambda text: text + "other==3\n", "other==3 (the lock has none)"),
    (lambda text: text.replace("tiny==1.0", ""), "tiny==1.0 is in the lock, no longer in requirements.txt"),
], ids=["moved", "added", "removed"])
def test_a_lock_that_does_not_match_the_pins_is_refused_before_anything_is_installed(project, change, said):
    requirements = project / "requirements.txt"
    requirements.write_text(change(requirements.read_text()))
    result = bash("ensure_venv", project, PIP_FIND_LINKS=str(project.parent / "wheels"))
    assert result.returncode == 1
    assert "error: requirements.lock does not match requirements.txt:" in result.stderr
    assert said in result.stderr and "run bin/lock to make the lock again" in result.stderr, result.stderr
    assert not (project / ".venv").exists()


def test_a_comment_in_the_pins_needs_no_new_lock(project):
    requirements = project / "requirements.txt"
    requirements.write_text(requirements.read_text() + "# why tiny is pinned\n")
    assert bash("check_lock \"$ROOT/requirements.txt\" \"$ROOT/requirements.lock\"", project).returncode == 0


def test_build_tools_at_another_version_than_the_lock_are_refused(project):
    build = project / "requirements-build.lock"
    build.write_text(build.read_text().replace("tinybuild==2.0", "tinybuild==2.1"))
    result = bash("ensure_venv", project)
    assert result.returncode == 1
    assert "error: requirements.lock does not match requirements-build.lock:" in result.stderr
    assert "tinybuild==2.1 (the lock has 2.0)" in result.stderr, result.stderr


def test_a_missing_lock_says_to_run_bin_lock(project):
    (project / "requirements.lock").unlink()
    result = bash("ensure_venv", project)
    assert result.returncode == 1
    assert "error: requirements.lock is missing: run bin/lock" in result.stderr, result.stderr


def test_this_projects_locks_match_their_pins():
    result = bash('for pins in requirements.txt policy/requirements.txt; do '
                  'check_lock "$ROOT/$pins" "$ROOT/${pins%.txt}.lock"; '
                  'check_lock "$ROOT/requirements-build.lock" "$ROOT/${pins%.txt}.lock" versions; done', ROOT)
    assert result.returncode == 0, result.stderr


def test_bin_lock_compiles_each_lock_with_hashes_for_every_platform():
    script = (ROOT / "bin" / "lock").read_text()
    compile_line = re.search(r'"\$VENV/bin/uv" pip compile [^\n]*\\\n[^\n]*', script)[0]
    for option in ("--universal", "--generate-hashes", "--python-version 3.11",
                   '--custom-compile-command "bin/lock"'):
        assert option in compile_line, option
    for source, lock in LOCKS.items():
        assert re.search(rf"^compile {re.escape(source)} {re.escape(lock)}", script, re.M), lock


@pytest.mark.parametrize("path", ["bin/lock", "bin/common.sh", "bin/deploy", "bin/test", "bin/stack"])
def test_shellcheck_passes_on_bin(path):
    shellcheck = tool("shellcheck", "bin/test installs it (requirements.lock)")
    result = subprocess.run([shellcheck, "-x", "--source-path=SCRIPTDIR", "--shell=bash", path], cwd=ROOT,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.fixture(scope="module")
def setuptools_wheel(tmp_path_factory) -> Path:
    """The setuptools wheel the build lock names (pip's cache, or the index, once)."""
    version = pins((ROOT / "requirements-build.lock").read_text())["setuptools"]
    folder = tmp_path_factory.mktemp("setuptools")
    got = subprocess.run([sys.executable, "-m", "pip", "download", "--quiet", "--no-deps",
                          "--only-binary=:all:", "--dest", str(folder), f"setuptools=={version}"],
                         capture_output=True, text=True, check=False, timeout=300)
    assert got.returncode == 0, got.stderr
    [found] = folder.glob("*.whl")
    return found


def test_bin_lock_makes_the_three_locks_that_sync_venv_accepts(tmp_path, setuptools_wheel):
    """bin/lock in a project of one pin, against a folder of wheels (uv's --no-index
    --find-links, given as bin/lock's extra arguments), then again after the pin moves."""
    links = tmp_path / "wheels"
    for version in ("1.0", "1.1"):
        wheel(links, "tiny", version, requires="setuptools")  # as pulumi-policy needs it
    shutil.copy(setuptools_wheel, links)
    root = tmp_path / "project"
    (root / "policy").mkdir(parents=True)
    shutil.copytree(ROOT / "bin", root / "bin")
    (root / ".venv").symlink_to(ROOT / ".venv")  # its uv; bin/lock installs nothing when it has one
    (root / "requirements.txt").write_text("tiny==1.0\n")
    (root / "policy" / "requirements.txt").write_text("tiny==1.0\n")

    def lock() -> subprocess.CompletedProcess:
        return subprocess.run([str(root / "bin" / "lock"), "--no-index", "--find-links", str(links)],
                              cwd=root, capture_output=True, text=True, timeout=300, check=False)

    made = lock()
    assert made.returncode == 0, made.stderr
    assert made.stderr.splitlines()[-3:] == [f"wrote {name}" for name in (
        "requirements.lock", "policy/requirements.lock", "requirements-build.lock")]
    program = (root / "requirements.lock").read_text()
    assert program.splitlines()[1] == "#    bin/lock"
    digest = hashlib.sha256((links / "tiny-1.0-py3-none-any.whl").read_bytes()).hexdigest()
    assert f"tiny==1.0 \\\n    --hash=sha256:{digest}\n" in program
    build = pins((root / "requirements-build.lock").read_text())
    assert build == {"setuptools": setuptools_wheel.name.split("-")[1]} == {
        "setuptools": pins(program)["setuptools"]}
    (root / "requirements.txt").write_text("tiny==1.1\n")
    refused = bash('check_lock "$ROOT/requirements.txt" "$ROOT/requirements.lock"', root)
    assert refused.returncode == 1 and "tiny==1.1 (the lock has 1.0)" in refused.stderr
    alone = lock()  # the policy pack's lock takes the program's versions (-c requirements.lock)
    assert alone.returncode == 1
    assert ("error: uv pip compile policy/requirements.txt failed (see above); policy/requirements.txt "
            "pins what requirements.txt pins at the same version") in alone.stderr, alone.stderr
    (root / "policy" / "requirements.txt").write_text("tiny==1.1\n")
    again = lock()
    assert again.returncode == 0, again.stderr
    assert pins((root / "requirements.lock").read_text())["tiny"] == "1.1"
    assert pins((root / "policy" / "requirements.lock").read_text())["tiny"] == "1.1"
