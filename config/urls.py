from django.conf import settings
from django.contrib import admin
from django.urls import include, path, re_path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from config.health import health
from config.ratelimits import admin_login_limited
from config.static import favicon
from retell_config import views as retell_views
from voice import twilio_views, views as voice_views

admin.site.site_header = "VoiceDesk"
admin.site.site_title = "VoiceDesk admin"
admin.site.index_title = "AI phone receptionists"

urlpatterns = [
    path("health", health, name="health"),
    path("favicon.ico", favicon, name="favicon"),
    path("api/schema/", SpectacularAPIView.as_view(), name="api-schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="api-schema"), name="api-docs"),
    path("api/v1/", include("api.urls")),
    path("api/mcp/gateway", retell_views.gateway, name="mcp-gateway"),
    path("admin/retell-webhook-configuration/", include("retell_config.dashboard")),
    path("admin/retell-webhook-configuration/", include("voice.tester_views")),  # webhook tester, function simulator
    path("admin/retell-webhook-configuration/", include("voice.testing_pages")),
    path("admin/monitoring/", include("monitoring.views")),
    # The admin's own login view, its posts limited per address (config.ratelimits); before the admin's routes.
    path("admin/login/", admin_login_limited(admin.site.login)),
    path("admin/", admin.site.urls),
    # Provider webhooks (voice/views.py); with or without a trailing slash.
    re_path(r"^api/retell/webhook/?$", voice_views.retell_webhook, name="retell-events"),
    re_path(r"^api/mcp/retell/custom-function/?$", voice_views.retell_webhook, name="retell-custom-function"),
    re_path(r"^api/elevenlabs/callback/?$", voice_views.elevenlabs_callback, name="elevenlabs-callback"),
    # Twilio's voice webhooks (voice/twilio_views.py); the signature covers the URL as configured, slash or not.
    re_path(r"^api/voice-agent/incoming/?$", twilio_views.twilio_incoming, name="twilio-incoming"),
    re_path(r"^api/voice-agent/status/?$", twilio_views.twilio_status, name="twilio-status"),
]

if settings.BENCH_TRIVIAL_VIEW:
    from config.bench_views import noop

    urlpatterns.append(path("bench/noop", noop, name="bench-noop"))
