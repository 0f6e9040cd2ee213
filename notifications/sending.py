"""Sending one NotificationLog row: claim it, check it still matters, send it, record the outcome."""
