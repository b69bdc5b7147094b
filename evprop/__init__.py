"""evprop: EventProp training, fixed-point quantisation, NIR export and Lava verification of spiking networks."""

__version__ = "0.1.0"
