"""Pure rules: the status vocabulary, the submit contract, env text, cron, logs text, masking,
the task wire format, backoff and price arithmetic. No model, no I/O: everything imports them.
"""
