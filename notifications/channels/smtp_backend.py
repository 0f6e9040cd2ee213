"""Django's SMTP backend, waiting for the reply to the end of DATA as long as RFC 5321 allows.

RFC 5321 §4.5.3.2.6 gives a server ten minutes to answer the final "." of a message:
it may be scanning or relaying it. A client that gives up sooner (EMAIL_TIMEOUT, meant
for connect and commands) and sends again makes a duplicate whenever the late answer
was "250". So only that one reply gets EMAIL_END_OF_DATA_TIMEOUT, and a failure while
waiting for it raises `EndOfDataUnanswered`: the message may have been accepted, the
channel records it as ambiguous and never resends it.
"""

from __future__ import annotations

import smtplib
from collections.abc import Callable

from django.conf import settings
from django.core.mail.backends.smtp import EmailBackend

END_OF_DATA = b"\r\n.\r\n"


class EndOfDataUnanswered(smtplib.SMTPException):
    """The message was sent whole, and the server's reply to it never came (it may have been accepted)."""


class PatientSMTPMixin:
    # Called just before the final "." goes out: from then on the message may be accepted.
    before_end_of_data: Callable[[], None] | None = None
    # Set when DATA is sent: before it, a server that hung up cannot have accepted the message.
    data_started = False
    _in_data = False
    _awaiting_end_of_data = False

    def data(self, msg):
        self.data_started = True
        self._in_data = True
        try:
            return super().data(msg)
        finally:
            self._in_data = self._awaiting_end_of_data = False
            if self.sock is not None:
                self.sock.settimeout(self.timeout)

    def send(self, s):
        if self._in_data and (s.endswith(END_OF_DATA) if isinstance(s, bytes) else s.endswith(END_OF_DATA.decode())):
            if self.before_end_of_data is not None:
                self.before_end_of_data()
            self._awaiting_end_of_data = True
            if self.sock is not None:
                self.sock.settimeout(settings.EMAIL_END_OF_DATA_TIMEOUT)
        return super().send(s)

    def getreply(self):
        if not self._awaiting_end_of_data:
            return super().getreply()
        try:
            return super().getreply()
        except Exception as error:  # a timeout, a cut connection, or the task's soft time limit
            raise EndOfDataUnanswered(f"no reply to the end of the message: {error}") from error


class PatientSMTP(PatientSMTPMixin, smtplib.SMTP):
    pass


class PatientSMTPSSL(PatientSMTPMixin, smtplib.SMTP_SSL):
    pass


class PatientEmailBackend(EmailBackend):
    @property
    def connection_class(self):
        return PatientSMTPSSL if self.use_ssl else PatientSMTP
