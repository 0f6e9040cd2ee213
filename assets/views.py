"""Staff pages for the front desk: dashboard, loans, materials, clients.

Views look up objects, call `assets.services` with `now`, and put its errors on the form.
"""

from __future__ import annotations

from django.conf import settings
from django.contrib import messages
from django.core.exceptions import ValidationError
from django.db.models import Q, QuerySet
from django.http import HttpRequest, HttpResponse, JsonResponse, StreamingHttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.formats import date_format
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from django.views.decorators.http import require_GET, require_POST

from notifications.api import (
    NOT_CONFIGURED,
    NotificationLog,
    TypeNotification,
    borrower_messages_of,
    preferences_of,
    reachability,
    reachable_loans,
    recent_borrower_requests,
    scheduler_status,
)
from radgestmat.csv_export import Column, csv_table, spreadsheet_datetime
from radgestmat.input import parse_id
from radgestmat.staff import paginate, redirect_back, staff_required

from . import borrower_links, services
from . import dashboard as dash
from .forms import (
    ClientForm,
    ExtendForm,
    ExtensionDecisionForm,
    LendForm,
    MaterielForm,
    NoteForm,
    PreferencesForm,
    ReturnForm,
    client_label,
    client_search,
    find_client,
    find_materiel,
)
from .lend_checks import check_borrower
from .models import (
    Attribution,
    Client,
    Duree,
    ExtensionRequest,
    LoanEvent,
    Materiel,
    classify_duree,
    elapsed,
    extensions_of,
)
from .templatetags.staff_ui import span

LOAN_SORTS = {
    "due": ("date_retour_prevue", "id"),
    "-due": ("-date_retour_prevue", "-id"),
    "start": ("date_debut", "id"),
    "-start": ("-date_debut", "-id"),
    "material": ("materiel__code", "id"),
    "client": ("client__name", "id"),
}
LOAN_STATES = ("open", "overdue", "returned", "all")
# The dashboard's cards open the list narrowed to their time window (`dashboard.window_filter`).
LOAN_WINDOWS = {
    "due_2h": gettext_lazy("due in the next 2 h"),
    "due_today": gettext_lazy("still due today"),
    "returned_today": gettext_lazy("returned today"),
}


@staff_required
def home(request: HttpRequest) -> HttpResponse:
    now = timezone.now()
    status = scheduler_status()
    alerts = dash.alerts(now)
    grace_until = dash.grace_until(now)
    # Sending stopped, in desk words; what exactly is wrong is for the scheduler page.
    not_sending = bool(alerts["stuck"]) or not status["healthy"]
    context = {
        "now": now,
        **dash.loan_summary(now),
        **dash.notification_week(now),
        "alerts": alerts,
        "starting_up": not_sending and grace_until is not None,
        "grace_until": grace_until,
        "not_sending": not_sending and grace_until is None,
        "borrower_requests": recent_borrower_requests(now),
        "pending_extensions": dash.pending_extensions(),
        "scheduler": status,
    }
    return render(request, "assets/dashboard.html", context)


# --- Loans ------------------------------------------------------------------


def filtered_loans(request: HttpRequest, now) -> tuple[dict, QuerySet[Attribution]]:
    """The loans the list's tabs and filters select (the list page and its CSV export)."""
    state = request.GET.get("state", "open")
    if state not in LOAN_STATES:
        state = "open"
    sort = request.GET.get("sort", "due" if state in ("open", "overdue") else "-start")
    if sort not in LOAN_SORTS:
        sort = "due"
    duree = request.GET.get("duree", "")
    q = request.GET.get("q", "").strip()
    window = request.GET.get("window", "")
    if window not in LOAN_WINDOWS:
        window = ""
    unreachable = request.GET.get("reach") == "none"

    loans = Attribution.objects.select_related("materiel", "client")
    if state == "open":
        loans = loans.open()
    elif state == "overdue":
        loans = loans.overdue(now)
    elif state == "returned":
        loans = loans.returned()
    if duree in Duree.values:
        loans = loans.filter(duree=duree)
    if window:
        loans = loans.filter(dash.window_filter(window, now))
    if unreachable:
        loans = loans.exclude(reachable_loans())
    exact_code = Materiel.objects.by_code(q).values_list("id", flat=True).first() if q else None
    if exact_code:
        # A scanned or typed code: that material's loans, straight from the index.
        loans = loans.filter(materiel_id=exact_code)
    elif q:
        # Match the small tables first, then take their loans by index: no text scan of the loans.
        loans = loans.filter(
            Q(client_id__in=Client.objects.filter(client_search(q)).values("id"))
            | Q(materiel_id__in=Materiel.objects.filter(Q(code__icontains=q) | Q(name__icontains=q)).values("id"))
        )
    chosen = {"state": state, "sort": sort, "duree": duree, "q": q, "window": window, "unreachable": unreachable}
    return chosen, loans.order_by(*LOAN_SORTS[sort])


