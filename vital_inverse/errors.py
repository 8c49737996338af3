# SPDX-License-Identifier: GPL-3.0-or-later
"""The base of every error a user can cause (bad file, bad value, bad option).

Each module raises its own subclass with a message that names the problem
and what to do; the CLI prints it without a traceback and the app shows it
as a notice.
"""


class UserError(ValueError):
    """Bad input from a person; the message is meant to be read by them."""


USER_ERRORS: tuple[type[Exception], ...] = (UserError,)
