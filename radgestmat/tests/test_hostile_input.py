"""No staff page answers 500 to bad input: every parameter of every page × a table of hostile values.

`PARAMETERS` is the explicit list of what each staff page reads from the query string
(and, for the POST-only pages, the form); a test below checks it against the URLconf and
against what the views really read (``request.GET`` and the forms they bind to it), so a
new page or parameter cannot be left out. The admin's parameters are read from each
registered ModelAdmin (search, pagination, ordering, date hierarchy, every list filter).

Each page must answer 200 (the value is ignored or matches nothing), 400 (refused), or
404 for an id in the path that matches nothing — never 500. Streamed downloads are read
to their end, so a failure mid-stream counts. CI runs this on SQLite and PostgreSQL.
"""

from __future__ import annotations

import ast
import inspect
from datetime import timedelta

import pytest
from django.contrib import admin
from django.test import RequestFactory
from django.urls import URLPattern, URLResolver, get_resolver, reverse
from django.utils import timezone

import assets.desk_views
import assets.views
import notifications.experiment_views
import notifications.views
from assets.models import ExtensionRequest
from assets.tests.factories import AttributionFactory
from notifications.models import Experiment, InboundMessage, NotificationLog, Variant

pytestmark = pytest.mark.django_db

HOSTILE_VALUES = {
    "NUL": "\x00",
    "NUL inside": "CAM\x00-1",
    "20 digits": "9" * 20,
    "2**63-1": str(2**63 - 1),
    "2**63": str(2**63),
    "superscript two": "²",
    "arabic-indic three": "٣",
    "10 kB": "é" * 10240,
    "10 kB of digits": "9" * 10240,
    "negative": "-1",
    "empty": "",
    "last day": "9999-12-31",
    "first day": "0001-01-01",
}

# url name: (method, query or form parameters, whether the url has an <int:pk>)
PARAMETERS: dict[str, tuple[str, tuple[str, ...], bool]] = {
    "home": ("GET", (), False),
    "loan_list": ("GET", ("state", "sort", "duree", "q", "window", "reach", "page"), False),
    "loan_export": ("GET", ("state", "sort", "duree", "q", "window", "reach"), False),
    "overdue_report": ("GET", (), False),
    "loan_lend": ("GET", ("client", "code"), False),
    "lend_preview": ("GET", ("code", "client", "due"), False),
    "scan_return": ("GET", ("last",), False),
    "basket": ("GET", (), False),
    "loan_detail": ("GET", (), True),
    "loan_return": ("GET", (), True),
    "loan_extend": ("GET", (), True),
    "loan_note": ("POST", ("note",), True),
    "loan_revoke_link": ("POST", (), True),
    "extension_decide": ("POST", ("action", "reason", "next"), True),
    "materiel_list": ("GET", ("q", "state", "page"), False),
    "materiel_create": ("GET", (), False),
    "materiel_edit": ("GET", (), True),
    "client_list": ("GET", ("q", "page"), False),
    "client_create": ("GET", (), False),
    "client_lookup": ("GET", ("q",), False),
    "client_detail": ("GET", ("page",), True),
    "client_edit": ("GET", (), True),
    "notification_log": (
        "GET",
        (
            "type_notification",
            "canal",
            "statut",
            "erreur_code",
            "date_from",
            "date_to",
            "client",
            "loan",
            "tab",
            "page",
        ),
        False,
    ),
    "notification_export": (
        "GET",
        ("type_notification", "canal", "statut", "erreur_code", "date_from", "date_to", "client", "loan"),
        False,
    ),
    "notification_bulk": ("POST", ("ids", "action", "next", "confirm"), False),
    "delivery_report": ("GET", ("date_from", "date_to"), False),
    "notification_detail": ("GET", (), True),
    "notification_retry": ("POST", ("next",), True),
    "inbound_handled": ("POST", ("next",), True),
    "scheduler": ("GET", (), False),
    "experiment_list": ("GET", (), False),
    "experiment_new": ("GET", (), False),
    "experiment_report": ("GET", (), True),
    "experiment_stop": ("POST", ("winner",), True),
}
# Pages open without a staff login: they have their own tests (login throttling, signatures, health).
NOT_STAFF_PAGES = {"login", "logout", "set_language", "healthz", "twilio_status_callback", "twilio_inbound_message"}
# The borrower's anonymous pages, opened by a token: their hostile values are in assets/tests/test_borrower_access.py.
BORROWER_PAGES = {"borrower_page", "borrower_extend", "borrower_preferences", "borrower_unsubscribe"}
ADMIN_LISTS = [model._meta.label for model in admin.site._registry]


