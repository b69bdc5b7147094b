"""Quantisation profiles: what a deployment target can express, consulted by `evprop.fixed_point.quantise.quantise`.

A profile restricts the quantiser's choices; the arithmetic (Lava 0.10 fixed_pt, `FixedPointSpec`) is the same
for every profile, so the emulator, the NIR export and the Lava check work unchanged on any of them.

    lava   evprop's own Lava network (`evprop verify`): every connection gets its own weight exponent in [-8, 7]
           (feed-forward and recurrent weights differ by ~10x in range on the default network), delays 0..63.
    netx   lava-dl's NetX HDF5 format (`evprop export --format netx`, `evprop verify --runtime netx`). A NetX file
           has no weight exponent: netx computes a_in = sum of the file's integer weights (lava-dl 0.6.0,
           netx/utils.py optimize_weight_bits; its own exponent and shift cancel). So every connection has
           weight_exp 0 and 8-bit weights (mixed sign: even values in [-256, 254]), all connections into a
           population share one weight unit (a `dense_rec` layer's feed-forward and recurrent weights are scaled
           together), and netx clamps delays above 62 (DelayDense max_delay = 62). Without an exponent the LI
           readout's weights can only be as fine as 64 LSBs of its v (u receives a_in << 6), so its v range is
           worth weight resolution: its calibrated |v| may reach 2**22 (1 bit below the spike threshold
           131071 << 6 ~ 2**23) instead of the default 2**20.

Select one with the config key `quantise.profile`.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class QuantiseProfile:
    """name:               config value of `quantise.profile`
    max_delay:          largest synaptic delay [steps] the target holds (a spike in s arrives in s + 1 + delay)
    weight_exp:         None: each connection's exponent is chosen (`choose_v_lsb`); an int: every connection uses
                        it, and the population's v units follow from its weight unit
    shared_layer_scale: True: one weight unit for all connections into a population (percentile over all of them)
    li_headroom_bits:   the LI readout's calibrated max |v| stays below 2**(23 - li_headroom_bits)
    """

    name: str
    max_delay: int
    weight_exp: int | None = None
    shared_layer_scale: bool = False
    li_headroom_bits: int = 3


PROFILES = {profile.name: profile for profile in (
    QuantiseProfile(name="lava", max_delay=63),
    QuantiseProfile(name="netx", max_delay=62, weight_exp=0, shared_layer_scale=True, li_headroom_bits=1),
)}


def get_profile(name: str) -> QuantiseProfile:
    """The registered profile `name`; a one-line ValueError naming the known ones otherwise."""
    if name not in PROFILES:
        raise ValueError(f"quantisation profile {name!r} unknown, expected one of {sorted(PROFILES)}")
    return PROFILES[name]
