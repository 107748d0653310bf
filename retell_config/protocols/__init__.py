"""Wire formats of the providers this app talks to, as plain functions over plain data
(no Django, no sockets): Retell's agent, LLM and tool payloads, ElevenLabs' webhook
tools, and JSON-RPC 2.0 for the gateway."""
