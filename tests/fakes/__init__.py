"""Local stand-ins for cloud APIs started by the tests: moto for AWS, small HTTP servers otherwise.

Each fake keeps its state in memory and records the requests it received.
"""
