"""``cm``, the command line of a deployment's JSON API: submit, list, follow, cancel, retry jobs.

Standard library only (``urllib.request``, ``argparse``, ``tomllib``): it imports neither Django
nor the models, so it runs wherever the package is installed. See docs/cli.md.
"""