@staff_required
def loan_list(request: HttpRequest) -> HttpResponse:
    now = timezone.now()
    chosen, loans = filtered_loans(request, now)
    state, sort, duree, q = chosen["state"], chosen["sort"], chosen["duree"], chosen["q"]
    page = paginate(request, loans)
    return render(
        request,
        "assets/loan_list.html",
        {
            "page": page,
            "now": now,
            "state": state,
            "states": [
                ("open", _("Out")),
                ("overdue", _("Overdue")),
                ("returned", _("Returned")),
                ("all", _("All")),
            ],
            "sort": sort,
            "duree": duree,
            "durees": Duree.choices,
            "q": q,
            "window": chosen["window"],
            "window_label": LOAN_WINDOWS.get(chosen["window"], ""),
            "export_query": request.GET.urlencode(),
            "unreachable": chosen["unreachable"],
        },
    )


def late_by(loan: Attribution, now) -> str:
    end = loan.date_retour_effective or now
    return span(elapsed(loan.date_retour_prevue, end)) if end > loan.date_retour_prevue else ""


def loan_status(loan: Attribution, now) -> str:
    if not loan.is_open:
        return _("Returned")
    return _("Overdue") if loan.is_overdue(now) else _("Out")


def loan_columns(now) -> list[Column]:
    return [
        (gettext_lazy("Loan"), lambda loan: loan.pk),
        (gettext_lazy("Material code"), lambda loan: loan.materiel.code),
        (gettext_lazy("Material"), lambda loan: loan.materiel.name),
        (gettext_lazy("Client"), lambda loan: loan.client.name),
        (gettext_lazy("Organisation"), lambda loan: loan.client.organisation),
        (gettext_lazy("Start"), lambda loan: spreadsheet_datetime(loan.date_debut)),
        (gettext_lazy("Due"), lambda loan: spreadsheet_datetime(loan.date_retour_prevue)),
        (gettext_lazy("Returned at"), lambda loan: spreadsheet_datetime(loan.date_retour_effective)),
        (gettext_lazy("Duration class"), lambda loan: loan.get_duree_display()),
        (gettext_lazy("Status"), lambda loan: loan_status(loan, now)),
        (gettext_lazy("Late by"), lambda loan: late_by(loan, now)),
    ]


@staff_required
def loan_export(request: HttpRequest) -> StreamingHttpResponse:
    """The loans of the list's tab and filters, as a spreadsheet."""
    now = timezone.now()
    _chosen, loans = filtered_loans(request, now)
    stamp = timezone.localtime(now).strftime("%Y%m%d-%H%M")
    return csv_table(f"loans-{stamp}.csv", loan_columns(now), loans.iterator(chunk_size=2000))


@staff_required
def overdue_report(request: HttpRequest) -> StreamingHttpResponse:
    """Every loan late now, the latest first, with whom to call: what the desk chases each morning."""
    now = timezone.now()
    loans = (
        Attribution.objects.overdue(now)
        .select_related("materiel", "client", "created_by")
        .order_by("date_retour_prevue", "id")
    )
    columns = [
        *loan_columns(now)[:7],
        (gettext_lazy("Late by"), lambda loan: late_by(loan, now)),
        (gettext_lazy("Days late"), lambda loan: elapsed(loan.date_retour_prevue, now).days),
        (gettext_lazy("Email"), lambda loan: loan.client.email),
        (gettext_lazy("Phone"), lambda loan: loan.client.phone),
        (gettext_lazy("Lent by"), lambda loan: loan.created_by.get_username() if loan.created_by else ""),
    ]
    stamp = timezone.localtime(now).strftime("%Y%m%d-%H%M")
    return csv_table(f"overdue-{stamp}.csv", columns, loans.iterator(chunk_size=2000))