def answers(http, method: str, url: str, data: dict) -> int:
    response = (http.post if method == "POST" else http.get)(url, data)
    if response.streaming:
        b"".join(response.streaming_content)  # a failure while streaming must show here
    return response.status_code


def page_cases(name: str, value: str, pks: dict[str, int]) -> list[tuple[str, str, dict, set[int]]]:
    """(method, url, data, accepted statuses) for each parameter of page ``name`` set to ``value``."""
    method, params, has_pk = PARAMETERS[name]
    url = reverse(name, args=[pks[name.split("_")[0]]]) if has_pk else reverse(name)
    cases = [(method, url, {param: value}, {200, 302, 400} if method == "POST" else {200, 400}) for param in params]
    if has_pk:
        # The id itself: the int converter lets any ASCII digits through to the view.
        template = reverse(name, args=[12345]).replace("12345", "{}")
        cases.append((method, template.format(value), {}, {302, 400, 404} if method == "POST" else {400, 404}))
    return cases


def admin_cases(label: str, value: str, superuser) -> list[tuple[str, str, dict, set[int]]]:
    model = next(m for m in admin.site._registry if m._meta.label == label)
    model_admin = admin.site._registry[model]
    request = RequestFactory().get("/")
    request.user = superuser
    changelist = model_admin.get_changelist_instance(request)
    params = {"q", "p", "o", "_to_field"}
    if model_admin.date_hierarchy:
        params |= {f"{model_admin.date_hierarchy}__{part}" for part in ("year", "month", "day")}
    for spec in changelist.filter_specs:
        params |= {param for param in spec.expected_parameters() if param is not None}
    url = reverse(f"admin:{model._meta.app_label}_{model._meta.model_name}_changelist")
    # A parameter the admin cannot use sends it back to the list with ?e=1 ("invalid lookup"): its 400.
    cases: list[tuple[str, str, dict, set[int]]] = [
        ("GET", url, {param: value}, {200, 302, 400}) for param in sorted(params)
    ]
    for field in model_admin.autocomplete_fields:
        # The admin's autocomplete view answers 403/404 for a model or field it does not serve.
        query = {
            "app_label": model._meta.app_label,
            "model_name": model._meta.model_name,
            "field_name": field,
            "term": "a",
        }
        cases += [
            ("GET", reverse("admin:autocomplete"), {**query, name: value}, {200, 400, 403, 404})
            for name in ("term", "page", "app_label", "model_name", "field_name")
        ]
    return cases


def make_experiment() -> Experiment:
    experiment = Experiment.objects.create(
        name="Shorter", type_notification="CREATION", canal="EMAIL", language="fr", started_at=timezone.now()
    )
    for label in "AB":
        Variant.objects.create(
            experiment=experiment,
            label=label,
            share=50,
            subject=f"[{label}] {{{{ materiel_code }}}}",
            body=f"Variant {label} for {{{{ client_name }}}}.",
        )
    return experiment


@pytest.mark.parametrize("page", [*PARAMETERS, *(f"admin {label}" for label in ADMIN_LISTS)])
def test_no_parameter_of_any_staff_page_answers_500(client, django_user_model, page):
    """GIVEN a staff page, WHEN each of its parameters is sent with each hostile value,
    THEN each answer is 200/400 (404 for an id in the path; the admin's ?e=1 redirect), never a server error."""
    loan = AttributionFactory(date_debut=timezone.now() - timedelta(hours=1))
    log = NotificationLog.objects.create(
        attribution=loan,
        type_notification="CREATION",
        canal="EMAIL",
        statut="ECHEC_PERMANENT",
        date_scheduled=timezone.now(),
    )
    experiment = make_experiment()
    pks = {
        "loan": loan.pk,
        "materiel": loan.materiel_id,
        "client": loan.client_id,
        "notification": log.pk,
        "experiment": experiment.pk,
        "inbound": InboundMessage.objects.create(
            message_sid="SM" + "0" * 32,
            canal="WHATSAPP",
            from_number="+33612345678",
            client=loan.client,
            attribution=loan,
            kind=InboundMessage.Kind.RETURNED,
            received_at=timezone.now(),
        ).pk,
        "extension": ExtensionRequest.objects.create(
            attribution=loan,
            requested_due=loan.date_retour_prevue + timedelta(days=1),
            previous_due=loan.date_retour_prevue,
            requested_at=timezone.now(),
        ).pk,
    }
    superuser = django_user_model.objects.create(username="boss", is_staff=True, is_superuser=True)
    client.force_login(superuser)
    client.raise_request_exception = False

    wrong = []
    for label, value in HOSTILE_VALUES.items():
        if page.startswith("admin "):
            cases = admin_cases(page.removeprefix("admin "), value, superuser)
        else:
            cases = page_cases(page, value, pks)
        for method, url, data, accepted in cases:
            status = answers(client, method, url, data)
            if status not in accepted:
                wrong.append(f"{label}: {method} {url} {str(data)[:60]} -> {status}")

    assert wrong == []


