"""pytest plugin (loaded with ``-p`` in pytest.ini, before pytest-django reads the settings).

Tests run in development mode and on their own Redis database, so they never mix
with a `make run` on the same machine. Variables already set win.
"""

import os

os.environ.setdefault("DEBUG", "1")
os.environ.setdefault("REDIS_URL", "redis://127.0.0.1:6379/15")
