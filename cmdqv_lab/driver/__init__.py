"""Software side: what the Linux arm-smmu-v3 / tegra241-cmdqv drivers do to the device models.

Routines here act on the functional device model (:mod:`cmdqv_lab.device`) only through what the
real driver touches: queue memory, PROD/CONS, GERROR/GERRORN, ECMDQ_PROD.ERRACK, the CMDQV error
maps. Names follow the Linux functions they transcribe (``arm_smmu_cmdq_skip_err``, ...).
"""
