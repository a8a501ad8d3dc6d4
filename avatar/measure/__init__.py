"""Body measurements in real units (cm, kg), solved sliders from measurements, and pictures of them.

:class:`Ruler` measures vertices of the template's topology, batched;
``rig.measure`` and ``rig.solve`` wrap it (docs/measure.md).
"""
from avatar.measure.ruler import Ruler, hull_perimeter

__all__ = ["Ruler", "hull_perimeter"]
