"""Loan lifecycle signals, sent once after the change is committed (never on rollback).

Receivers get ``attribution`` (the saved Attribution) and ``now``; ``attribution_extended``
also gets ``previous_due``.
"""

from django.dispatch import Signal

attribution_created = Signal()
attribution_returned = Signal()
attribution_extended = Signal()