@staff_required
def loan_lend(request: HttpRequest) -> HttpResponse:
    check = None
    if request.method == "POST":
        form = LendForm(request.POST)
        if form.is_valid():
            data = form.cleaned_data
            now = timezone.now()
            check = check_borrower(data["client"], now)
            if check.refusal:
                form.add_error("client", check.refusal)
            elif not check.warnings or data["confirm"] == str(data["client"].pk):
                try:
                    loan = services.lend(
                        materiel=data["materiel"],
                        client=data["client"],
                        due=data["date_retour_prevue"],
                        now=now,
                        by=request.user,
                        notes=data["notes"],
                    )
                except ValidationError as exc:
                    form.add_error(None, exc)
                else:
                    messages.success(
                        request,
                        _("%(code)s is lent to %(client)s.") % {"code": loan.materiel.code, "client": loan.client.name},
                    )
                    return redirect("loan_detail", pk=loan.pk)
    else:
        initial = {}
        client_id = parse_id(request.GET.get("client"))
        client = Client.objects.filter(pk=client_id).first() if client_id else None
        if client:
            initial["client"] = client_label(client)
            check = check_borrower(client, timezone.now())
        if request.GET.get("code"):
            initial["materiel"] = request.GET["code"]
        form = LendForm(initial=initial)
    return render(request, "assets/loan_lend.html", {"form": form, "durees": Duree.choices, "check": check})


@staff_required
@require_GET
def lend_preview(request: HttpRequest) -> JsonResponse:
    """What the lend form shows as staff type: the material behind a code, the class of a due date."""
    now = timezone.now()
    result: dict = {}
    code = request.GET.get("code", "").strip()
    if code:
        try:
            materiel = find_materiel(code)
        except ValidationError as exc:
            result["materiel"] = {"ok": False, "message": exc.messages[0]}
        else:
            busy = materiel.state != Materiel.State.AVAILABLE
            result["materiel"] = {
                "ok": not busy,
                "code": materiel.code,
                "message": f"{materiel.name} — {materiel.get_state_display()}",
            }
    client_text = request.GET.get("client", "").strip()
    if client_text:
        result["client"] = client_preview(client_text)
    due = request.GET.get("due", "")
    if due:
        form = ExtendForm({"date_retour_prevue": due})
        if form.is_valid():
            value = form.cleaned_data["date_retour_prevue"]
            if value <= now:
                result["duree"] = {"ok": False, "message": _("The due date must be after the start of the loan.")}
            else:
                duree = classify_duree(now, value)
                result["duree"] = {"ok": True, "value": duree, "message": Duree(duree).label}
    return JsonResponse(result)


def client_preview(text: str) -> dict:
    """Which channels reach the client behind ``text``, for the lend form's live preview."""
    try:
        client = find_client(text)
    except ValidationError:
        return {"ok": True, "message": ""}  # still typing: the form says what is wrong on submit
    check = check_borrower(client, timezone.now())
    parts = [
        f"{r.label} ✓" if r.reached else r.reason if r.obstacle == NOT_CONFIGURED else f"{r.label}: {r.reason}"
        for r in check.reach.channels_for(TypeNotification.CREATION)
    ]
    lines = [_("Confirmation: %(channels)s") % {"channels": " · ".join(parts)}, *check.warnings]
    if check.refusal:
        lines.append(check.refusal)
    return {"ok": not (check.warnings or check.refusal), "message": " — ".join(lines)}


@staff_required
@require_GET
def client_lookup(request: HttpRequest) -> JsonResponse:
    q = request.GET.get("q", "").strip()
    clients: list[Client] = []
    if len(q) >= 2:
        clients = list(Client.objects.filter(client_search(q)).order_by("name")[:15])
    return JsonResponse({"clients": [client_label(c) for c in clients]})


def loan_timeline(loan: Attribution):
    return (
        NotificationLog.objects.filter(attribution=loan).select_related("fallback_of").order_by("date_scheduled", "id")
    )


