"""Whether two recorded ``base_model`` values name the same base.

Since session 28 a base given as a relative local folder is recorded by its absolute path
(:func:`~biohicl.models.config.recorded_base`); before, it was recorded as typed (``"tinybert"``). Artefacts that
compare recorded bases (an index's ``settings.json`` on resume, the adapters of a soup) use :func:`same_base`, so the
two forms of one folder match while two different Hub ids never do.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any


def same_base(a: Any, b: Any) -> bool:
    """True when ``a`` and ``b`` (two recorded ``base_model`` values) name the same base: equal; or one relative and
    the other the absolute path it resolves to from the working directory (the form recorded before a relative folder
    was recorded by its absolute path); or both name the same existing folder. Two names that are no folder (Hub ids)
    match only when equal."""
    if a == b:
        return True
    if not isinstance(a, str) or not isinstance(b, str) or not a or not b:
        return False
    from biohicl.data.files import resolved_path  # the data layer's scipy: a soup's import loads none

    first, second = resolved_path(a), resolved_path(b)
    if Path(a).expanduser().is_absolute() != Path(b).expanduser().is_absolute() and first == second:
        return True
    return first.is_dir() and second.is_dir() and os.path.samefile(first, second)
