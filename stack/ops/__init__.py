"""The day-2 verbs: `python -m stack status|logs|run|rollback|drift <stack>`.

They reach the hosts a deploy reached, with the same SSH settings, and read them with the same
host-file table and script templates the deploy uses (stack.hostfiles, templates/scripts/ops/).
The map:
- `target`: which stack, its settings and hosts, and its SSH key: from the Pulumi CLI where it is
  there (decrypted config, stack outputs), else from the stack file and the config's addresses.
- `remote`: OpenSSH to one host, run a script of templates/scripts/ as root, or a terminal; a
  host that cannot be reached raises `Unreachable` naming it, never a traceback.
- one module per verb: `status`, `logs`, `console` (run), `rollback`, `drift`.
- `cli`: the argparse side of the verbs, added to `python -m stack`.

Only `rollback` and `drift --fix` change a host; the others read.
"""
