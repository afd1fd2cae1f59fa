"""User-facing errors: the CLI prints one line and exits 2; the API answers problem+json."""

from __future__ import annotations


class UserError(Exception):
    """Bad input from a user. `code` is dotted (e.g. `input.prompt.empty`), the message one line."""

    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code = code
        self.message = message
