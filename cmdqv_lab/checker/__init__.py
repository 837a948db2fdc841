"""Correctness checker: replay a routed command stream through the functional model and report
ILL commands on guest-owned queues (Q1, Q4) and invalidations whose completion no SYNC the issuer
waits for guarantees (Q2, Q3). Modules are imported on use; see :mod:`cmdqv_lab.checker.check`.
"""
