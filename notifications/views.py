"""Staff pages for notifications: the log, one row's story, retry/cancel, CSV export, delivery rates, the scheduler.

Retry and cancel go through `notifications.lifecycle`, so a retried row is sent by the
same claim-then-send path as every other.
"""

from __future__ import annotations

from datetime import datetime, time, timedelta

from django import forms
from django.conf import settings
from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.db.models import Count, Q, QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseBadRequest, StreamingHttpResponse
from django.shortcuts import get_object_or_404, render
from django.urls import reverse
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy, ngettext
from django.views.decorators.http import require_POST

from radgestmat.csv_export import Column, csv_table, spreadsheet_datetime
from radgestmat.input import MAX_DB_INT, DayField, parse_id
from radgestmat.staff import paginate, redirect_back, staff_required

from . import inbound, lifecycle
from .models import FIX_THE_CLIENT, Canal, CodeErreur, InboundMessage, NotificationLog, Statut, TypeNotification
from .scheduler_status import scheduler_status

RETRYABLE = (Statut.ECHEC, Statut.ECHEC_PERMANENT, Statut.ANNULEE)
TAB_COUNT_CAP = 1000
CANCELLABLE = (Statut.EN_ATTENTE, Statut.ECHEC)
# The spec's delivery targets, in percent of the notifications that reached a final state.
DELIVERY_TARGETS = {Canal.EMAIL: 95, Canal.WHATSAPP: 90}
CANCEL_PERMISSION = "notifications.change_notificationlog"
MAX_CONFIRM_ROWS = 500


def local_day_start(day) -> datetime:
    return datetime.combine(day, time.min, tzinfo=timezone.get_current_timezone())


class LogFilterForm(forms.Form):
    type_notification = forms.ChoiceField(
        label=gettext_lazy("Type"), required=False, choices=[("", gettext_lazy("All"))] + TypeNotification.choices
    )
    canal = forms.ChoiceField(
        label=gettext_lazy("Channel"), required=False, choices=[("", gettext_lazy("All"))] + Canal.choices
    )
    statut = forms.ChoiceField(
        label=gettext_lazy("Status"), required=False, choices=[("", gettext_lazy("All"))] + Statut.choices
    )
    erreur_code = forms.ChoiceField(
        label=gettext_lazy("Cause"), required=False, choices=[("", gettext_lazy("All"))] + CodeErreur.choices
    )
    date_from = DayField(label=gettext_lazy("From"), required=False, widget=forms.DateInput(attrs={"type": "date"}))
    date_to = DayField(label=gettext_lazy("To"), required=False, widget=forms.DateInput(attrs={"type": "date"}))
    client = forms.CharField(
        label=gettext_lazy("Client"), required=False, widget=forms.TextInput(attrs={"type": "search"})
    )
    loan = forms.IntegerField(required=False, min_value=1, max_value=MAX_DB_INT, widget=forms.HiddenInput)

    def clean(self):
        cleaned = super().clean()
        if cleaned.get("date_from") and cleaned.get("date_to") and cleaned["date_to"] < cleaned["date_from"]:
            self.add_error("date_to", _("The end of the period is before its start."))
        return cleaned

    def filter(self, queryset):
        data = self.cleaned_data if self.is_valid() else {}
        for name in ("type_notification", "canal", "statut", "erreur_code"):
            if data.get(name):
                queryset = queryset.filter(**{name: data[name]})
        if data.get("date_from"):
            queryset = queryset.filter(date_scheduled__gte=local_day_start(data["date_from"]))
        if data.get("date_to"):
            queryset = queryset.filter(date_scheduled__lt=local_day_start(data["date_to"] + timedelta(days=1)))
        if data.get("loan"):
            queryset = queryset.filter(attribution_id=data["loan"])
        client = (data.get("client") or "").strip()
        client_id = parse_id(client)
        if client_id:
            queryset = queryset.filter(attribution__client_id=client_id)
        elif client:
            queryset = queryset.filter(
                Q(attribution__client__name__icontains=client) | Q(attribution__client__email__iexact=client)
            )
        return queryset


