from __future__ import annotations

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import ValidationError
from django.utils import timezone
from django.utils.translation import gettext_lazy as _
from django.utils.translation import ngettext

from notifications.api import NotificationLog, NotificationPreferences

from . import services
from .models import Attribution, Client, ExtensionRequest, Materiel


@admin.register(Materiel)
class MaterielAdmin(admin.ModelAdmin):
    list_display = ["code", "name", "category", "state"]
    list_filter = ["state", "category"]
    search_fields = ["code", "name", "category"]


class NotificationPreferencesInline(admin.StackedInline):
    model = NotificationPreferences
    fk_name = "client"
    exclude = ["user"]
    extra = 0
    max_num = 1


@admin.register(Client)
class ClientAdmin(admin.ModelAdmin):
    list_display = ["name", "organisation", "email", "phone", "language"]
    list_filter = ["language", "organisation"]
    search_fields = ["name", "email", "phone", "organisation"]
    inlines = [NotificationPreferencesInline]


class NotificationLogInline(admin.TabularInline):
    model = NotificationLog
    fk_name = "attribution"
    extra = 0
    can_delete = False
    show_change_link = True
    readonly_fields = (
        "type_notification",
        "canal",
        "audience",
        "niveau_escalade",
        "statut",
        "date_scheduled",
        "date_envoi",
        "nb_tentatives",
        "erreur_message",
    )
    fields = readonly_fields
    ordering = ["date_scheduled", "id"]

    def has_add_permission(self, request, obj=None) -> bool:
        return False


class AttributionAdminForm(forms.ModelForm):
    """Validates through the lending services, so the admin cannot break the rules the desk follows."""

    class Meta:
        model = Attribution
        fields = ["materiel", "client", "date_debut", "date_retour_prevue", "date_retour_effective", "notes"]

    def clean(self):
        data = super().clean()
        if self.errors:
            return data
        try:
            if self.instance.pk is None:
                services.validate_lend(
                    materiel=data["materiel"],
                    client=data["client"],
                    start=data["date_debut"],
                    due=data["date_retour_prevue"],
                )
            else:
                if "date_retour_prevue" in self.changed_data:
                    services.validate_extend(
                        self.instance, new_due=data["date_retour_prevue"], by=getattr(self, "user", None)
                    )
                if data.get("date_retour_effective") and "date_retour_effective" in self.changed_data:
                    services.validate_return(self.instance, when=data["date_retour_effective"], now=timezone.now())
        except ValidationError as exc:
            self.add_error(None, exc)
        return data

    def _post_clean(self):
        # The model's own constraint validation would run on the unsaved instance;
        # the services above already checked the same rules with the right messages.
        pass


@admin.register(Attribution)
class AttributionAdmin(admin.ModelAdmin):
    form = AttributionAdminForm
    list_display = [
        "materiel",
        "client",
        "duree",
        "date_debut",
        "date_retour_prevue",
        "date_retour_effective",
        "statut",
    ]
    list_filter = ["statut", "duree", "date_retour_prevue"]
    search_fields = ["materiel__code", "materiel__name", "client__name", "client__email"]
    list_select_related = ["materiel", "client"]
    autocomplete_fields = ["materiel", "client"]
    readonly_fields = ["duree", "statut", "created_by", "created_at"]
    date_hierarchy = "date_debut"
    inlines = [NotificationLogInline]
    actions = ["mark_returned"]

    def get_form(self, request, obj=None, change=False, **kwargs):
        form = super().get_form(request, obj, change=change, **kwargs)
        # The extension limit depends on who extends (assets.extend_beyond_limit).
        return type(form.__name__, (form,), {"user": request.user})

    def get_readonly_fields(self, request, obj=None):
        readonly = list(self.readonly_fields)
        if obj is not None:
            readonly += ["materiel", "client", "date_debut"]
            if not obj.is_open:
                readonly += ["date_retour_prevue", "date_retour_effective"]
        return readonly

    def save_model(self, request, obj, form, change):
        now = timezone.now()
        data = form.cleaned_data
        if not change:
            created = services.lend(
                materiel=data["materiel"],
                client=data["client"],
                start=data["date_debut"],
                due=data["date_retour_prevue"],
                now=now,
                by=request.user,
                notes=data.get("notes", ""),
            )
            obj.pk = created.pk
            obj.refresh_from_db()
            if data.get("date_retour_effective"):
                services.record_return(obj, now=now, returned_at=data["date_retour_effective"], by=request.user)
            return
        if "notes" in form.changed_data:
            Attribution.objects.filter(pk=obj.pk).update(notes=data["notes"])
            if data["notes"].strip():
                services.add_note(obj, text=data["notes"], now=now, by=request.user)
        if "date_retour_prevue" in form.changed_data:
            services.extend(obj, new_due=data["date_retour_prevue"], now=now, by=request.user)
        if "date_retour_effective" in form.changed_data and data.get("date_retour_effective"):
            services.record_return(obj, now=now, returned_at=data["date_retour_effective"], by=request.user)

    @admin.action(description=_("Mark selected loans as returned now"), permissions=["change"])
    def mark_returned(self, request, queryset):
        now = timezone.now()
        done = 0
        for attribution in queryset.open().select_related("materiel", "client"):
            try:
                services.record_return(attribution, now=now, by=request.user)
                done += 1
            except ValidationError as exc:
                self.message_user(request, f"{attribution}: {' '.join(exc.messages)}", messages.ERROR)
        self.message_user(
            request, ngettext("%(n)d loan marked as returned.", "%(n)d loans marked as returned.", done) % {"n": done}
        )


@admin.register(ExtensionRequest)
class ExtensionRequestAdmin(admin.ModelAdmin):
    """Read only: requests are decided on the staff pages, through `assets.services` (the extension goes through
    `extend`, the borrower is told)."""

    list_display = ["attribution", "requested_due", "statut", "source", "requested_at", "decided_by"]
    list_filter = ["statut", "source"]
    list_select_related = ["attribution__materiel", "attribution__client", "decided_by"]
    date_hierarchy = "requested_at"
    search_fields = ["attribution__materiel__code", "attribution__client__name"]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False
