"""Lava processes and process models used by evprop.hw_sim.lava_sim (kept in their own package: Lava's compiler
executes every module in the directory of a process to find its models)."""
