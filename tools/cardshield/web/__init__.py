"""The browser pages the authentication server serves: enrollment (patent figure 5),
a merchant checkout (figure 6) and the card holder's status page.

The server mounts `router` with one line. The pages talk to the card only through the
local agent (cardshield.terminal.agent) over ws://127.0.0.1; the PIN is asked in the
agent's own window, never in these pages. The checkout's order endpoint plays a demo
merchant ("Example Shop"): it prices the basket on the server side and creates the
payment with the merchant token in CARDSHIELD_WEB_MERCHANT_TOKEN. The status page shows
the certificates and payments made from this browser: the pages keep their serials and
payment ids (random, unguessable) in localStorage and the bank answers only for those, so
nobody can list another user's payments by typing a user id.
"""
from .routes import router

__all__ = ["router"]