def view_names() -> dict[str, str]:
    """Staff url name -> view function name, from the URLconf."""
    names = {}

    def walk(patterns):
        for pattern in patterns:
            if isinstance(pattern, URLResolver):
                if pattern.app_name != "admin":
                    walk(pattern.url_patterns)
            elif isinstance(pattern, URLPattern) and pattern.name:
                names[pattern.name] = pattern.callback.__name__

    walk(get_resolver().url_patterns)
    return names


def _is_request_data(node: ast.AST, attr: str) -> bool:
    return (
        isinstance(node, ast.Attribute)
        and node.attr == attr
        and isinstance(node.value, ast.Name)
        and node.value.id == "request"
    )


def parameters_read(module, attr: str = "GET") -> dict[str, set[str]]:
    """View function -> the parameter names it reads from ``request.<attr>``, directly, through a form bound
    to it, through `paginate` ("page"), or through another function of the module it calls."""
    tree = ast.parse(inspect.getsource(module))
    functions = {node.name: node for node in tree.body if isinstance(node, ast.FunctionDef)}
    direct: dict[str, set[str]] = {}
    calls: dict[str, set[str]] = {}
    for name, function in functions.items():
        reads: set[str] = set()
        called: set[str] = set()
        for node in ast.walk(function):
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute)
                and node.func.attr in ("get", "getlist")
                and _is_request_data(node.func.value, attr)
                and node.args
                and isinstance(node.args[0], ast.Constant)
                and isinstance(node.args[0].value, str)
            ):
                reads.add(node.args[0].value)
            if isinstance(node, ast.Subscript) and _is_request_data(node.value, attr):
                assert isinstance(node.slice, ast.Constant) and isinstance(node.slice.value, str), ast.unparse(node)
                reads.add(node.slice.value)
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
                called.add(node.func.id)
                first = node.args[0] if node.args else None
                if isinstance(first, ast.BoolOp):
                    first = first.values[0]
                form = getattr(module, node.func.id, None)
                if (
                    first is not None
                    and _is_request_data(first, attr)
                    and form is not None
                    and hasattr(form, "base_fields")
                ):
                    reads |= set(form.base_fields)
                if node.func.id == "paginate" and attr == "GET":
                    reads.add("page")
        direct[name], calls[name] = reads, called

    def closure(name: str, seen: set[str]) -> set[str]:
        result = set(direct.get(name, ()))
        for callee in calls.get(name, ()):
            if callee in functions and callee not in seen:
                result |= closure(callee, seen | {callee})
        return result

    return {name: closure(name, {name}) for name in functions}


def test_the_parameter_table_lists_every_staff_page_and_every_parameter_its_view_reads():
    views = view_names()
    assert set(views) - NOT_STAFF_PAGES - BORROWER_PAGES - {"admin"} == set(PARAMETERS)
    reads = {
        **{name: set() for name in views.values()},
        **{
            k: v
            for module in (assets.views, assets.desk_views, notifications.views, notifications.experiment_views)
            for k, v in parameters_read(module).items()
        },
    }
    posted = {
        k: v
        for module in (assets.views, assets.desk_views, notifications.views, notifications.experiment_views)
        for k, v in parameters_read(module, "POST").items()
    }
    for url_name, (method, params, _has_pk) in PARAMETERS.items():
        expected = posted[views[url_name]] if method == "POST" else reads[views[url_name]]
        assert set(params) == expected, url_name


def test_a_nul_in_a_search_is_a_400_page_that_says_why(staff_client, settings):
    settings.LANGUAGE_CODE = "en"
    response = staff_client.get(reverse("loan_list"), {"q": "CAM\x00"})

    assert response.status_code == 400
    assert "NUL character" in response.content.decode()
