"""Triggers: when a task runs next (intervals, run-once, dates, cron, calendar intervals)."""
