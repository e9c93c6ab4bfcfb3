"""The ``diffcore`` command: a demo on a real photograph, schedule tables, checks.

This package talks to people, so it prints; the library itself never does.
It needs the ``cli`` extra (click, tqdm; the demo also matplotlib and Pillow)
and is never imported by ``import diffcore``.

Exit codes: 0 when all went well, 1 when ``check`` found a problem, 2 for bad
usage (unknown options or names, missing or unreadable files).  Every error
is one line on stderr, without a traceback.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import Any

import click

from ._check import check
from ._demo import demo
from ._errors import one_line_error
from ._schedule import schedule


class _Group(click.Group):
    """A click group whose errors print as one line, with exit code 2 for bad usage."""

    def main(  # type: ignore[override]
        self, args: Sequence[str] | None = None, **extra: Any
    ) -> None:
        extra["standalone_mode"] = False
        extra["prog_name"] = "diffcore"
        try:
            code = super().main(args, **extra)
        except click.ClickException as error:
            click.echo(one_line_error(error), err=True)
            sys.exit(error.exit_code)
        except click.Abort:
            click.echo("diffcore: interrupted", err=True)
            sys.exit(130)
        sys.exit(code if isinstance(code, int) else 0)

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        # No command at all: the help as --help prints it, not as a one-line
        # usage error.
        if not args:
            click.echo(ctx.get_help())
            ctx.exit(0)
        return super().parse_args(ctx, args)


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="diffcore", prog_name="diffcore")
def main() -> None:
    """The mathematics of Gaussian diffusion models, shown and checked.

    Run `diffcore demo` first: it noises a real photograph with three
    schedules, plots their tables and checks the closed form against the
    Markov chain.  Exit codes: 0 ok, 1 a check failed, 2 bad usage.
    """


main.add_command(demo)
main.add_command(schedule)
main.add_command(check)
