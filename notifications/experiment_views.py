"""Staff pages for message experiments: the list, a new experiment, its report, and stopping it."""

from __future__ import annotations

from django import forms
from django.contrib import messages
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.forms import inlineformset_factory
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from django.views.decorators.http import require_POST

from radgestmat.input import parse_id
from radgestmat.staff import staff_required

from . import experiments
from .models import Experiment, Variant

PERMISSION = "notifications.run_experiment"
LABELS = "ABCDEF"


class ExperimentForm(forms.ModelForm):
    class Meta:
        model = Experiment
        fields = ["name", "type_notification", "canal", "language"]

    def clean(self) -> dict:
        data = super().clean() or {}
        key = {name: data.get(name) for name in ("type_notification", "canal", "language")}
        if all(key.values()) and Experiment.objects.filter(status=Experiment.Status.RUNNING, **key).exists():
            raise ValidationError(_("An experiment is already running for this message: stop it first."))
        return data


class VariantForm(forms.ModelForm):
    class Meta:
        model = Variant
        fields = ["share", "subject", "body"]
        widgets = {"body": forms.Textarea(attrs={"rows": 5, "cols": 60})}
        help_texts = {
            "share": gettext_lazy("Relative weight: 50 and 50 split the loans evenly."),
            "subject": gettext_lazy("Email only. Template syntax, e.g. {{ materiel_code }}."),
            "body": gettext_lazy("Template syntax, the same variables as a message override."),
        }


VariantFormSet = inlineformset_factory(
    Experiment, Variant, form=VariantForm, extra=1, min_num=2, validate_min=True, max_num=len(LABELS), can_delete=False
)


@staff_required(perm=PERMISSION)
def experiment_list(request: HttpRequest) -> HttpResponse:
    rows = Experiment.objects.select_related("winner").order_by("-started_at", "-id")
    return render(request, "notifications/experiments/list.html", {"experiments": rows})


@staff_required(perm=PERMISSION)
def experiment_new(request: HttpRequest) -> HttpResponse:
    form = ExperimentForm(request.POST or None)
    # The variants are validated against the message chosen above (their text is checked as its override would be).
    parent = form.instance if form.is_bound and form.is_valid() else Experiment()
    formset = VariantFormSet(request.POST or None, instance=parent, prefix="variants")
    if request.method == "POST" and form.is_valid() and formset.is_valid():
        experiment = form.save(commit=False)
        experiment.created_by = request.user
        experiment.started_at = timezone.now()
        try:
            with transaction.atomic():
                experiment.save()
                filled = [f for f in formset.forms if f.has_changed()]
                for label, variant_form in zip(LABELS, filled, strict=False):
                    variant = variant_form.save(commit=False)
                    variant.experiment, variant.label = experiment, label
                    variant.save()
        except IntegrityError:
            form.add_error(None, _("An experiment is already running for this message: stop it first."))
        else:
            messages.success(request, _("Experiment “%(name)s” started.") % {"name": experiment.name})
            return redirect("experiment_report", pk=experiment.pk)
    return render(
        request,
        "notifications/experiments/form.html",
        {"form": form, "formset": formset, "variant_forms": list(zip(LABELS, formset.forms, strict=False))},
    )


@staff_required(perm=PERMISSION)
def experiment_report(request: HttpRequest, pk: int) -> HttpResponse:
    experiment = get_object_or_404(Experiment.objects.select_related("winner"), pk=pk)
    report = experiments.report(experiment, now=timezone.now())
    return render(request, "notifications/experiments/report.html", {"experiment": experiment, "report": report})


@require_POST
@staff_required(perm=PERMISSION)
def experiment_stop(request: HttpRequest, pk: int) -> HttpResponse:
    experiment = get_object_or_404(Experiment, pk=pk)
    choice = request.POST.get("winner", "")
    winner = None
    if choice:
        variant_id = parse_id(choice)
        winner = experiment.variants.filter(pk=variant_id).first() if variant_id is not None else None
        if winner is None:
            messages.error(request, _("Choose one of this experiment's variants, or none."))
            return redirect("experiment_report", pk=pk)
    try:
        experiments.stop(experiment, now=timezone.now(), winner=winner)
    except experiments.AlreadyStopped:
        messages.error(request, _("This experiment was already stopped."))
    except ValidationError as error:
        messages.error(request, " ".join(error.messages))
    else:
        if winner is not None:
            messages.success(
                request,
                _("Experiment stopped: variant %(label)s is now the message for everyone.") % {"label": winner.label},
            )
        else:
            messages.success(request, _("Experiment stopped: the message is back to its usual text."))
    return redirect("experiment_report", pk=pk)
