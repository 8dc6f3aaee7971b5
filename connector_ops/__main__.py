"""`python -m connector_ops`."""

import os
import sys

from connector_ops.app import app


def main() -> None:
    """Run the CLI, then end the process without the interpreter's finalisation.

    The Temporal client's native runtime keeps threads of its own that can call back into
    Python while the interpreter is being torn down (seen as a fatal `PyGILState_Release`
    error after the command had printed its answer). A CLI process holds nothing that needs
    cleaning up, so once its output is flushed it simply exits with the command's code.
    """
    code = 0
    try:
        app()
    except SystemExit as exit_request:
        if isinstance(exit_request.code, int):
            code = exit_request.code
        elif exit_request.code is not None:
            print(exit_request.code, file=sys.stderr)  # noqa: T201 - as Python would print it
            code = 1
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
    os._exit(code)


main()