def filtered_log(request: HttpRequest) -> tuple[LogFilterForm, QuerySet[NotificationLog]]:
    form = LogFilterForm(request.GET or None)
    rows = NotificationLog.objects.select_related("attribution__materiel", "attribution__client").order_by(
        "-date_scheduled", "-id"
    )
    return form, form.filter(rows)


# The log's tabs: what happened (newest first), what is planned (soonest first), the failures, everything.
LOG_TABS = {
    "activity": gettext_lazy("Activity"),
    "planned": gettext_lazy("Planned"),
    "failed": gettext_lazy("Failed"),
    "all": gettext_lazy("All"),
}


def in_tab(rows: QuerySet[NotificationLog], tab: str, now: datetime) -> QuerySet[NotificationLog]:
    if tab == "activity":
        return rows.filter(date_scheduled__lte=now)
    if tab == "planned":
        return rows.filter(statut=Statut.EN_ATTENTE, date_scheduled__gt=now).order_by("date_scheduled", "id")
    if tab == "failed":
        return rows.filter(statut__in=[Statut.ECHEC, Statut.ECHEC_PERMANENT])
    return rows


def capped_count(rows: QuerySet, cap: int = TAB_COUNT_CAP) -> int:
    return rows.order_by().values("id")[:cap].count()


@staff_required
def log(request: HttpRequest) -> HttpResponse:
    now = timezone.now()
    form, rows = filtered_log(request)
    tab = request.GET.get("tab", "activity")
    if tab not in LOG_TABS:
        tab = "activity"
    # Counts where an index answers them and the number stays small enough to mean something.
    counts = {name: capped_count(in_tab(rows, name, now)) for name in ("planned", "failed")}
    return render(
        request,
        "notifications/log.html",
        {
            "form": form,
            "tab": tab,
            "tabs": [(name, label, counts.get(name)) for name, label in LOG_TABS.items()],
            "count_cap": TAB_COUNT_CAP,
            "page": paginate(request, in_tab(rows, tab, now)),
            "now": now,
            "retryable": RETRYABLE,
            "fix_the_client": FIX_THE_CLIENT,
            "can_cancel": request.user.has_perm(CANCEL_PERMISSION),
            "export_query": request.GET.urlencode(),
        },
    )


def rendered_message(row: NotificationLog) -> dict:
    """The message as the borrower got it (or will get it): its text at the time it went or goes out."""
    from .messages import render as render_message

    try:
        message = render_message(row, now=row.date_envoi or row.date_scheduled)
    except Exception as error:  # noqa: BLE001  a broken template must not break the page that explains it
        return {"error": str(error)}
    return {"subject": message.subject, "body": message.body, "language": message.language}


@staff_required
def detail(request: HttpRequest, pk: int) -> HttpResponse:
    row = get_object_or_404(
        NotificationLog.objects.select_related("attribution__materiel", "attribution__client", "fallback_of"), pk=pk
    )
    return render(
        request,
        "notifications/detail.html",
        {
            "log": row,
            "fallbacks": row.fallbacks.order_by("id"),
            "retryable": row.statut in RETRYABLE and row.erreur_code not in FIX_THE_CLIENT,
            "fix_the_client": row.erreur_code in FIX_THE_CLIENT,
            "cancellable": row.statut in CANCELLABLE and request.user.has_perm(CANCEL_PERMISSION),
            "message": rendered_message(row),
        },
    )


@staff_required
@require_POST
def retry(request: HttpRequest, pk: int) -> HttpResponse:
    row = get_object_or_404(NotificationLog, pk=pk)
    if lifecycle.requeue([row.pk], now=timezone.now()):
        messages.success(request, _("The notification is queued to be sent again."))
    else:
        messages.warning(
            request,
            _("This notification is “%(statut)s”: only failed or cancelled ones can be retried.")
            % {"statut": row.get_statut_display()},
        )
    return redirect_back(request, request.POST.get("next", ""), reverse("notification_detail", args=[row.pk]))


