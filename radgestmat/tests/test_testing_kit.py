"""The test kit's SMTP sink answers as each of its users expects: the tests' sink takes any recipient,
the drills' refuses the ones a real server would; its waits fail with the caller's error."""

from __future__ import annotations

import smtplib

import pytest

from radgestmat.testing.net import ServerError, wait_until
from radgestmat.testing.smtp import SmtpSink

MESSAGE = "From: pret@example.org\r\nTo: x\r\nSubject: hello\r\nX-RadGestMat-Notification: 7\r\n\r\nbody\r\n"


def send(sink: SmtpSink, *recipients: str) -> dict:
    with smtplib.SMTP(sink.host, sink.port, timeout=5) as client:
        return client.sendmail("pret@example.org", list(recipients), MESSAGE)


def test_the_drills_sink_refuses_what_a_real_server_would_and_counts_by_notification():
    sink = SmtpSink(check_addresses=True, reject_domains=("gone.example",)).up()
    try:
        refused = send(sink, "camille@example.org", "no-at-sign", "lea@gone.example")
    finally:
        sink.down()

    assert sorted(refused) == ["lea@gone.example", "no-at-sign"]
    assert all(code == 550 for code, _text in refused.values())
    assert sink.snapshot() == {7: 1} and sink.messages == []


def test_the_tests_sink_takes_any_recipient_and_keeps_each_message_whole():
    sink = SmtpSink(keep_messages=True).up()
    try:
        assert send(sink, "no-at-sign") == {}
    finally:
        sink.down()

    [message] = sink.messages
    assert message["Subject"] == "hello" and sink.envelopes[0].rcpt_tos == ["no-at-sign"]


def test_a_wait_fails_with_the_callers_error():
    with pytest.raises(AssertionError, match="the moon did not happen within 0 s"):
        wait_until(lambda: False, what="the moon", timeout=0.2)
    with pytest.raises(ServerError):
        wait_until(lambda: 1 / 0, what="a division", timeout=0.2, error=ServerError)
