"""The project's URLs plus two pages that fail, for the server-error email tests."""

from __future__ import annotations

from django.conf import settings
from django.urls import path

from radgestmat.urls import urlpatterns as project_urlpatterns


def broker_failure(request):
    raise ConnectionError(f"could not publish to {settings.CELERY_BROKER_URL} for {request.GET.get('q')}")


def other_failure(request):
    raise ValueError("something else broke")


urlpatterns = [
    path("test-errors/broker/", broker_failure),
    path("test-errors/other/", other_failure),
    *project_urlpatterns,
]
