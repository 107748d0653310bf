"""Reads of the monitoring tools: the Live Debug Console (console) and Analytics (analytics)."""
