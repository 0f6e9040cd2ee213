from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path

from notifications.webhooks import twilio_inbound_message, twilio_status_callback
from radgestmat.health import healthz
from radgestmat.input import use_bounded_changelists
from radgestmat.login import ThrottledAdminAuthenticationForm, ThrottledAuthenticationForm

admin.site.login_form = ThrottledAdminAuthenticationForm
use_bounded_changelists(admin.site)

urlpatterns = [
    path("login/", auth_views.LoginView.as_view(authentication_form=ThrottledAuthenticationForm), name="login"),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("i18n/", include("django.conf.urls.i18n")),
    path("healthz", healthz, name="healthz"),
    path("webhooks/twilio/status/", twilio_status_callback, name="twilio_status_callback"),
    path("webhooks/twilio/inbound/", twilio_inbound_message, name="twilio_inbound_message"),
    path("admin/", admin.site.urls),
    path("", include("assets.urls")),
    path("", include("notifications.urls")),
]