def loan_history(loan: Attribution) -> list[LoanEvent]:
    return list(LoanEvent.objects.filter(attribution=loan).select_related("by").order_by("at", "id"))


@staff_required
def loan_detail(request: HttpRequest, pk: int) -> HttpResponse:
    loan = get_object_or_404(Attribution.objects.select_related("materiel", "client", "created_by"), pk=pk)
    now = timezone.now()
    history = loan_history(loan)
    return render(
        request,
        "assets/loan_detail.html",
        {
            "loan": loan,
            "now": now,
            "overdue": loan.is_overdue(now),
            "remaining": loan.time_remaining(now),
            "timeline": loan_timeline(loan),
            "history": history,
            "extensions": sum(event.is_extension for event in history),
            "extension_max": settings.EXTENSION_MAX_PER_LOAN,
            "note_form": NoteForm(),
            "extension_requests": loan.extension_requests.select_related("decided_by").order_by("-requested_at")[:20],
            "decision_form": ExtensionDecisionForm(),
            "borrower_url": borrower_links.borrower_url(loan) if borrower_links.link_is_open(loan, now) else "",
            "borrower_messages": borrower_messages_of(loan),
        },
    )


@staff_required
@require_POST
def loan_note(request: HttpRequest, pk: int) -> HttpResponse:
    loan = get_object_or_404(Attribution, pk=pk)
    form = NoteForm(request.POST)
    if form.is_valid():
        try:
            services.add_note(loan, text=form.cleaned_data["note"], now=timezone.now(), by=request.user)
        except ValidationError as exc:
            messages.error(request, " ".join(exc.messages))
        else:
            messages.success(request, _("Note added to the loan's history."))
    else:
        messages.error(request, " ".join(str(e) for errors in form.errors.values() for e in errors))
    return redirect("loan_detail", pk=loan.pk)


@staff_required
@require_POST
def extension_decide(request: HttpRequest, pk: int) -> HttpResponse:
    extension = get_object_or_404(ExtensionRequest.objects.select_related("attribution__materiel"), pk=pk)
    loan_page = reverse("loan_detail", args=[extension.attribution_id])
    form = ExtensionDecisionForm(request.POST)
    if not form.is_valid():
        messages.error(request, _("Choose to approve or to refuse the request."))
        return redirect_back(request, request.POST.get("next", ""), loan_page)
    now = timezone.now()
    try:
        if form.cleaned_data["action"] == "approve":
            services.approve_extension(extension, now=now, by=request.user)
            messages.success(
                request,
                _("Extension granted: %(code)s is now due %(due)s.")
                % {
                    "code": extension.attribution.materiel.code,
                    "due": date_format(timezone.localtime(extension.requested_due), "SHORT_DATETIME_FORMAT"),
                },
            )
        else:
            services.refuse_extension(extension, reason=form.cleaned_data["reason"], now=now, by=request.user)
            messages.success(request, _("Extension refused: the borrower is told why."))
    except ValidationError as error:
        for message in error.messages:
            messages.error(request, message)
    return redirect_back(request, request.POST.get("next", ""), loan_page)


@staff_required
@require_POST
def loan_revoke_link(request: HttpRequest, pk: int) -> HttpResponse:
    loan = get_object_or_404(Attribution, pk=pk)
    services.revoke_borrower_link(loan)
    messages.success(request, _("The borrower's link no longer works. The next message will carry a new one."))
    return redirect("loan_detail", pk=loan.pk)


@staff_required
def loan_return(request: HttpRequest, pk: int) -> HttpResponse:
    loan = get_object_or_404(Attribution.objects.select_related("materiel", "client"), pk=pk)
    form = ReturnForm(request.POST if request.method == "POST" else None)
    if request.method == "POST" and form.is_valid():
        now = timezone.now()
        try:
            services.record_return(
                loan, now=now, returned_at=form.cleaned_data["date_retour_effective"] or now, by=request.user
            )
        except ValidationError as exc:
            form.add_error(None, exc)
        else:
            messages.success(request, _("%(code)s is back.") % {"code": loan.materiel.code})
            return redirect_back(request, request.POST.get("next", ""), reverse("loan_detail", args=[loan.pk]))
    return render(request, "assets/loan_return.html", {"loan": loan, "form": form, "now": timezone.now()})


