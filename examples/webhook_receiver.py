"""A vendor's webhook receiver (aiohttp): verifies each delivery's `PayGo-Signature` and drops duplicates by event id.

Start it, then point the vendor's webhook at it with the operator key (the answer's `secret` is the one to pass):

    .venv/bin/python examples/webhook_receiver.py --listen 127.0.0.1:8090 --secret whsec_...
    curl -X PUT -H "X-API-Key: <operator key>" -H 'Content-Type: application/json' \\
         -d '{"url": "http://127.0.0.1:8090/paygo"}' localhost:8080/api/v1/admin/vendors/<vendor id>/webhook

`make serve` needs `WEBHOOK_SIGNING_KEY` (32 characters or more) for webhooks. Pass `--secret` once per signer: the
vendor's secret for its events, a permission's `notify_secret` for its reminders. Events already processed are
remembered in memory here; a real receiver records event ids in its database, in the transaction that applies them.
"""

from __future__ import annotations

import argparse
from collections import OrderedDict

from aiohttp import web
from paygo_client import WebhookEvent, WebhookVerificationError, verify_webhook

REMEMBERED_EVENTS = 10_000


class Receiver:
    def __init__(self, secrets: list[str]) -> None:
        self.secrets = secrets
        self.processed: OrderedDict[str, None] = OrderedDict()

    def verified(self, request: web.Request, body: bytes) -> WebhookEvent | None:
        for secret in self.secrets:
            try:
                return verify_webhook(secret, request.headers, body)
            except WebhookVerificationError:
                continue
        return None

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.read()  # the raw bytes: the signature covers them exactly
        event = self.verified(request, body)
        if event is None:
            print("refused: not signed by a known secret (or too old)", flush=True)
            return web.Response(status=400, text="bad signature")
        if event.id in self.processed:
            print(f"duplicate {event.id} (delivery {event.delivery_id}): already processed", flush=True)
            return web.Response(text="duplicate")  # a 2xx, so PayGo stops resending it
        self.processed[event.id] = None
        if len(self.processed) > REMEMBERED_EVENTS:
            self.processed.popitem(last=False)
        print(f"processed {event.type} {event.id}: {event.data}", flush=True)
        return web.Response(text="ok")


def create_app(secrets: list[str], path: str = "/paygo") -> web.Application:
    app = web.Application()
    app.router.add_post(path, Receiver(secrets).handle)
    return app


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--listen", default="127.0.0.1:8090", help="HOST:PORT")
    parser.add_argument("--path", default="/paygo")
    parser.add_argument("--secret", action="append", required=True, help="a whsec_... secret (repeatable)")
    args = parser.parse_args()
    host, _, port = args.listen.rpartition(":")
    print(f"receiving PayGo webhooks on http://{args.listen}{args.path}", flush=True)
    web.run_app(create_app(args.secret, args.path), host=host, port=int(port), print=None)


if __name__ == "__main__":
    main()
