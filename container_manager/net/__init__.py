"""Network access the app makes on its own behalf: the guarded outbound HTTP client.

At the bottom of the layers; it knows nothing of jobs or rows.
"""
