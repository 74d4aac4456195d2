"""Read API bodies whichever server sent them: ours, or one that returns only the documented minimum.

The hosted Levered service documents fewer fields than our server returns, so the views read
every field as possibly absent (and show ``-``). One shape differs outright:
``GET /api/v2/optimizations/:id`` may nest the object as ``{"optimization": {...},
"model_config": {...}}``; :func:`optimization` turns either form into the flat one.
"""

from __future__ import annotations

from typing import Any

#: The keys of a nested ``model_config`` that the flat object keeps under ``training_data_config``.
TRAINING_KEYS = ("design_factors", "context_factors", "reward", "attribution")


def optimization(body: Any) -> dict[str, Any]:
    """Return an optimization as one flat object, whether the server sent it flat or nested.

    :param body: the response of get or create, as received (``meta`` and all).
    :returns: the flat object: the nested ``optimization``'s fields, ``model_type`` from
        ``model_config`` and the rest of ``model_config`` under ``training_data_config``. A flat
        body is returned as it is; anything that is not an object gives ``{}``.
    """
    if not isinstance(body, dict):
        return {}
    inner = body.get("optimization")
    if not isinstance(inner, dict):
        return body
    config = body.get("model_config")
    config = config if isinstance(config, dict) else {}
    flat = dict(inner)
    flat.setdefault("model_type", config.get("model_type"))
    flat.setdefault("training_data_config", {key: config[key] for key in TRAINING_KEYS if key in config})
    return flat
