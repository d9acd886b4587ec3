"""The error taxonomy shared by every layer.

A :class:`KnownError` is an environment problem the user can act on (no model weights, unreadable
folder, disk full); front ends show its message as-is, in one sentence, without a traceback. Any other
exception is a bug and is reported as such.
"""


class PhotoembedError(Exception):
    """Base class of every error photoembed raises on purpose."""


class KnownError(PhotoembedError):
    """A problem in the user's environment, explained by the message alone."""


class ModelUnavailableError(KnownError):
    """No weights are installed for the configured embedding model."""


class ModelMismatchError(KnownError):
    """The stored index was built with another model than the one loaded."""


class NestedRootError(KnownError):
    """A library folder cannot be added inside another one, or around it.

    Attributes:
        outer: the folder that holds the other.
        inner: the folder inside it.
    """

    def __init__(self, message: str, *, outer: object, inner: object) -> None:
        super().__init__(message)
        self.outer = outer
        self.inner = inner


class Cancelled(PhotoembedError):
    """A long job stopped because its caller asked it to."""
