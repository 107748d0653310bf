"""Forms of the Retell Webhook Configuration page."""

import json

from django import forms

from .models import Agent, CustomFunction, WebhookConfig, WebhookEvent
from .voices import ELEVENLABS_VOICE_CHOICES, RetellVoice


class JsonEditorWidget(forms.Textarea):
    """A textarea with a highlighted overlay and inline schema errors (retell_config/dashboard.js)."""

    template_name = "retell_config/widgets/json_editor.html"

    def __init__(self, *, validate: bool = False, attrs=None) -> None:
        super().__init__(attrs={"rows": 14, "spellcheck": "false", **(attrs or {})})
        self.validate = validate

    def get_context(self, name, value, attrs):
        context = super().get_context(name, value, attrs)
        context["widget"]["validate"] = self.validate
        return context

    def format_value(self, value):
        if value is None or value == "":
            return ""
        if isinstance(value, str):
            try:
                value = json.loads(value)
            except ValueError:
                return value
        return json.dumps(value, indent=2, ensure_ascii=False)


class WebhookForm(forms.Form):
    url = forms.URLField(label="Webhook URL", max_length=500, required=False, assume_scheme="https")
    events = forms.MultipleChoiceField(label="Events to Subscribe", choices=WebhookEvent.choices, required=False,
                                       widget=forms.CheckboxSelectMultiple)
    secret = forms.CharField(label="Secret", required=False, strip=True,
                             widget=forms.PasswordInput(attrs={"autocomplete": "new-password"}),
                             help_text="Leave empty to keep the stored secret.")
    clear_secret = forms.BooleanField(label="Remove the stored secret", required=False)
    apply_to = forms.ChoiceField(label="Apply to Agents", choices=WebhookConfig.ApplyTo.choices,
                                 widget=forms.RadioSelect, initial=WebhookConfig.ApplyTo.ALL)
    agents = forms.ModelMultipleChoiceField(queryset=Agent.objects.none(), required=False,
                                            widget=forms.CheckboxSelectMultiple)

    def __init__(self, *args, agents, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.fields["agents"].queryset = agents

    def secret_value(self) -> str | None:
        if self.cleaned_data.get("secret"):
            return self.cleaned_data["secret"]
        return "" if self.cleaned_data.get("clear_secret") else None


class CustomFunctionForm(forms.ModelForm):
    url = forms.URLField(max_length=500, assume_scheme="https", help_text="The endpoint Retell calls.")

    class Meta:
        model = CustomFunction
        fields = ["name", "description", "parameters", "url", "method", "query_params", "args_at_root",
                  "timeout_ms", "speak_during_execution", "execution_message", "speak_after_execution", "agents"]
        widgets = {
            "parameters": JsonEditorWidget(validate=True),
            "query_params": JsonEditorWidget(attrs={"rows": 3}),
            "description": forms.Textarea(attrs={"rows": 3}),
            "execution_message": forms.Textarea(attrs={"rows": 2}),
            "agents": forms.CheckboxSelectMultiple,
        }

    def __init__(self, *args, agents, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.fields["agents"].queryset = agents
        self.fields["agents"].required = False
        self.fields["url"].widget.attrs["size"] = 60


class PromptForm(forms.Form):
    general_prompt = forms.CharField(label="System prompt", required=False, strip=False,
                                     widget=forms.Textarea(attrs={"rows": 12, "cols": 90}))
    begin_message = forms.CharField(label="Greeting", required=False, strip=False,
                                    widget=forms.Textarea(attrs={"rows": 2, "cols": 90}))
    custom_instructions = forms.CharField(required=False, strip=False,
                                          widget=forms.Textarea(attrs={"rows": 5, "cols": 90}))
    voice_id = forms.ChoiceField(label="Retell voice", help_text="The voices Retell offers this company.")
    voice_speed = forms.FloatField(min_value=0.5, max_value=2.0)
    elevenlabs_voice_id = forms.ChoiceField(
        label="ElevenLabs voice (this server's speech)", required=False,
        help_text="This server's own speech (the Twilio path), with the stability and similarity below; "
                  "not sent to Retell.")
    voice_stability = forms.FloatField(min_value=0, max_value=1)
    voice_similarity_boost = forms.FloatField(min_value=0, max_value=1)
    language = forms.ChoiceField(choices=Agent.Language.choices)
    note = forms.CharField(required=False, max_length=300, help_text="What changed and why (kept with the version).")
    base_version = forms.IntegerField(widget=forms.HiddenInput)

    AGENT_FIELDS = ("general_prompt", "begin_message", "custom_instructions", "voice_id", "voice_speed",
                    "elevenlabs_voice_id", "voice_stability", "voice_similarity_boost", "language")

    def __init__(self, *args, voices: list[RetellVoice], agent: Agent, conflicts: dict[str, dict], **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.fields["voice_id"].choices = retell_voice_choices(voices, agent.voice_id)
        self.fields["elevenlabs_voice_id"].choices = elevenlabs_voice_choices(agent.elevenlabs_voice_id)
        self.conflicts = conflicts
        for name, values in conflicts.items():
            self.fields[DRIFT_PREFIX + name] = drift_choice_field(name, values)

    @property
    def edit_fields(self) -> list:
        """The agent's fields (the drift choices are shown beside the conflict, not among them)."""
        return [field for field in self.visible_fields() if not field.name.startswith(DRIFT_PREFIX)]

    @property
    def drift_rows(self) -> list[dict]:
        """Per conflicting field: its name, ours, Retell's (as text) and its choice of side."""
        return [{"name": name, "local": drift_value_text(values["local"]), "remote": drift_value_text(values["remote"]),
                 "choice": self[DRIFT_PREFIX + name]} for name, values in self.conflicts.items()]

    def drift_choices(self) -> dict[str, str]:
        """{field: "local" | "remote"} for each conflict given a side (the service checks all have one)."""
        return drift_choices_of(self.cleaned_data)


# --- drift: which side wins, field by field -------------------------------------------------
DRIFT_PREFIX = "drift_"
DRIFT_SIDE_CHOICES = [("local", "Keep ours (push it to Retell)"), ("remote", "Take Retell's")]


def drift_value_text(value) -> str:
    """A side's value as a person reads it: text as it is, anything else as JSON."""
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)


def drift_choice_field(name: str, values: dict) -> forms.ChoiceField:
    choices = DRIFT_SIDE_CHOICES if values["can_take_remote"] else DRIFT_SIDE_CHOICES[:1]
    return forms.ChoiceField(
        label=f"Retell changed {name}", required=False, choices=choices, widget=forms.RadioSelect,
        help_text=f"Ours: {drift_value_text(values['local'])[:300]} · Retell's: {drift_value_text(values['remote'])[:300]}")


def drift_choices_of(cleaned_data: dict) -> dict[str, str]:
    return {name[len(DRIFT_PREFIX):]: side for name, side in cleaned_data.items()
            if name.startswith(DRIFT_PREFIX) and side}


def retell_voice_choices(voices: list[RetellVoice], current: str = "") -> list[tuple[str, str]]:
    """The choices of a Retell voice picker: `voices`, and the agent's `current` voice when they lack it."""
    choices = [(v.voice_id, v.label) for v in voices]
    if current and current not in {v.voice_id for v in voices}:
        choices.insert(0, (current, f"{current} (the agent's voice; not in Retell's list)"))
    return choices


def elevenlabs_voice_choices(current: str = "") -> list[tuple[str, str]]:
    """The choices of this server's ElevenLabs voice: the server's default, the catalogue, and `current`."""
    choices = [("", "This server's default (ELEVENLABS_VOICE_ID)"), *ELEVENLABS_VOICE_CHOICES]
    if current and current not in dict(choices):
        choices.append((current, current))
    return choices


class ImportForm(forms.Form):
    document = forms.FileField(label="Backup file (JSON)")

    def clean_document(self):
        raw = self.cleaned_data["document"].read()
        try:
            return json.loads(raw)
        except ValueError as exc:
            raise forms.ValidationError(f"Not JSON: {exc}") from None
