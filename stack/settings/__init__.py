"""The stack's settings: read once from the stack config, validated completely, frozen.

`load(raw, stack=..., project_dir=...)` takes the project's config keys (without the
``flask-stack:`` prefix) and returns `Settings` or raises `SettingsError` listing every problem,
each naming its key path. Nothing else in the program reads config; defaults live here only.

The map of this package:
- `schema`: the frozen dataclasses (`Settings`, `Hosts`, `App`, ...) and shared constants.
- `reader`: `Reader`, typed getters over one section; `Errors`, the one channel every problem
  goes through, asked by key path whether something was reported; `Secret`, `SettingsError`.
- `platforms`: the table of keys that depend on the platform (who takes them, their defaults
  and formats there, what is said when one is set elsewhere).
- `checks`: checks of single values several sections share (addresses, keys, entry, listen).
- one module per section: `hosts` (with `network`), `database`, `app`, `web` (domain, tls,
  rateLimit, deploy), `ssh`, `lifecycle` (ephemeral, expiresAt, the smallest sizes).
- `loading`: `load`, which reads the top-level keys and every section in order.
- `sources`: where the values come from. Under `pulumi up`/`preview`: `from_pulumi()` (the CLI
  hands the decrypted config over); offline (`python -m stack render`): `from_stack_file()`
  reads ``Pulumi.<stack>.yaml``, whose ``secure:`` values become unknown `Secret`s.
"""

from stack.settings.loading import load
from stack.settings.platforms import RULES
from stack.settings.reader import Reader, Secret, SettingsError, describe
from stack.settings.schema import (
    ARCHES,
    CLOUDS,
    FRONTS,
    HEROKU,
    HOSTED,
    IMAGE_PYTHON,
    IMAGE_USERS,
    IMAGES,
    LETS_ENCRYPT,
    PLATFORMS,
    PROD_STACKS,
    PROJECT,
    RESERVED_DB_USERS,
    WORKER_CLASSES,
    Alerts,
    App,
    Bastion,
    Database,
    Deploy,
    Domain,
    Heroku,
    Hosts,
    Logs,
    Network,
    Process,
    RateLimit,
    Schedule,
    Settings,
    Ssh,
    Tls,
)
from stack.settings.sources import from_pulumi, from_stack_file, project_dir, read_stack_file

__all__ = [
    "ARCHES", "CLOUDS", "FRONTS", "HEROKU", "HOSTED", "IMAGES", "IMAGE_PYTHON", "IMAGE_USERS", "LETS_ENCRYPT",
    "PLATFORMS", "PROD_STACKS", "PROJECT",
    "RESERVED_DB_USERS", "RULES", "WORKER_CLASSES", "Alerts", "App", "Bastion", "Database",
    "Deploy", "Domain", "Heroku", "Hosts", "Logs", "Network", "Process", "RateLimit", "Reader", "Schedule",
    "Secret", "Settings",
    "SettingsError", "Ssh", "Tls", "describe", "from_pulumi", "from_stack_file", "load",
    "project_dir", "read_stack_file",
]
