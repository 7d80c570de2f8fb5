"""How a study or benchmark script starts: its flags, parsed into one readable error.

Each script keeps its flag definitions in a function and calls ``cli.run(NAME, main,
define_flags)`` under ``if __name__ == "__main__"``. Flags are then defined only when the
module runs as a script: several studies share flag names (``--seeds``, ``--out``), and
absl refuses a second definition in one process, e.g. when pytest imports several
studies. A malformed flag (``--seeds=abc``, an unknown flag) prints one line
``NAME: error: ...`` and exits with status 2, as the scripts' own checks do.
"""

from __future__ import annotations

import sys
from typing import Callable

from absl import app, flags


def fail(name: str, message: str) -> int:
    """Prints ``name: error: message`` to stderr; returns the exit status 2 for ``main``."""
    print(f"{name}: error: {message}", file=sys.stderr)
    return 2


def run(name: str, main: Callable[[list[str]], int], define_flags: Callable[[], None]) -> None:
    """Defines the script's flags and runs ``main`` under absl."""
    define_flags()

    def parse(argv: list[str]) -> list[str]:
        try:
            return flags.FLAGS(argv)
        except flags.Error as error:
            sys.exit(fail(name, str(error)))

    app.run(main, flags_parser=parse)
