"""Exit codes and the usage error of every `leap-orchestration` command (one place, so the command modules don't
import each other)."""

import click

EXIT_VALID, EXIT_INVALID, EXIT_USAGE = 0, 1, 2


class UsageError(click.ClickException):
    exit_code = EXIT_USAGE
