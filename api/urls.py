"""The one router of the REST API (/api/v1/): each app's api.py gives its viewsets."""

from django.http import JsonResponse
from django.urls import re_path
from rest_framework.routers import DefaultRouter

from appointments.api import AppointmentViewSet, ClosureViewSet, ServiceViewSet
from audit.api import DeliveryViewSet
from retell_config.api import AgentViewSet, CustomFunctionViewSet, PromptVersionViewSet, SyncRunViewSet
from tenants.api import CompanyViewSet
from voice.api import CallViewSet, ReplayableWebhookReceiptViewSet


class Router(DefaultRouter):
    include_root_view = False


router = Router()
router.register("companies", CompanyViewSet, basename="company")
router.register("agents", AgentViewSet, basename="agent")
router.register("custom-functions", CustomFunctionViewSet, basename="custom-function")
router.register("prompt-versions", PromptVersionViewSet, basename="prompt-version")
router.register("sync-runs", SyncRunViewSet, basename="sync-run")
router.register("services", ServiceViewSet, basename="service")
router.register("closures", ClosureViewSet, basename="closure")
router.register("appointments", AppointmentViewSet, basename="appointment")
router.register("calls", CallViewSet, basename="call")
router.register("webhook-receipts", ReplayableWebhookReceiptViewSet, basename="webhook-receipt")
router.register("deliveries", DeliveryViewSet, basename="delivery")



def not_found(request, rest: str = ""):
    """Any other path under /api/v1/ (a typo, a missing trailing slash): 404 in the error shape."""
    from .errors import error_body

    return JsonResponse(error_body("not_found", "No such endpoint; the operations are listed at /api/schema/ "
                                                "(paths end with a slash)."), status=404)


app_name = "api"
urlpatterns = [*router.urls, re_path(r"^(?P<rest>.*)$", not_found, name="not-found")]
