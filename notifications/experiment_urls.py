from django.urls import path

from . import experiment_views as views

urlpatterns = [
    path("experiments/", views.experiment_list, name="experiment_list"),
    path("experiments/new/", views.experiment_new, name="experiment_new"),
    path("experiments/<int:pk>/", views.experiment_report, name="experiment_report"),
    path("experiments/<int:pk>/stop/", views.experiment_stop, name="experiment_stop"),
]
