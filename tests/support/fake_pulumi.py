"""A stand-in for the Pulumi CLI where the verbs call it (no CLI can be installed here): an
executable `pulumi` that answers `config --json --show-secrets` and `stack output --json
--show-secrets` for one stack from JSON files a test writes, and refuses anything else."""

from __future__ import annotations

import json
import sys
from pathlib import Path

SCRIPT = """#!{python}
import json, sys
from pathlib import Path
state = Path({state!r})
args = [a for a in sys.argv[1:] if a != "--non-interactive"]
if "--cwd" in args:
    i = args.index("--cwd"); del args[i:i + 2]
stack = args[args.index("--stack") + 1] if "--stack" in args else None
words = [a for a in args if not a.startswith("--") and a != stack]
if stack != {stack!r}:
    sys.exit("error: no stack named " + repr(stack))
if words == ["config"] and "--json" in args and "--show-secrets" in args:
    print((state / "config.json").read_text())
elif words == ["stack", "output"] and "--json" in args:
    print((state / "outputs.json").read_text() if (state / "outputs.json").exists() else "{{}}")
else:
    sys.exit("fake pulumi: not answered: " + " ".join(sys.argv[1:]))
"""


class FakePulumi:
    def __init__(self, directory: Path, stack: str):
        self.bin = directory / "bin"
        self.state = directory / "state"
        self.bin.mkdir(parents=True, exist_ok=True)
        self.state.mkdir(parents=True, exist_ok=True)
        exe = self.bin / "pulumi"
        exe.write_text(SCRIPT.format(python=sys.executable, state=str(self.state), stack=stack))
        exe.chmod(0o755)

    def set_config(self, config: dict, secret_keys: tuple[str, ...] = ()) -> None:
        """`config` as the program's keys (no prefix); written as `pulumi config --json` does."""
        entries = {}
        for key, value in config.items():
            text = value if isinstance(value, str) else json.dumps(value)
            entry = {"value": text, "secret": key in secret_keys}
            if not isinstance(value, str):
                entry["objectValue"] = value
            entries[f"flask-stack:{key}"] = entry
        (self.state / "config.json").write_text(json.dumps(entries))

    def set_outputs(self, outputs: dict) -> None:
        (self.state / "outputs.json").write_text(json.dumps(outputs))
