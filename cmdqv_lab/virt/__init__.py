"""Virtualisation: how guests map onto Tegra241 CMDQV resources (VINTFs, VCMDQs, SID pairs).

Each module is self-contained; importing this package imports none of them.
"""
