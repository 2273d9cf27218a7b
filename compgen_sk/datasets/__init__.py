"""Compositional datasets whose samples know their in-domain / out-of-domain split.

Every loader returns a :class:`~sklearn.utils.Bunch` in the manner of
:func:`sklearn.datasets.load_digits`, with ground-truth slot ``latents``, a
``concepts`` table (one column per slot and concept), an ``ood`` mask, the id of
each sample's slot-value ``combination``, and ``exchangeable_slots``: whether the
true slots are objects of one kind in no fixed order (two sprites), whose slots
are matched to objects per sample (``SlotProbe(matching="per_sample")``), and
``background_slot``: whether the last true slot is a background that the objects
in front of it occlude.
"""

from ._additive import make_additive
from ._digits import make_digit_compositions
from ._pug import load_pug
from ._scenes import make_object_scenes
from ._sprites import make_sprites, render_sprites

__all__ = [
    "load_pug",
    "make_additive",
    "make_digit_compositions",
    "make_object_scenes",
    "make_sprites",
    "render_sprites",
]
