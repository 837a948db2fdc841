"""Virtualisation: guest submission paths (trap-and-emulate vSMMU, pass-through VCMDQ, error-interrupt
fix-up), the host CMDQV interrupt, and VINTF capacity planning."""
