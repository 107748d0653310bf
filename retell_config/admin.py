from django.contrib import admin

from tenants.admin import TenantAdmin

from .models import Agent


@admin.register(Agent)
class AgentAdmin(TenantAdmin):
    list_display = ["name", "agent_id", "company", "phone_numbers"]
    search_fields = ["name", "agent_id"]
    list_select_related = ["company"]
    fieldsets = [
        (None, {"fields": ["company", "name", "agent_id", "phone_numbers", "language"]}),
        ("Engine", {"fields": ["response_engine", "llm_id", "dialog_engine"]}),
        ("Voice", {"fields": ["voice_id", "voice_stability", "voice_similarity_boost", "voice_speed"]}),
        ("Prompt", {"fields": ["begin_message", "general_prompt", "custom_instructions"]}),
        ("Webhook", {"fields": ["webhook_url"]}),
    ]
