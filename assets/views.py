from __future__ import annotations

from django.contrib.admin.views.decorators import staff_member_required
from django.shortcuts import render
from django.utils import timezone

from .models import Attribution, Duree


@staff_member_required
def home(request):
    now = timezone.now()
    open_loans = Attribution.objects.open()
    context = {
        "now": now,
        "counts": {
            label: open_loans.filter(duree=value).count() for value, label in Duree.choices
        },
        "overdue": open_loans.overdue(now).select_related("materiel", "client").order_by("date_retour_prevue")[:50],
    }
    return render(request, "assets/home.html", context)
