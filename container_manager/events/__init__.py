"""Platform events: hints that an execution stopped, turned into a ``harvest`` of its job.

``hints`` (the harvest), one module per platform's events (docker, ecs, cloudrun).
"""