@staff_required
@require_POST
def bulk(request: HttpRequest) -> HttpResponse:
    ids = [i for i in map(parse_id, request.POST.getlist("ids")) if i]
    action = request.POST.get("action")
    default = reverse("notification_log")
    if not ids:
        messages.warning(request, _("Select at least one notification first."))
    elif action == "retry":
        n = lifecycle.requeue(ids, now=timezone.now())
        skipped = len(ids) - n
        messages.success(
            request, ngettext("%(n)d notification queued again.", "%(n)d notifications queued again.", n) % {"n": n}
        )
        if skipped:
            messages.warning(
                request,
                ngettext(
                    "%(n)d was not failed or cancelled and was left alone.",
                    "%(n)d were not failed or cancelled and were left alone.",
                    skipped,
                )
                % {"n": skipped},
            )
    elif action == "cancel":
        if not request.user.has_perm(CANCEL_PERMISSION):
            raise PermissionDenied
        if request.POST.get("confirm") != "yes":
            # A second look first: cancelled messages are not sent, and nobody is told.
            rows = NotificationLog.objects.filter(id__in=ids[:MAX_CONFIRM_ROWS]).select_related(
                "attribution__materiel", "attribution__client"
            )
            return render(
                request,
                "notifications/cancel_confirm.html",
                {
                    "rows": rows.order_by("date_scheduled", "id"),
                    "cancellable": CANCELLABLE,
                    "ids": ids[:MAX_CONFIRM_ROWS],
                    "next": request.POST.get("next", ""),
                },
            )
        n = lifecycle.cancel(
            NotificationLog.objects.filter(id__in=ids),
            code="CANCELLED_BY",
            user=request.user.get_username(),
        )
        messages.success(
            request, ngettext("%(n)d notification cancelled.", "%(n)d notifications cancelled.", n) % {"n": n}
        )
    else:
        messages.error(request, _("Unknown action."))
    return redirect_back(request, request.POST.get("next", ""), default)


# The log export: translated headers and values (what the page shows), provider texts as received.
LOG_COLUMNS: list[Column] = [
    (gettext_lazy("Id"), lambda row: row.pk),
    (gettext_lazy("Loan"), lambda row: row.attribution_id),
    (gettext_lazy("Material code"), lambda row: row.attribution.materiel.code),
    (gettext_lazy("Client"), lambda row: row.attribution.client.name),
    (gettext_lazy("Type"), lambda row: row.get_type_notification_display()),
    (gettext_lazy("Channel"), lambda row: row.get_canal_display()),
    (gettext_lazy("Audience"), lambda row: row.get_audience_display()),
    (gettext_lazy("Escalation level"), lambda row: row.niveau_escalade),
    (gettext_lazy("Status"), lambda row: row.get_statut_display()),
    (gettext_lazy("Scheduled for"), lambda row: spreadsheet_datetime(row.date_scheduled)),
    (gettext_lazy("Sent at"), lambda row: spreadsheet_datetime(row.date_envoi)),
    (gettext_lazy("Attempts"), lambda row: row.nb_tentatives),
    (gettext_lazy("Recipient"), lambda row: row.destinataire),
    (gettext_lazy("Cause"), lambda row: row.get_erreur_code_display() if row.erreur_code else ""),
    (gettext_lazy("Reason"), lambda row: row.our_words),
    (gettext_lazy("Provider's message"), lambda row: row.erreur_message),
]


@staff_required
def export_csv(request: HttpRequest) -> StreamingHttpResponse | HttpResponseBadRequest:
    """The filtered log as CSV, streamed so a million rows never sit in memory.

    The filter is checked before the first byte goes out: once streaming, an error can only cut the file.
    """
    form, rows = filtered_log(request)
    if form.is_bound and not form.is_valid():
        return HttpResponseBadRequest(
            "\n".join(f"{name}: {' '.join(map(str, errors))}" for name, errors in form.errors.items()),
            content_type="text/plain; charset=utf-8",
        )
    stamp = timezone.localtime().strftime("%Y%m%d-%H%M")
    return csv_table(f"notifications-{stamp}.csv", LOG_COLUMNS, rows.iterator(chunk_size=2000))


