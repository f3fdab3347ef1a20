"""Fathom's webhooks (auto-move): made for the key owner's own new recordings, deleted again. A
mixin of `FathomClient`, whose `_call` makes each request."""

from __future__ import annotations

import contextlib
from typing import Any, Protocol
from urllib.parse import quote

from fathom2loom.errors import ProtocolError, ProviderError
from fathom2loom.providers.fathom_models import PROVIDER, Webhook
from fathom2loom.providers.http import parse

__all__ = ["WebhookCalls"]


class _Calls(Protocol):
    def _call(self, method: str, path: str, **kwargs: Any) -> Any: ...

    def delete_webhook(self: _Calls, webhook_id: str) -> bool: ...


class WebhookCalls:
    def create_webhook(self: _Calls, destination_url: str) -> Webhook:
        """A webhook for the key owner's own new recordings, delivered to `destination_url`.

        The payload is the Meeting without transcript or summary (action items only: the spec
        asks for at least one `include_*`), so a delivery stays small and holds no conversation.
        """
        body = self._call(
            "POST",
            "/webhooks",
            what="a webhook",
            json={
                "destination_url": destination_url,
                "triggered_for": ["my_recordings"],
                "include_transcript": False,
                "include_summary": False,
                "include_action_items": True,
                "include_crm_matches": False,
            },
            messages={400: "Fathom refused the webhook (400): check WEBHOOK_PUBLIC_URL"},
            once=True,  # A POST that timed out or got a 5xx may have made one: never make two.
        )
        try:
            webhook = parse(Webhook, body, PROVIDER, "a webhook")
            if not webhook.secret.get_secret_value().startswith("whsec_"):
                raise ProtocolError(PROVIDER, "Fathom sent a webhook secret we cannot use")
        except ProtocolError:
            made = body.get("id") if isinstance(body, dict) else None
            if isinstance(made, str) and made:  # Made at Fathom, but of no use: not left there.
                with contextlib.suppress(ProviderError):
                    self.delete_webhook(made)
            raise
        return webhook

    def delete_webhook(self: _Calls, webhook_id: str) -> bool:
        """Delete a webhook; False when Fathom no longer has it (nothing left to do)."""
        try:
            self._call(
                "DELETE",
                f"/webhooks/{quote(webhook_id, safe='')}",
                what="a deletion",
                expect_body=False,
            )
        except ProviderError as exc:
            if exc.status == 404:
                return False
            raise
        return True
