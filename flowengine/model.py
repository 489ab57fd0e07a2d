"""``flowengine.model`` is ``flowengine.core.model``: the module moved into its layer, and this name keeps
the imports written before the move (and shown in older guides) working. It is the same module
object, so state and patches are shared."""

import sys

from .core import model as _moved

sys.modules[__name__] = _moved
