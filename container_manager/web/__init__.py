"""The web entry points: the JSON API, its OpenAPI document, the push endpoints, auth, metrics.

At the top of the layers: they receive requests and call the engine or the models.
"""
