"""Errors that the CLI turns into one line and an exit code, never a traceback."""

EXIT_OK = 0
EXIT_FAILED = 1  # the job ran and failed
EXIT_USAGE = 2  # bad options or bad input
EXIT_INTERRUPTED = 130  # Ctrl-C, after saving what could be saved


class TlcliError(Exception):
    """Base: `str(error)` is the whole message shown to the user."""

    exit_code = EXIT_FAILED


class UsageError(TlcliError):
    """Bad option or bad input: name the problem and the fix."""

    exit_code = EXIT_USAGE


class JobFailed(TlcliError):
    """The job started and failed (exit 1)."""

    exit_code = EXIT_FAILED


class Interrupted(TlcliError):
    """Stopped by Ctrl-C after saving state."""

    exit_code = EXIT_INTERRUPTED
