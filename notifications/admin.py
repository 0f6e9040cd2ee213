from __future__ import annotations

from functools import wraps

from django.contrib import admin
from django.utils import timezone
from django.utils.html import format_html
from django.utils.translation import gettext_lazy as _
from django_celery_beat.admin import PeriodicTaskAdmin as BeatPeriodicTaskAdmin
from django_celery_beat.models import PeriodicTask

from .messages import render, sample_log
from .models import InboundMessage, MessageOverride, NotificationLog, NotificationPreferences, WhatsAppConfig


@admin.register(NotificationLog)
class NotificationLogAdmin(admin.ModelAdmin):
    list_display = [
        "id",
        "attribution",
        "type_notification",
        "canal",
        "audience",
        "niveau_escalade",
        "statut",
        "date_scheduled",
        "date_envoi",
        "nb_tentatives",
    ]
    list_filter = ["statut", "erreur_code", "canal", "type_notification", "audience", "date_scheduled"]
    search_fields = ["attribution__materiel__code", "attribution__client__name", "destinataire", "provider_message_id"]
    list_select_related = ["attribution__materiel", "attribution__client"]
    raw_id_fields = ["attribution", "fallback_of"]
    date_hierarchy = "date_scheduled"
    readonly_fields = [f.name for f in NotificationLog._meta.fields]

    def has_add_permission(self, request) -> bool:
        # Rows are planned by the system; staff retry or cancel them, they do not invent them.
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False


@admin.register(NotificationPreferences)
class NotificationPreferencesAdmin(admin.ModelAdmin):
    list_display = ["__str__", "notifications_email", "notifications_whatsapp", "sms_enabled", "phone_number"]
    list_filter = ["notifications_email", "notifications_whatsapp", "sms_enabled"]
    search_fields = ["client__name", "user__username", "phone_number"]
    raw_id_fields = ["user", "client"]


@admin.register(WhatsAppConfig)
class WhatsAppConfigAdmin(admin.ModelAdmin):
    list_display = ["phone_number_sender", "api_provider", "is_active", "updated_at"]
    list_filter = ["api_provider", "is_active"]
    search_fields = ["phone_number_sender"]
    fieldsets = [
        (
            None,
            {
                "fields": ["phone_number_sender", "api_provider", "is_active", "content_templates"],
                "description": _(
                    "Twilio credentials are never stored here: they come from the environment only "
                    "(TWILIO_ACCOUNT_SID, TWILIO_AUTH_TOKEN)."
                ),
            },
        )
    ]


@admin.register(MessageOverride)
class MessageOverrideAdmin(admin.ModelAdmin):
    """Edit a borrower message; the model refuses a text that does not render (reason shown by the field)."""

    list_display = ["type_notification", "canal", "language", "subject", "updated_at"]
    list_filter = ["canal", "language", "type_notification"]
    search_fields = ["subject", "body"]
    readonly_fields = ["preview"]

    @admin.display(description=_("preview with sample data"))
    def preview(self, obj: MessageOverride) -> str:
        if obj is None or obj.pk is None:
            return "—"
        now = timezone.now()
        message = render(
            sample_log(obj.type_notification, obj.canal, obj.language, now=now),
            now=now,
            language=obj.language,
            override=obj,
        )
        return format_html("<pre class='readonly'>{}</pre>", "\n\n".join(filter(None, [message.subject, message.body])))


def needs_change_permission(action):
    """A third-party admin action, allowed only to users who may change the model (not view-only staff)."""

    @wraps(action)
    def guarded(modeladmin, request, queryset):
        return action(modeladmin, request, queryset)

    guarded.allowed_permissions = ("change",)
    return guarded


admin.site.unregister(PeriodicTask)


@admin.register(PeriodicTask)
class PeriodicTaskAdmin(BeatPeriodicTaskAdmin):
    """django-celery-beat's admin, whose enable/disable/toggle/run actions declare no permission of their own."""

    enable_tasks = needs_change_permission(BeatPeriodicTaskAdmin.enable_tasks)
    disable_tasks = needs_change_permission(BeatPeriodicTaskAdmin.disable_tasks)
    toggle_tasks = needs_change_permission(BeatPeriodicTaskAdmin.toggle_tasks)
    run_tasks = needs_change_permission(BeatPeriodicTaskAdmin.run_tasks)


@admin.register(InboundMessage)
class InboundMessageAdmin(admin.ModelAdmin):
    list_display = ["received_at", "kind", "canal", "client", "attribution"]
    list_filter = ["kind", "canal", "received_at"]
    search_fields = ["client__name", "from_number", "message_sid", "body"]
    list_select_related = ["client", "attribution__materiel", "attribution__client"]
    raw_id_fields = ["client", "attribution", "reply"]
    date_hierarchy = "received_at"
    readonly_fields = [f.name for f in InboundMessage._meta.fields]

    def has_add_permission(self, request) -> bool:
        return False  # written by Twilio's webhook only
