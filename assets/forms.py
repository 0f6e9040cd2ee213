"""Staff forms, and the borrower page's. Loans change only through `assets.services`; its field-keyed errors land on these fields."""

from __future__ import annotations

import re

from django import forms
from django.core.exceptions import ValidationError
from django.db.models import Q
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from notifications.api import NotificationPreferences

from . import services
from .models import Attribution, Client, Materiel, normalize_phone

DATETIME_LOCAL = "%Y-%m-%dT%H:%M"
CLIENT_ID_SUFFIX = re.compile(r"#(\d+)\s*$")


class DateTimeLocalInput(forms.DateTimeInput):
    input_type = "datetime-local"

    def __init__(self, attrs=None):
        super().__init__(attrs, format=DATETIME_LOCAL)


def datetime_field(label, **kwargs) -> forms.DateTimeField:
    return forms.DateTimeField(
        label=label, widget=DateTimeLocalInput(), input_formats=[DATETIME_LOCAL, "%Y-%m-%d %H:%M"], **kwargs
    )


def client_label(client: Client) -> str:
    """How a client appears in the lend form's suggestions; the id suffix makes the choice unambiguous."""
    return f"{client} · #{client.pk}"


def find_materiel(code: str) -> Materiel:
    code = (code or "").strip()
    materiel = Materiel.objects.by_code(code).first()
    if materiel is None:
        raise forms.ValidationError(_("No material has the code “%(code)s”."), params={"code": code}, code="unknown")
    return materiel


def client_search(text: str, *, exact: bool = False) -> Q:
    """Clients whose name, email, organisation or phone match ``text`` (the phone in any readable form)."""
    if exact:
        query = Q(name__iexact=text) | Q(email__iexact=text)
    else:
        query = Q(name__icontains=text) | Q(email__icontains=text) | Q(organisation__icontains=text)
    try:
        phone = normalize_phone(text)
    except ValidationError:
        phone = ""
    if phone:
        query |= Q(phone=phone)
    return query


def find_client(text: str) -> Client:
    text = (text or "").strip()
    match = CLIENT_ID_SUFFIX.search(text)
    if match:
        client = Client.objects.filter(pk=int(match.group(1))).first()
        if client is not None:
            return client
        text = text[: match.start()].strip(" ·")
    candidates = list(Client.objects.filter(client_search(text, exact=True))[:2])
    if len(candidates) == 1:
        return candidates[0]
    if candidates:
        raise forms.ValidationError(
            _("Several clients match “%(text)s”: pick one from the list."), params={"text": text}, code="ambiguous"
        )
    raise forms.ValidationError(
        _("No client matches “%(text)s”. Pick one from the list, or create the client first."),
        params={"text": text},
        code="unknown",
    )


class LendForm(forms.Form):
    materiel = forms.CharField(
        label=_("Material code"),
        max_length=64,
        help_text=_("Type or scan the code."),
        widget=forms.TextInput(attrs={"autofocus": True, "autocomplete": "off", "spellcheck": "false"}),
    )
    client = forms.CharField(
        label=_("Client"),
        max_length=300,
        help_text=_("Name, email or phone."),
        widget=forms.TextInput(attrs={"autocomplete": "off", "list": "client-suggestions"}),
    )
    date_retour_prevue = datetime_field(_("Due back"))
    notes = forms.CharField(label=_("Notes"), required=False, widget=forms.Textarea(attrs={"rows": 2}))
    # The "Lend anyway" button sends the id of the borrower whose warnings staff have read:
    # a borrower changed after the warnings gets their own.
    confirm = forms.CharField(required=False, max_length=20, widget=forms.HiddenInput)

    busy_loan: Attribution | None = None  # the open loan of the material, when it is already out

    def clean_materiel(self) -> Materiel:
        return find_materiel(self.cleaned_data["materiel"])

    def clean_client(self) -> Client:
        return find_client(self.cleaned_data["client"])

    def clean(self):
        cleaned = super().clean()
        add_lend_problems(self, materiel=cleaned.get("materiel"))
        return cleaned


