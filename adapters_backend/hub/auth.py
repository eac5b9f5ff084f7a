"""Hub tokens: the usual places (HF_TOKEN, the `hf auth login` token file), and setting one."""
from __future__ import annotations

import os

from ..errors import HubAccessError
from .client import hub_errors


def token_source() -> str | None:
    """"HF_TOKEN", "token file" or None — never the token itself."""
    from huggingface_hub import get_token
    if os.environ.get("HF_TOKEN") or os.environ.get("HUGGING_FACE_HUB_TOKEN"):
        return "HF_TOKEN"
    return "token file" if get_token() else None


def set_token(token: str) -> str:
    """Check the token with the Hub and store it where every HF tool finds it; returns the user name."""
    from huggingface_hub import login
    from huggingface_hub.errors import HfHubHTTPError

    from .client import api
    token = (token or "").strip()
    if not token:
        raise HubAccessError(None, "the token is empty; copy one from huggingface.co/settings/tokens")
    from .reach import require_hub
    require_hub()
    try:
        name = api().whoami(token=token).get("name", "")   # checked against the endpoint in use
        login(token=token, add_to_git_credential=False)     # stored where every HF tool looks
        return name
    except HfHubHTTPError as exc:
        if getattr(getattr(exc, "response", None), "status_code", None) in (401, 403):
            raise HubAccessError(None, "the Hub rejected this token; create a new one at "
                                       "huggingface.co/settings/tokens") from None
        with hub_errors(None, "token check"):
            raise
