"""Platform events: hints that an execution stopped, turned into a ``harvest`` of its job.

``flow`` (asked by the steps), ``hints`` (the harvest), one module per platform's events.
"""
