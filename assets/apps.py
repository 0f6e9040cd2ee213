from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class AssetsConfig(AppConfig):
    name = "assets"
    verbose_name = _("Lending")

    def ready(self):
        from . import signals  # noqa: F401  (connects the save signals that announce loans saved without the services)
