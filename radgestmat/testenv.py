"""pytest plugin (loaded with ``-p`` in pytest.ini, before pytest-django reads the settings).

Tests run in development mode and on their own Redis database, so they never mix
with a `make run` on the same machine. Variables already set win.

Tests assert the English texts (the source strings); the French default of the UI
is tested on its own (`radgestmat/tests/test_i18n.py`, the browser tests).
"""

import os

os.environ.setdefault("DEBUG", "1")
os.environ.setdefault("REDIS_URL", "redis://127.0.0.1:6379/15")
os.environ.setdefault("LANGUAGE_CODE", "en")
# time-machine moves Python's clock, not PostgreSQL's (radgestmat/clock.py).
os.environ.setdefault("NOTIFICATION_CLOCK", "process")
