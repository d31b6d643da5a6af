"""Executors: one module per platform behind the ``ContainerExecutor`` interface.

Cloud SDKs are imported only inside the module of the executor that uses them.
"""