class PeriodForm(forms.Form):
    date_from = DayField(label=gettext_lazy("From"), widget=forms.DateInput(attrs={"type": "date"}))
    date_to = DayField(label=gettext_lazy("To"), widget=forms.DateInput(attrs={"type": "date"}))

    def clean(self):
        cleaned = super().clean()
        if cleaned.get("date_from") and cleaned.get("date_to") and cleaned["date_to"] < cleaned["date_from"]:
            self.add_error("date_to", _("The end of the period is before its start."))
        return cleaned


def delivery_rates(start: datetime, end: datetime) -> list[dict]:
    """Per channel: sent, failed for good, still open, and the rate over the ones that reached an end."""
    counts = (
        NotificationLog.objects.filter(date_scheduled__gte=start, date_scheduled__lt=end)
        .order_by()
        .values("canal")
        .annotate(
            sent=Count("id", filter=Q(statut=Statut.ENVOYEE)),
            failed=Count("id", filter=Q(statut=Statut.ECHEC_PERMANENT)),
            pending=Count("id", filter=Q(statut__in=[Statut.EN_ATTENTE, Statut.EN_COURS, Statut.ECHEC])),
            cancelled=Count("id", filter=Q(statut=Statut.ANNULEE)),
        )
    )
    by_canal = {row["canal"]: row for row in counts}
    report = []
    for canal, label in Canal.choices:
        row = by_canal.get(canal, {"sent": 0, "failed": 0, "pending": 0, "cancelled": 0})
        done = row["sent"] + row["failed"]
        rate = 100 * row["sent"] / done if done else None
        target = DELIVERY_TARGETS.get(canal)
        report.append(
            {
                "canal": canal,
                "label": label,
                **{k: row[k] for k in ("sent", "failed", "pending", "cancelled")},
                "rate": rate,
                "target": target,
                "meets": None if rate is None or target is None else rate > target,
            }
        )
    return report


@staff_required
def delivery(request: HttpRequest) -> HttpResponse:
    today = timezone.localdate()
    form = PeriodForm(request.GET or {"date_from": today - timedelta(days=29), "date_to": today})
    report = []
    if form.is_valid():
        start = local_day_start(form.cleaned_data["date_from"])
        end = local_day_start(form.cleaned_data["date_to"] + timedelta(days=1))
        report = delivery_rates(start, end)
    return render(request, "notifications/delivery.html", {"form": form, "report": report})


@staff_required
def scheduler(request: HttpRequest) -> HttpResponse:
    from django_celery_beat.models import PeriodicTask

    status = scheduler_status(fresh=True)
    entry_ids = dict(
        PeriodicTask.objects.filter(name__in=[job["name"] for job in status["jobs"]]).values_list("name", "id")
    )
    for job in status["jobs"]:
        job["entry_id"] = entry_ids.get(job["name"])
    return render(
        request,
        "notifications/scheduler.html",
        {"status": status, "flower_url": settings.FLOWER_URL, "late_after": settings.NOTIFICATION_BACKLOG_MAX_MINUTES},
    )


@staff_required
@require_POST
def inbound_handled(request: HttpRequest, pk: int) -> HttpResponse:
    """A borrower's request on the dashboard (extension, "already returned") dealt with: it leaves the list."""
    message = get_object_or_404(InboundMessage.objects.select_related("attribution__materiel"), pk=pk)
    if inbound.mark_handled(message, now=timezone.now(), by=request.user):
        code = message.attribution.materiel.code if message.attribution else ""
        messages.success(request, _("Marked as dealt with: %(code)s.") % {"code": code})
    return redirect_back(request, request.POST.get("next", ""), reverse("home"))
