"""The one exception type that reaches the user as a one-line message (exit 2)."""


class UserError(Exception):
    """Bad input the user can fix: the message names the problem and the remedy."""


class ConfigError(UserError):
    """A config (file, flags or ``RunConfig``) the toolkit cannot train: the key, the value and what is allowed."""
