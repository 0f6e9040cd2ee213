"""The Celery queues, in the order a worker that consumes several of them serves them.

A person waiting at the desk comes first: the CREATION, RESTITUTION and PROLONGATION
(extension notice) sends (and REPONSE, the replies to a borrower who just wrote to us) go to
``PRIORITY``, so a loan's confirmation never waits behind a backlog of reminders. Then the
periodic checks and the relay (``DEFAULT``), so a backlog never delays the run that enqueues
what is due. Then every other send (``NOTIFICATIONS``). The broker serves them in this order
(kombu's ``queue_order_strategy = "priority"``, set in the settings): a worker takes a message
from a later queue only when the earlier ones are empty.
"""

from __future__ import annotations

PRIORITY = "notifications_priority"
DEFAULT = "default"
NOTIFICATIONS = "notifications"
ALL = (PRIORITY, DEFAULT, NOTIFICATIONS)
WORKER_QUEUES = ",".join(ALL)
