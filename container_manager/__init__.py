"""Run container jobs on Docker, Cloud Run Jobs, Fargate and Scaleway from Django.

The database row of each job is the truth; every step is a compare-and-set transition.
"""
