"""The ``blindreader`` command: wires each package's ``cli.py`` into one Typer application.

Only light modules are imported here so that ``blindreader --help`` answers quickly; torch,
Qt and statsmodels are imported inside the commands that need them.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

import typer

from analysis import cli as analysis_cli
from analysis import plan_cli
from analysis.errors import AnalysisError
from blindreader import demo_cli, info
from reader_app import cli as reader_cli
from reader_app.errors import ReaderAppError
from recon_backend import cli as recon_cli
from recon_backend.errors import ReconError
from studies import cli as studies_cli
from studies.clock import Clock, system_clock
from studies.errors import StudyError

app = typer.Typer(
    name="blindreader",
    help="Blinded reader studies of AI-reconstructed versus conventional MRI.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
app.command("info", help="Versions, compute device and where things are.")(info.info)
app.command("demo", help="Build and run the simulated demo study end to end.")(demo_cli.demo)
recon_cli.register(app)
studies_cli.register(app)
reader_cli.register(app)
analysis_cli.register(app)
plan_cli.register(app)

#: Errors that are the user's input, not a bug: shown as one line, no traceback.
USER_ERRORS: tuple[type[BaseException], ...] = (
    ReconError,
    StudyError,
    AnalysisError,
    ReaderAppError,
    FileNotFoundError,
    IsADirectoryError,
    NotADirectoryError,
    PermissionError,
)


def main(argv: Sequence[str] | None = None, *, clock: Clock = system_clock) -> None:
    """Run the command line; user errors become one line on stderr and exit status 1.

    Parameters
    ----------
    argv
        The arguments (default: ``sys.argv[1:]``).
    clock
        Where every command reads "now" (see :mod:`studies.clock`). The console script always
        runs on the system clock; only an in-process caller (a test) passes another one.
    """
    try:
        app(args=None if argv is None else list(argv), obj=clock)
    except USER_ERRORS as exc:
        message = str(exc) or exc.__class__.__name__
        if (
            isinstance(exc, OSError)
            and exc.filename is not None
            and str(exc.filename) not in message
        ):
            message = f"{exc.filename}: {message}"
        print(f"blindreader: error: {message}", file=sys.stderr)
        sys.exit(1)
    except KeyboardInterrupt:
        print("blindreader: interrupted", file=sys.stderr)
        sys.exit(130)


if __name__ == "__main__":
    main()
