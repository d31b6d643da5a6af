"""The engine: what moves a job along its rows (status moves, steps, sweep, firing, delivery).

Above the models, below the entry points that receive messages and requests.
"""
