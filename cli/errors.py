"""The one exception a command raises for bad input: printed as one line, exit status 2."""


class UserError(Exception):
    """Bad input from the user (unknown design, bad number, malformed file): one line, exit 2."""
