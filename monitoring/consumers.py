"""The Live Debug Console's socket: /admin-console/activity/?company=<id>.

Authenticated by the admin session (channels' AuthMiddlewareStack in config.routing) and
subscribed to one company's activity-log group (audit.services.activity_group_name), only
when the user may view that company's activity log. Each line the group carries reaches the
browser only when the console's queryset holds it (monitoring.console.console_line_passes:
restrict() for a member limited to some agents, and the viewer's filters).

Frames out: {"type": "ready", "company": id} once subscribed; {"type": "line", "line": {...}}
per line (audit.services.activity_line_payload); {"type": "filter", "ok": true} or
{"type": "error", "error": {"code", "message"}}. A refusal (not signed in, not staff, a
company the user may not view) is an error frame followed by a close with code 4403.
Frames in: {"type": "filter", "kind", "level", "agent", "call_id"} (empty strings filter nothing).
"""

from __future__ import annotations

from urllib.parse import parse_qs

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncJsonWebsocketConsumer

from audit.services import activity_group_name
from retell_config.selectors import limited_in

from .selectors import console

REFUSED = 4403


class ConsoleConsumer(AsyncJsonWebsocketConsumer):
    company = None
    group = None

    async def connect(self) -> None:
        await self.accept()
        user = self.scope.get("user")
        if user is None or not user.is_authenticated or not user.is_active or not user.is_staff:
            await self._refuse("not_authenticated", "Sign in to the admin, then open the console again.")
            return
        wanted = parse_qs(self.scope.get("query_string", b"").decode()).get("company", [""])[0]
        self.company = await database_sync_to_async(self._company)(user, wanted)
        if self.company is None:
            await self._refuse("company_not_allowed", "You may not view this company's activity log.")
            return
        self.user = user
        self.limited = await database_sync_to_async(limited_in)(user, self.company)
        self.line_filter = console.LineFilter()
        self.group = activity_group_name(self.company.pk)
        await self.channel_layer.group_add(self.group, self.channel_name)
        await self.send_json({"type": "ready", "company": self.company.pk})

    @staticmethod
    def _company(user, wanted: str):
        if not wanted.isdigit():
            return None
        return console.console_companies(user).filter(pk=int(wanted)).first()

    async def _refuse(self, code: str, message: str) -> None:
        await self.send_json({"type": "error", "error": {"code": code, "message": message}})
        await self.close(code=REFUSED)

    async def disconnect(self, code) -> None:
        if self.group is not None:
            await self.channel_layer.group_discard(self.group, self.channel_name)

    async def receive_json(self, content, **kwargs) -> None:
        if self.group is None:
            return
        if not isinstance(content, dict) or content.get("type") != "filter":
            await self.send_json({"type": "error", "error": {"code": "bad_frame",
                                                             "message": 'Send {"type": "filter", ...}.'}})
            return
        params = {key: str(content.get(key) or "") for key in ("kind", "level", "agent", "call_id")}
        try:
            self.line_filter = await database_sync_to_async(console.line_filter_parse)(
                user=self.user, company=self.company, params=params)
        except ValueError as exc:
            await self.send_json({"type": "error", "error": {"code": "bad_filter", "message": str(exc)}})
            return
        await self.send_json({"type": "filter", "ok": True})

    async def decode_json(self, text_data):
        try:
            return await super().decode_json(text_data)
        except ValueError:
            return None

    async def activity_line(self, event: dict) -> None:
        """A line from the company's group (audit.services._broadcast)."""
        line = event.get("line") or {}
        if line.get("company_id") != self.company.pk:
            return
        passes = await database_sync_to_async(console.console_line_passes)(
            user=self.user, company=self.company, line_filter=self.line_filter, line_id=line.get("id"),
            limited=self.limited)
        if passes:
            await self.send_json({"type": "line", "line": line})
