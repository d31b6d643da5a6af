"""The JSON API for other services: jobs (submit, read, logs, cancel), schedules, webhooks.

Token-authenticated (``web.auth``); the body rules are ``rules.contract``'s.
"""