def add_lend_problems(form: forms.Form, *, materiel: Materiel | None) -> None:
    """Put every problem of the loan on the form at once: the service's checks run on whatever was understood."""
    cleaned = form.cleaned_data
    if materiel is not None:
        form.busy_loan = services.open_loan_of(materiel)  # type: ignore[attr-defined]
    try:
        services.validate_lend(
            materiel=materiel,
            client=cleaned.get("client"),
            start=timezone.now(),
            due=cleaned.get("date_retour_prevue"),
        )
    except ValidationError as exc:
        for field, messages in exc.message_dict.items():
            if field not in form.errors:  # a field already refused keeps its own message
                form.add_error(field, messages)


class ScanForm(forms.Form):
    """One scanned or typed code (a USB scanner types it then Enter)."""

    code = forms.CharField(
        label=_("Material code"),
        max_length=64,
        widget=forms.TextInput(
            attrs={"autofocus": True, "autocomplete": "off", "spellcheck": "false", "autocapitalize": "off"}
        ),
    )

    busy_loan: Attribution | None = None  # when the scanned material is already out

    def clean_code(self) -> Materiel:
        return find_materiel(self.cleaned_data["code"])


class BasketLendForm(forms.Form):
    """The basket's checkout: one borrower and one due date for every item scanned."""

    client = LendForm.base_fields["client"]
    date_retour_prevue = datetime_field(_("Due back"))
    notes = forms.CharField(label=_("Notes"), required=False, widget=forms.Textarea(attrs={"rows": 2}))
    confirm = LendForm.base_fields["confirm"]

    def clean_client(self) -> Client:
        return find_client(self.cleaned_data["client"])


class ExtendForm(forms.Form):
    date_retour_prevue = datetime_field(_("New due date"))


class NoteForm(forms.Form):
    note = forms.CharField(
        label=_("Note"), max_length=2000, widget=forms.Textarea(attrs={"rows": 2, "maxlength": 2000})
    )


class ReturnForm(forms.Form):
    date_retour_effective = datetime_field(_("Returned at"), required=False, help_text=_("Leave empty for now."))


class MaterielForm(forms.ModelForm):
    class Meta:
        model = Materiel
        fields = ["code", "name", "category", "state", "notes"]
        widgets = {"notes": forms.Textarea(attrs={"rows": 3})}

    def clean_state(self) -> str:
        state = self.cleaned_data["state"]
        # "Lent" follows the loans; staff cannot set or clear it by hand.
        current = self.instance.state if self.instance.pk else Materiel.State.AVAILABLE
        if (state == Materiel.State.LENT) != (current == Materiel.State.LENT):
            raise forms.ValidationError(_("“Lent” follows the loans: lend or return the material instead."))
        return state


class ClientForm(forms.ModelForm):
    class Meta:
        model = Client
        fields = ["name", "organisation", "email", "phone", "language"]

    def clean(self):
        cleaned = super().clean()
        if not cleaned.get("email") and not cleaned.get("phone") and not self.errors:
            raise forms.ValidationError(_("Give an email address or a phone number, or the client cannot be notified."))
        return cleaned


class PreferencesForm(forms.ModelForm):
    class Meta:
        model = NotificationPreferences
        fields = [
            "notifications_email",
            "notifications_whatsapp",
            "sms_enabled",
            "phone_number",
            "rappel_2h_avant",
            "rappel_j_moins_2",
            "rappel_j_moins_1",
            "rappel_final",
        ]


# --- The borrower page (assets.borrower_views) and staff decisions on its requests ---------------


class BorrowerExtensionForm(forms.Form):
    loan = forms.IntegerField(widget=forms.HiddenInput, min_value=1, max_value=2**31 - 1)
    new_due = datetime_field(_("New return time"))


class BorrowerPreferencesForm(forms.ModelForm):
    """What a borrower may change from their link: channels and reminders (not the phone number: a link
    forwarded to someone else must not redirect the messages)."""

    class Meta:
        model = NotificationPreferences
        fields = [
            "notifications_email",
            "notifications_whatsapp",
            "sms_enabled",
            "rappel_2h_avant",
            "rappel_j_moins_2",
            "rappel_j_moins_1",
            "rappel_final",
        ]
        # The model's help speaks to staff ("only with the borrower's consent"): ticking it here is that consent.
        help_texts = {"notifications_whatsapp": ""}


class ExtensionDecisionForm(forms.Form):
    action = forms.ChoiceField(choices=[("approve", _("Approve")), ("refuse", _("Refuse"))])
    reason = forms.CharField(label=_("Reason for refusal"), max_length=500, required=False)
