"""What the GitHub workflows decide, as plain functions with tests: `python -m workflow <command>`.
The workflows' shell scripts (.github/scripts/) only glue these to the Pulumi and GitHub CLIs.
Nothing here is deployed: a change to this package previews no stack (`affected`).

  affected.py    which stacks a change can alter
  review.py      review stacks pr-<n>: names, VPC ranges, secrets settings, their stack file
  runner.py      the runner's own address in a stack file's ssh.adminCidrs
  sweep.py       which review stacks the scheduled sweep destroys
  stackfile.py   stack-file keys from settings paths (ssh.adminCidrs); reading files; writing a
                 stack file only after the settings loader accepts it
  comments.py    the pull-request comments (preview, review stack), cut to GitHub's limit
  github.py      the GitHub API's JSON: paginated pages, the bot's comment by its marker
  __main__.py    the command line the scripts call (`python -m workflow --help`)
"""

from __future__ import annotations


class WorkflowError(Exception):
    """A problem the workflow run reports and stops on; the message says what to fix."""
