"""libactor's error codes as Python exceptions, chosen by the code's NAME
(actor_err_name), never by its value: a code the package does not know
is an Error with its name and message."""
import errno as _errno

from ._codec import TooDeep


class Error(Exception):
    """A libactor error: .code (negative int), .name ("ACTOR_ECLOSED",
    "ENOENT"), .message (the library's words, with context when it gave
    some)."""

    def __init__(self, code, name, message):
        super().__init__("%s: %s" % (name, message))
        self.code = code
        self.name = name
        self.message = message


class RemoteError(Error):
    """The actor raised: .type, .remote_message and .traceback are the
    actor's (for a Python actor, its exception's type, str() and the
    formatted traceback)."""

    def __init__(self, code, name, message, type="", remote_message="",
                 traceback=""):
        super().__init__(code, name, message)
        self.type = type
        self.remote_message = remote_message
        self.traceback = traceback

    def __str__(self):
        s = "%s: %s" % (self.type, self.remote_message)
        if self.traceback:
            s += "\n\nRemote traceback:\n" + self.traceback
        return s


class Cancelled(Error):
    """The call was cancelled (ACTOR_ECANCELED)."""


class ActorGone(Error):
    """The actor ended before answering, never said hello, or was stopped
    by the runtime (ACTOR_ECLOSED, ENOHELLO, EKILLED, EABANDONED)."""


class BackendUnavailable(Error):
    """No backend of that name, or it cannot run here (ACTOR_ENOBACKEND,
    EUNAVAIL, EBLOCKED): .message says why."""


class NoFunction(Error):
    """The actor has no function of that name (ACTOR_ENOFUNC)."""


class ProtocolError(Error):
    """The actor broke the protocol (ACTOR_EBADFRAME, EBADKIND, EVERSION)."""


class StateError(Error):
    """Not valid in this state (ACTOR_ESTATE, ENOTCHILD), or a Python
    object used after its C handle is gone (HandleGone)."""


class HandleGone(StateError):
    """The Python object outlived the C handle it wrapped: its actor has
    exited, its call has completed, or its runtime is closed."""

    def __init__(self, message):
        super().__init__(0, "HandleGone", message)


class WrongThread(StateError):
    """A runtime (its actors and calls) used from a thread that is not
    the one it belongs to."""

    def __init__(self, message):
        super().__init__(0, "WrongThread", message)


class ValueTooBig(Error, ValueError):
    """A value larger than a frame (ACTOR_E2BIG)."""


class ValueError_(Error, ValueError):
    """A value that cannot be converted (ACTOR_ETYPE)."""


class TooDeepError(Error, TooDeep):
    """A value nested deeper than 512 levels (ACTOR_EDEPTH)."""


class OSError_(Error, OSError):
    """An operating-system error (-errno): .errno is set too."""

    def __init__(self, code, name, message):
        Error.__init__(self, code, name, message)
        self.errno = -code
        self.strerror = message


BY_NAME = {
    "ACTOR_EREMOTE": RemoteError,
    "ACTOR_ECANCELED": Cancelled,
    "ACTOR_ECLOSED": ActorGone,
    "ACTOR_ENOHELLO": ActorGone,
    "ACTOR_EKILLED": ActorGone,
    "ACTOR_EABANDONED": ActorGone,
    "ACTOR_ENOBACKEND": BackendUnavailable,
    "ACTOR_EUNAVAIL": BackendUnavailable,
    "ACTOR_EBLOCKED": BackendUnavailable,
    "ACTOR_ENOFUNC": NoFunction,
    "ACTOR_EBADFRAME": ProtocolError,
    "ACTOR_EBADKIND": ProtocolError,
    "ACTOR_EVERSION": ProtocolError,
    "ACTOR_ESTATE": StateError,
    "ACTOR_ENOTCHILD": StateError,
    "ACTOR_E2BIG": ValueTooBig,
    "ACTOR_ETYPE": ValueError_,
    "ACTOR_EDEPTH": TooDeepError,
}


def exception_for(code, name, message, **remote):
    cls = BY_NAME.get(name)
    if cls is None:
        cls = OSError_ if name in _errno.errorcode.values() else Error
    if cls is RemoteError:
        return RemoteError(code, name, message, **remote)
    return cls(code, name, message)
