"""The desk's answers to a node's calls: a refusal becomes an error that quotes the desk."""

from __future__ import annotations

import httpx

from fedsante.common.errors import FedsanteError


def raise_for_status(response: httpx.Response) -> None:
    """Raise :class:`FedsanteError` with the desk's status and message when it refused the call."""
    if response.status_code >= 400:
        try:
            message = response.json().get("error", response.text)
        except ValueError:
            message = response.text
        raise FedsanteError(f"desk answered {response.status_code}: {message}")
