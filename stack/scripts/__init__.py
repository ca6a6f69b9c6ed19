"""The shell scripts the remote steps run: templates/scripts/ filled in by stack.scripts.steps,
every value entering through the one quoting point, stack.scripts.shell."""

from stack.scripts.shell import Shell, cmd, heredoc
from stack.scripts.steps import (
    CommandTooLong,
    ConfigFile,
    Script,
    as_root,
    bootstrap,
    certificate,
    config_files,
    configure,
    database,
    deps_key,
    env,
    gate,
    health_functions,
    nginx_workers,
    packages,
    placeholder_certificate,
    prelude,
    release,
    static_files,
    tls_names,
)

__all__ = [
    "CommandTooLong", "ConfigFile", "Script", "Shell", "as_root", "bootstrap", "certificate", "cmd",
    "config_files", "configure", "database", "deps_key", "env", "gate", "health_functions", "heredoc",
    "nginx_workers", "packages", "placeholder_certificate", "prelude", "release", "static_files",
    "tls_names",
]
