"""One flow from start to end: open the card, run enrollment or payment, close the card,
and turn every way it can fail into one message for the card holder (FlowFailed)."""
from __future__ import annotations

from typing import Callable

from cardshield.card.errors import CardRemovedError, CardResetError, CardShieldCardError

from . import allowlist
from .card_link import CardUnavailable, open_card
from .flows import FlowFailed, FlowRunner, Progress
from .relay import Declined, PinBlocked, Relay, RelayError
from .server_client import ServerClient, ServerError
from .ui import UserInterface

# The server's refusal codes (cardshield.server.errors) in the card holder's words.
REFUSALS = {
    "signature_mismatch": "The bank refused the signature: it does not match the payment the bank sent "
                          "(the amount or payee was changed on the way, or another card signed). Nothing was paid.",
    "counter_not_increasing": "The bank refused the signature as a replay (the card's signature counter did not "
                              "increase). Nothing was paid.",
    "nonce_already_used": "This payment was already signed once; a signature counts only once.",
    "payment_expired": "The payment expired before it was signed: start the checkout again.",
    "enrollment_expired": "The enrollment took too long and expired: start it again.",
    "certificate_revoked": "The card's certificate is revoked: enroll the card again.",
    "no_active_certificate": "This user has no payment certificate yet: enroll the card first.",
    "certificate_wrong_user": "The card in the reader belongs to another user.",
    "certificate_not_registered": "The card's certificate is not one the bank knows: enroll this card first.",
    "user_blocked": "Too many failed attempts: the account is blocked. Contact the bank.",
    "card_blocked": "Too many failed attempts with this card: it is blocked. Contact the bank.",
    "wrong_terminal": "Another terminal is already handling this payment.",
    "unknown_user": "The bank does not know this user: enroll first.",
    "proof_of_possession_failed": "The card could not prove it holds the new key: start the enrollment again.",
    "weak_key": "The key the card generated was refused as weak: start the enrollment again.",
    "activation_code_invalid": "The bank refused the activation code: check it and type it again "
                               "(after 5 wrong tries it locks).",
    "activation_code_locked": "The activation code is locked after too many wrong tries: ask the bank for a new one.",
    "activation_code_expired": "The activation code has expired: ask the bank for a new one.",
    "activation_code_not_issued": "The bank has no unused activation code for this user and key: ask the bank "
                                  "for one (each code works once).",
    "replacement_not_authorized": "This user already has a certificate for this key: replacing it needs an "
                                  "activation code the bank issued for a replacement.",
    "attestation_required": "This card cannot prove that it generated the key (no card attestation): the bank "
                            "enrolls genuine, personalized cards only.",
    "card_not_registered": "The bank does not know this card: it was not personalized by the bank.",
    "card_revoked": "The bank has withdrawn this card.",
    "card_bound_to_another_user": "This card is registered to another user.",
    "attestation_policy_insufficient": "The card's key settings are weaker than the bank requires.",
}


def friendly(code: str | None, message: str) -> str:
    return REFUSALS.get(code or "", message[:1].upper() + message[1:] if message else "The flow failed.")


def run_flow(kind: str, subject: str, *, server: ServerClient, ui: UserInterface, reader: str | None = None,
             on_progress: Callable[[Progress], None] = lambda p: None,
             open_transport: Callable[[str | None], object] = open_card, slot: int = 1,
             card_label: str = "card", activation_code: str | None = None) -> FlowRunner:
    """kind "enroll" (subject: user id; activation_code: the one the bank issued) or "pay"
    (subject: payment id). Returns the runner (its report holds the final state, timings
    and APDU counts); raises FlowFailed."""
    if kind == "enroll" and not activation_code:
        raise FlowFailed("Enrollment needs the activation code the bank gave you.", "activation_code_missing")
    try:
        transport = open_transport(reader)
    except CardUnavailable as error:
        raise FlowFailed(str(error), "no_card") from None
    runner = FlowRunner(server, Relay(transport, ui, server=server.base_url), on_progress)
    try:
        if kind == "enroll":
            runner.enroll(subject, activation_code, slot, card_label)
        elif kind == "pay":
            runner.pay(subject)
        else:
            raise ValueError(f"unknown flow {kind!r}")
        return runner
    except FlowFailed as failure:
        raise FlowFailed(friendly(failure.code, str(failure)), failure.code, failure.state) from None
    except allowlist.RefusedCommand as error:
        raise FlowFailed(f"This terminal refused a command from the server: {error}. Nothing was sent to the card.",
                         "terminal_refused") from None
    except Declined as error:
        raise FlowFailed(f"Cancelled at the card terminal: {error}. Nothing was signed.", "declined") from None
    except PinBlocked as error:
        raise FlowFailed(str(error)[:1].upper() + str(error)[1:], "pin_blocked") from None
    except RelayError as error:
        raise FlowFailed(str(error), "card_refused") from None
    except CardRemovedError:
        raise FlowFailed("The card was removed during the operation: insert it and start again.",
                         "card_removed") from None
    except CardResetError:
        raise FlowFailed("The card was reset by another application during the operation: start again.",
                         "card_reset") from None
    except CardShieldCardError as error:
        raise FlowFailed(f"The card reader failed: {error}", "reader_error") from None
    except ServerError as error:
        raise FlowFailed(f"Lost the connection to the bank: {error}", "server_unreachable") from None
    finally:
        try:
            transport.close("reset")  # leave no PIN-verified state behind on the card
        except CardShieldCardError:
            pass
