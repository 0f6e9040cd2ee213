"""The contract every channel keeps: resolve the recipient, send one message, classify failures.

A channel never touches `NotificationLog` statuses: it returns the provider's message
id or raises `TransientError` (try again later) or `PermanentError` (trying again
cannot help). The send service (`notifications.sending`) records the outcome.

Each error also carries its cause, ``code`` (a `notifications.models.CodeErreur`
value), decided where the error is classified and written to ``erreur_code`` as is:
alerts and staff filters read the code, never the wording of the message.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from notifications.messages import Message
    from notifications.models import NotificationLog


class ChannelError(Exception):
    """A send failed; ``str(error)`` is the reason recorded in ``erreur_message``, ``code`` its ``erreur_code``."""

    permanent = False
    # The cause when the raiser names none: CodeErreur.OTHER (the models are not imported here).
    code: str = "OTHER"

    def __init__(self, message: str, *, code: str | None = None):
        super().__init__(message)
        if code is not None:
            self.code = code


class TransientError(ChannelError):
    """The provider or the network failed in a way that may pass: retry with backoff."""


class PermanentError(ChannelError):
    """This message can never be delivered as it is (bad address, refused recipient...)."""

    permanent = True
    # Whether another channel may be tried. False when the message may in fact have gone out.
    allows_fallback = True


class AmbiguousError(PermanentError):
    """The provider may have accepted the message before failing: neither resend nor fall back."""

    allows_fallback = False
    code = "AMBIGUOUS"


class Channel:
    """One way to reach a person. Subclasses set ``canal`` and implement the three methods."""

    canal: str = ""

    def is_configured(self) -> bool:
        """Whether the settings this channel needs are present."""
        raise NotImplementedError

    def recipient(self, log: NotificationLog) -> str:
        """The validated address this row goes to; raises `PermanentError` saying why there is none."""
        raise NotImplementedError

    def validate(self, address: str) -> str:
        """``address`` in the form this channel sends to; raises `PermanentError` saying what is wrong."""
        raise NotImplementedError

    def send(self, log: NotificationLog, message: Message, to: str) -> str:
        """Deliver ``message`` to ``to`` and return the provider's message id."""
        raise NotImplementedError
