"""Functional device model: commands, queues, the SMMU main CMDQ, ECMDQ and Tegra241 CMDQV.

This package is the specification of the toolkit: it encodes commands as the real 16-byte entries,
keeps PROD/CONS with wrap bits, and implements error and recovery semantics register by register.
The timing engine (:mod:`cmdqv_lab.engine`) models the same protocol with compact arrays.
"""
