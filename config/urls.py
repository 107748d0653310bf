from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView

from config.health import health
from retell_config import views as retell_views

admin.site.site_header = "VoiceDesk"
admin.site.site_title = "VoiceDesk admin"
admin.site.index_title = "AI phone receptionists"

urlpatterns = [
    path("health", health, name="health"),
    path("api/schema/", SpectacularAPIView.as_view(), name="api-schema"),
    path("api/mcp/gateway", retell_views.gateway, name="mcp-gateway"),
    path("admin/retell-webhook-configuration/", include("retell_config.dashboard")),
    path("admin/", admin.site.urls),
]
