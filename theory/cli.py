"""The one argument and error helper of every command line of the toolkit.

Each CLI builds its parser with ``parser(prog, description)`` and runs its body with
``run(parser, body, argv)``; ``body(args)`` returns the exit status.  The contract, for every CLI:

* bad input prints exactly one line ``error: <what is wrong, with the value>`` on stderr and
  exits ``EXIT_BAD_INPUT`` (2), with no usage block and no traceback.  Bad input is an argparse
  error (unknown option, invalid choice, a value a type below rejects), an ``InputError`` raised
  by the body, an exception of a type the CLI names in ``bad_input``, or an ``OSError`` (a path
  that cannot be read or written);
* Ctrl-C prints one line and exits ``EXIT_INTERRUPTED`` (130);
* ``--help`` prints the help and exits 0.

Choices of options come from the module that owns them (``choices=tuple(FORMATS)``,
``choices=DEVICES`` from gpu_check.config), never from a list typed in the parser.
"""
from __future__ import annotations

import argparse
import re
import sys

EXIT_OK = 0
EXIT_BAD_INPUT = 2
EXIT_INTERRUPTED = 130
# numpy's and torch's generators both take seeds in [0, 2^32) everywhere this toolkit seeds one.
SEED_LIMIT = 2 ** 32


class InputError(ValueError):
    """Bad input to a command line: exit status 2 with one line on stderr."""


class _Exit(Exception):
    """argparse finished early (--help): the status to return."""

    def __init__(self, status: int):
        super().__init__(status)
        self.status = status


class Parser(argparse.ArgumentParser):
    """An ArgumentParser whose errors are ``InputError`` (one line, exit 2, via ``run``) and whose
    ``--help`` returns 0 through ``run`` instead of raising SystemExit."""

    def error(self, message):
        raise InputError(message)

    def exit(self, status=0, message=None):
        if message:
            self._print_message(message, sys.stderr)
        raise _Exit(status)


def parser(prog: str, description: str, epilog: str = None) -> Parser:
    """The parser of a CLI; ``description`` is shown in full (``--help``), with its line breaks."""
    return Parser(prog=prog, description=description, epilog=epilog,
                  formatter_class=argparse.RawDescriptionHelpFormatter)


def one_line(text) -> str:
    """``text`` on one line: line breaks (and the spaces around them) become single spaces."""
    return re.sub(r"\s*\n\s*", " ", str(text).strip())


def describe_os_error(err: OSError) -> str:
    """'<path>: <reason>' for an OSError, or its text when it names no path."""
    reason = err.strerror or str(err)
    return f"{err.filename}: {reason}" if err.filename else reason


def run(cli: argparse.ArgumentParser, body, argv=None, *, bad_input=(), stderr=None,
        interrupted: str = "interrupted") -> int:
    """Parse ``argv`` with ``cli`` and return ``body(args)`` (an exit status; None means 0), turning
    bad input into one ``error:`` line and EXIT_BAD_INPUT, and Ctrl-C into one line and
    EXIT_INTERRUPTED."""
    stderr = stderr or sys.stderr
    try:
        status = body(cli.parse_args(argv))
        return EXIT_OK if status is None else status
    except _Exit as done:
        return done.status
    except (InputError, *bad_input) as err:
        message = str(err)
    except OSError as err:
        message = describe_os_error(err)
    except KeyboardInterrupt:
        stderr.write(one_line(interrupted) + "\n")
        stderr.flush()
        return EXIT_INTERRUPTED
    stderr.write(f"error: {one_line(message)}\n")
    stderr.flush()
    return EXIT_BAD_INPUT


# ---------------------------------------------------------------------------------------------
# Argument types: each rejects with a message naming the value (argparse prefixes the option)
# ---------------------------------------------------------------------------------------------

def _integer(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be an integer, got {text!r}") from None


def positive_int(text: str) -> int:
    """An integer >= 1."""
    n = _integer(text)
    if n <= 0:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {n}")
    return n


def non_negative_int(text: str) -> int:
    """An integer >= 0."""
    n = _integer(text)
    if n < 0:
        raise argparse.ArgumentTypeError(f"must be an integer >= 0, got {n}")
    return n


def int_at_least(low: int, why: str = ""):
    """The type of an integer >= ``low``; ``why`` says why in the message."""
    def parse(text: str) -> int:
        n = _integer(text)
        if n < low:
            raise argparse.ArgumentTypeError(f"must be an integer >= {low}{f' ({why})' if why else ''}, got {n}")
        return n
    parse.__name__ = f"int_at_least_{low}"
    return parse


def seed(text: str) -> int:
    """A random seed: an integer in [0, SEED_LIMIT)."""
    n = _integer(text)
    if not 0 <= n < SEED_LIMIT:
        raise argparse.ArgumentTypeError(f"must be an integer in [0, 2^32), got {n}")
    return n
