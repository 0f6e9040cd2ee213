from django.urls import path

from . import borrower_views, desk_views, views

urlpatterns = [
    path("", views.home, name="home"),
    path("loans/", views.loan_list, name="loan_list"),
    path("loans/new/", views.loan_lend, name="loan_lend"),
    path("loans/export.csv", views.loan_export, name="loan_export"),
    path("loans/overdue.csv", views.overdue_report, name="overdue_report"),
    path("loans/preview/", views.lend_preview, name="lend_preview"),
    path("loans/scan-return/", desk_views.scan_return, name="scan_return"),
    path("loans/basket/", desk_views.basket, name="basket"),
    path("loans/<int:pk>/", views.loan_detail, name="loan_detail"),
    path("loans/<int:pk>/return/", views.loan_return, name="loan_return"),
    path("loans/<int:pk>/extend/", views.loan_extend, name="loan_extend"),
    path("loans/<int:pk>/note/", views.loan_note, name="loan_note"),
    path("loans/<int:pk>/revoke-link/", views.loan_revoke_link, name="loan_revoke_link"),
    path("extension-requests/<int:pk>/decide/", views.extension_decide, name="extension_decide"),
    path("materials/", views.materiel_list, name="materiel_list"),
    path("materials/new/", views.materiel_edit, name="materiel_create"),
    path("materials/<int:pk>/", views.materiel_edit, name="materiel_edit"),
    path("clients/", views.client_list, name="client_list"),
    path("clients/new/", views.client_edit, name="client_create"),
    path("clients/lookup/", views.client_lookup, name="client_lookup"),
    path("clients/<int:pk>/", views.client_detail, name="client_detail"),
    path("clients/<int:pk>/edit/", views.client_edit, name="client_edit"),
    # The borrower's pages: anonymous, opened by the signed token of their link (assets.borrower_links).
    path("b/<str:token>/", borrower_views.page, name="borrower_page"),
    path("b/<str:token>/extend/", borrower_views.extend, name="borrower_extend"),
    path("b/<str:token>/preferences/", borrower_views.preferences, name="borrower_preferences"),
    path("unsubscribe/<str:token>/", borrower_views.unsubscribe, name="borrower_unsubscribe"),
]
