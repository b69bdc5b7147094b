"""The network description shared by every stage."""

from .spec import (Connection, InputLayer, LIFLayer, LILayer, NetworkSpec, discretise,  # noqa: F401
                   used_delay_steps)
