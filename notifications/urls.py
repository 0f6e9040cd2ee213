from django.urls import include, path

from . import views

urlpatterns = [
    path("notifications/", views.log, name="notification_log"),
    path("notifications/export.csv", views.export_csv, name="notification_export"),
    path("notifications/bulk/", views.bulk, name="notification_bulk"),
    path("notifications/delivery/", views.delivery, name="delivery_report"),
    path("notifications/<int:pk>/", views.detail, name="notification_detail"),
    path("notifications/<int:pk>/retry/", views.retry, name="notification_retry"),
    path("borrower-messages/<int:pk>/handled/", views.inbound_handled, name="inbound_handled"),
    path("scheduler/", views.scheduler, name="scheduler"),
    path("", include("notifications.experiment_urls")),
]
