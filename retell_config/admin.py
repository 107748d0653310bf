from django.contrib import admin

from tenants.admin import TenantAdmin

from .models import Agent


@admin.register(Agent)
class AgentAdmin(TenantAdmin):
    list_display = ["name", "agent_id", "company", "phone_numbers"]
    search_fields = ["name", "agent_id"]
    list_select_related = ["company"]
    fields = ["company", "name", "agent_id", "phone_numbers"]
