"""The JSON API for other services: jobs (submit, read, logs, cancel) and schedules.

Token-authenticated (``web.auth``); the body rules are ``rules.contract``'s.
"""
