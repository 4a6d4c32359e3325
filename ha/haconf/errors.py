"""What haconf refuses, as exceptions: the click layer (cli.py) alone prints them.

The parsers, the staging and the translations raise; ``cli.py`` turns the
exception into its message on stderr and the exit status below.  Nothing
under it writes a file after raising, so a refusal loses nothing.
"""

EXIT_FAILED, EXIT_REFUSED, EXIT_NOT_RUNNING = 1, 2, 3


class HaconfError(Exception):
    """A refusal or failure: *message* for the user, *code* the exit status."""

    def __init__(self, message, code=EXIT_REFUSED):
        super().__init__(message)
        self.message = message
        self.code = code

    def lines(self):
        return ["haconf: " + self.message]


class ConfigRefused(HaconfError):
    """A denali.conf that breaks rules (a DenaliConfError): one line per rule."""

    def __init__(self, error, code=EXIT_REFUSED):
        super().__init__(str(error), code)
        self.error = error

    def lines(self):
        return ([f"haconf: refused ({self.error.filename}):"]
                + ["  " + (f"{k}: {r}" if k else r) for k, r in self.error.errors])
