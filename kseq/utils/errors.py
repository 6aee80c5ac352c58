"""The one exception kseq raises for bad user input (files, rows, fields, config keys)."""


class InputError(ValueError):
    """Input that is not what kseq expects; the message names the file, row or field."""