@staff_required
def loan_extend(request: HttpRequest, pk: int) -> HttpResponse:
    loan = get_object_or_404(Attribution.objects.select_related("materiel", "client"), pk=pk)
    form = ExtendForm(
        request.POST if request.method == "POST" else None, initial={"date_retour_prevue": loan.date_retour_prevue}
    )
    if request.method == "POST" and form.is_valid():
        try:
            services.extend(loan, new_due=form.cleaned_data["date_retour_prevue"], now=timezone.now(), by=request.user)
        except ValidationError as exc:
            form.add_error(None, exc)
        else:
            loan.refresh_from_db()
            messages.success(
                request,
                _("%(code)s is now due %(due)s.")
                % {
                    "code": loan.materiel.code,
                    "due": date_format(timezone.localtime(loan.date_retour_prevue), "SHORT_DATETIME_FORMAT"),
                },
            )
            return redirect("loan_detail", pk=loan.pk)
    return render(
        request,
        "assets/loan_extend.html",
        {
            "loan": loan,
            "form": form,
            "now": timezone.now(),
            "extensions": extensions_of(loan.pk).count(),
            "extension_max": settings.EXTENSION_MAX_PER_LOAN,
            "beyond_limit": services.may_extend_beyond_limit(request.user),
        },
    )


# --- Materials --------------------------------------------------------------


@staff_required
def materiel_list(request: HttpRequest) -> HttpResponse:
    q = request.GET.get("q", "").strip()
    state = request.GET.get("state", "")
    materiels = Materiel.objects.order_by("code")
    if q:
        materiels = materiels.filter(Q(code__icontains=q) | Q(name__icontains=q) | Q(category__icontains=q))
    if state in Materiel.State.values:
        materiels = materiels.filter(state=state)
    return render(
        request,
        "assets/materiel_list.html",
        {"page": paginate(request, materiels), "q": q, "state": state, "states": Materiel.State.choices},
    )


@staff_required
def materiel_edit(request: HttpRequest, pk: int | None = None) -> HttpResponse:
    materiel = get_object_or_404(Materiel, pk=pk) if pk else None
    form = MaterielForm(request.POST if request.method == "POST" else None, instance=materiel)
    if request.method == "POST" and form.is_valid():
        materiel = form.save()
        messages.success(request, _("Material %(code)s saved.") % {"code": materiel.code})
        return redirect("materiel_list")
    loans = materiel.attributions.select_related("client").order_by("-date_debut")[:20] if materiel else []
    return render(request, "assets/materiel_form.html", {"form": form, "materiel": materiel, "loans": loans})


# --- Clients ----------------------------------------------------------------


@staff_required
def client_list(request: HttpRequest) -> HttpResponse:
    q = request.GET.get("q", "").strip()
    clients = Client.objects.order_by("name", "id")
    if q:
        clients = clients.filter(client_search(q))
    return render(request, "assets/client_list.html", {"page": paginate(request, clients), "q": q})


@staff_required
def client_edit(request: HttpRequest, pk: int | None = None) -> HttpResponse:
    client = get_object_or_404(Client, pk=pk) if pk else None
    form = ClientForm(request.POST if request.method == "POST" else None, instance=client)
    if request.method == "POST" and form.is_valid():
        client = form.save()
        messages.success(request, _("Client %(name)s saved.") % {"name": client.name})
        return redirect("client_detail", pk=client.pk)
    return render(request, "assets/client_form.html", {"form": form, "client": client})


@staff_required
def client_detail(request: HttpRequest, pk: int) -> HttpResponse:
    client = get_object_or_404(Client, pk=pk)
    prefs = preferences_of(client)
    form = PreferencesForm(request.POST if request.method == "POST" else None, instance=prefs)
    if request.method == "POST" and form.is_valid():
        prefs = form.save(commit=False)
        prefs.client = client
        prefs.save()
        messages.success(request, _("Notification preferences of %(name)s saved.") % {"name": client.name})
        return redirect(reverse("client_detail", args=[client.pk]))
    loans = client.attributions.select_related("materiel").order_by("-date_debut")
    return render(
        request,
        "assets/client_detail.html",
        {
            "client": client,
            "form": form,
            "page": paginate(request, loans),
            "now": timezone.now(),
            "reach": reachability(client),
        },
    )
