"""Third-party imports that are slow for no use of ours, deferred to first use.

``jsonschema`` (imported by Altair for every chart module, by nbformat and the Jupyter server)
imports the optional ``rfc3987_syntax`` at import time to validate the ``iri`` format; that
module builds a Lark grammar when imported: 2.4-2.9 s of every notebook kernel, report build
and widget process on the 2-core reference machine, for a format no chart uses.
:func:`defer_rfc3987_syntax` puts a stand-in in ``sys.modules`` whose ``is_valid_syntax``
imports the real module on its first call, so IRI validation still works, later.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
import types
from typing import Any

_NAME = "rfc3987_syntax"


def defer_rfc3987_syntax() -> bool:
    """Install the stand-in unless jsonschema or the module is imported already or the module is
    not installed; returns whether it did."""
    if _NAME in sys.modules or "jsonschema" in sys.modules:
        return False
    try:
        if importlib.util.find_spec(_NAME) is None:
            return False
    except (ImportError, ValueError):
        return False
    stub = types.ModuleType(_NAME, "stand-in: imports rfc3987_syntax on first use (cmdqv_lab._lazy_imports)")
    real: list[Any] = []

    def is_valid_syntax(*args: Any, **kwargs: Any) -> Any:
        if not real:
            if sys.modules.get(_NAME) is stub:
                del sys.modules[_NAME]
            real.append(importlib.import_module(_NAME).is_valid_syntax)
        return real[0](*args, **kwargs)

    stub.is_valid_syntax = is_valid_syntax  # type: ignore[attr-defined]
    sys.modules[_NAME] = stub
    return True
