"""The front desk's fast paths: scan to return, and a basket of several items lent to one borrower at once.

Both work with a USB scanner (it types the code, then Enter) and without JavaScript.
"""

from __future__ import annotations

from datetime import timedelta

from django.conf import settings
from django.contrib import messages
from django.core.exceptions import ValidationError
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.translation import gettext as _

from radgestmat.input import parse_id
from radgestmat.staff import staff_required

from . import services
from .dashboard import local_midnight
from .forms import BasketLendForm, ScanForm
from .lend_checks import check_borrower
from .models import Attribution, Materiel

RECENT_RETURNS = 10
BASKET_SESSION_KEY = "lend_basket"


@staff_required
def scan_return(request: HttpRequest) -> HttpResponse:
    """A code + Enter records the return at once; the page then shows what came back, from whom, how late."""
    now = timezone.now()
    form = ScanForm(request.POST if request.method == "POST" else None)
    if request.method == "POST" and form.is_valid():
        materiel = form.cleaned_data["code"]
        loan = Attribution.objects.open().filter(materiel=materiel).first()
        if loan is None:
            form.add_error(
                "code",
                _("%(code)s is not out (%(state)s): there is nothing to return.")
                % {"code": materiel.code, "state": materiel.get_state_display()},
            )
        else:
            try:
                services.record_return(loan, now=now, by=request.user)
            except ValidationError as exc:
                form.add_error(None, exc)
            else:
                return redirect(f"{reverse('scan_return')}?last={loan.pk}")
    last_id = parse_id(request.GET.get("last"))
    returned = (
        Attribution.objects.returned().select_related("materiel", "client").filter(pk=last_id).first()
        if last_id
        else None
    )
    today = local_midnight(timezone.localtime(now).date())
    recent = (
        Attribution.objects.filter(date_retour_effective__gte=today)
        .select_related("materiel", "client")
        .order_by("-date_retour_effective", "-id")[:RECENT_RETURNS]
    )
    return render(
        request,
        "assets/scan_return.html",
        {"form": form, "returned": returned, "late_by": lateness(returned), "recent": recent, "now": now},
    )


def lateness(loan: Attribution | None) -> timedelta | None:
    if loan is None or loan.date_retour_effective is None or loan.date_retour_effective <= loan.date_retour_prevue:
        return None
    return loan.date_retour_effective - loan.date_retour_prevue


def basket_ids(request: HttpRequest) -> list[int]:
    stored = request.session.get(BASKET_SESSION_KEY, [])
    return [i for i in stored if isinstance(i, int)] if isinstance(stored, list) else []


def basket_items(ids: list[int]) -> list[dict]:
    """The basket's materials in scan order, each with its open loan when it is already out (two queries)."""
    materiels = {m.pk: m for m in Materiel.objects.filter(pk__in=ids)}
    busy = {
        loan.materiel_id: loan
        for loan in Attribution.objects.open().filter(materiel_id__in=ids).select_related("client")
    }
    items = []
    for pk in ids:
        if pk in materiels:
            materiel = materiels[pk]
            loan = busy.get(pk)
            problem = ""
            if loan is not None:
                loan.materiel = materiel
                problem = services.already_out_message(loan)
            elif materiel.state == Materiel.State.OUT_OF_SERVICE:
                problem = _("%(code)s is out of service and cannot be lent.") % {"code": materiel.code}
            items.append({"materiel": materiel, "busy_loan": loan, "problem": problem})
    return items


@staff_required
def basket(request: HttpRequest) -> HttpResponse:
    """Scan item after item, then one borrower and one due date for all: several loans in one transaction."""
    ids = basket_ids(request)
    check = None
    action = request.POST.get("action", "") if request.method == "POST" else ""
    if request.POST.get("confirm"):
        action = "lend"  # the "Lend anyway" button
    remove = parse_id(request.POST.get("remove")) if request.method == "POST" else None
    kept = {name: request.POST.get(name, "") for name in ("client", "date_retour_prevue", "notes")}
    scan = ScanForm()
    lend_form = BasketLendForm(initial=kept)
    if remove is not None:
        ids = [i for i in ids if i != remove]
    elif action == "clear":
        ids = []
    elif action == "add" and request.POST.get("code", "").strip():
        scan = ScanForm(request.POST)
        if scan.is_valid():
            materiel = scan.cleaned_data["code"]
            if materiel.pk in ids:
                scan.add_error("code", _("%(code)s is already in the basket.") % {"code": materiel.code})
            elif len(ids) >= settings.LEND_BASKET_MAX:
                scan.add_error("code", _("A basket holds at most %(n)d items.") % {"n": settings.LEND_BASKET_MAX})
            else:
                try:
                    services.validate_lend(materiel=materiel, client=None, start=timezone.now(), due=None)
                except ValidationError as exc:
                    scan.add_error("code", exc.message_dict["materiel"])
                    scan.busy_loan = services.open_loan_of(materiel)
                else:
                    ids.append(materiel.pk)
                    scan = ScanForm()  # ready for the next code
    elif action == "lend":
        lend_form = BasketLendForm(request.POST)
        valid = lend_form.is_valid()
        if not ids:
            lend_form.add_error(None, _("Scan at least one item first."))
            valid = False
        if valid:
            data = lend_form.cleaned_data
            now = timezone.now()
            check = check_borrower(data["client"], now)
            if check.refusal:
                lend_form.add_error("client", check.refusal)
            elif not check.warnings or data["confirm"] == str(data["client"].pk):
                items = basket_items(ids)
                try:
                    loans = services.lend_several(
                        materiels=[item["materiel"] for item in items],
                        client=data["client"],
                        due=data["date_retour_prevue"],
                        now=now,
                        by=request.user,
                        notes=data["notes"],
                    )
                except ValidationError as exc:
                    for field, errors in exc.message_dict.items():
                        lend_form.add_error(field if field in lend_form.fields else None, errors)
                else:
                    request.session[BASKET_SESSION_KEY] = []
                    messages.success(
                        request,
                        _("Lent to %(client)s: %(codes)s.")
                        % {"client": data["client"].name, "codes": ", ".join(loan.materiel.code for loan in loans)},
                    )
                    return redirect("client_detail", pk=data["client"].pk)
    if request.method == "POST":
        request.session[BASKET_SESSION_KEY] = ids
    return render(
        request,
        "assets/basket.html",
        {"scan": scan, "form": lend_form, "items": basket_items(ids), "check": check, "max": settings.LEND_BASKET_MAX},
    )
