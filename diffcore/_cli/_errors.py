"""Errors that the command line reports in one line."""

from __future__ import annotations

import click


class InputError(click.ClickException):
    """A file or value the user gave cannot be used: exit code 2 (bad usage)."""

    exit_code = 2

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.ctx = click.get_current_context(silent=True)


def one_line_error(error: click.ClickException) -> str:
    """``diffcore <command>: error: <message>`` with the message on one line."""
    context = getattr(error, "ctx", None)
    where = context.command_path if context is not None else "diffcore"
    message = " ".join(error.format_message().split())
    if isinstance(error, click.UsageError) and context is not None:
        message += f" (see '{where} --help')"
    return f"{where}: error: {message}"
