"""Gunicorn settings for RadGestMat's web role (Procfile `web`, systemd radgestmat-web).

    gunicorn radgestmat.wsgi --config deploy/gunicorn.conf.py --bind ... --workers ...

The access log never holds a query string or a referer: a search such as
``/clients/?q=camille.martin@example.org`` is logged as ``/clients/``. Whatever still
reaches gunicorn's logs (a path, an error message) goes through the same masking of
email addresses and phone numbers as every other log line (``radgestmat.logging``).
"""

from __future__ import annotations

import sys
from pathlib import Path

from gunicorn.glogging import Logger

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from radgestmat.logging import MaskPersonalData

# The default format, with the path (%(U)s) instead of the request line (%(r)s) and no referer (%(f)s).
access_log_format = '%(h)s %(l)s %(u)s %(t)s "%(m)s %(U)s %(H)s" %(s)s %(b)s "%(a)s" %(M)sms'


class MaskedLogger(Logger):
    def setup(self, cfg) -> None:
        super().setup(cfg)
        for log in (self.access_log, self.error_log):
            if not any(isinstance(f, MaskPersonalData) for f in log.filters):
                log.addFilter(MaskPersonalData())


logger_class = MaskedLogger
