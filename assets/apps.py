from datetime import UTC, datetime

from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class AssetsConfig(AppConfig):
    name = "assets"
    verbose_name = _("Lending")

    # When this process started serving: the dashboard's start-up grace period counts from here.
    started_at = datetime.now(UTC)

    def ready(self):
        type(self).started_at = datetime.now(UTC)
        from . import signals  # noqa: F401  (connects the save signals that announce loans saved without the services)
