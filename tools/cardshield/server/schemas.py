"""JSON request/response schemas (pydantic): sizes, patterns and hex checked before any
work is done; unknown fields are refused."""
from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import (AfterValidator, BaseModel, ConfigDict, Field, StringConstraints,
                      model_validator)

from .tokens import check_card_text

UserId = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$")]
CardLabel = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")]
# One card response: data || SW1 SW2, hex, at most a 4 KiB certificate chunk + SW.
ResponseHex = Annotated[str, StringConstraints(pattern=r"^(?:[0-9A-Fa-f]{2}){2,4098}$")]
Serial = Annotated[str, StringConstraints(pattern=r"^[0-9A-Fa-f]{1,40}$")]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ApduOut(BaseModel):
    name: str = Field(description="what the command does, for logs and the user interface")
    apdu: str = Field(description="command APDU, hex; relay it unchanged")
    pin_required: bool = Field(description="verify the PIN at the terminal before sending it")


class BatchOut(BaseModel):
    seq: int = Field(description="echo this in the responses post")
    step: str
    apdus: list[ApduOut]
    notes: list[str]


class ErrorBody(BaseModel):
    code: str
    message: str


class ErrorOut(BaseModel):
    error: ErrorBody


# Crockford base32, dashes and spaces allowed (activation.normalize)
ActivationCodeText = Annotated[str, StringConstraints(pattern=r"^[0-9A-Za-z -]{16,40}$")]


class EnrollmentStartIn(Strict):
    user_id: UserId
    slot: Literal[1, 2] = 1
    card_label: CardLabel = "card"
    activation_code: ActivationCodeText = Field(
        description="the one-time code the bank gave the user for this slot (out of band)")


class CardResponsesIn(Strict):
    seq: int = Field(ge=1, le=1_000_000)
    responses: list[ResponseHex] = Field(max_length=64,
                                         description="one per APDU of the batch, in order: "
                                                     "response data || SW1 SW2, hex")

    def decoded(self) -> list[bytes]:
        return [bytes.fromhex(r) for r in self.responses]


class EnrollmentOut(BaseModel):
    enrollment_id: str
    state: Literal["keygen_sent", "pop_sent", "cert_sent", "completed", "aborted", "failed",
                   "expired"]
    expires_at: datetime
    batch: BatchOut | None
    certificate_serial: str | None = None
    certificate_der_hex: str | None = None
    failure_code: str | None = None


CardText = Annotated[str, Field(min_length=1, max_length=64), AfterValidator(check_card_text)]


class PaymentCreateIn(Strict):
    user_id: UserId
    # The card takes 8 unsigned bytes; databases store a signed BIGINT, so 2^63 - 1 is the top.
    amount_minor: int = Field(ge=0, lt=1 << 63, description="amount in minor units (cents), "
                                                            "below 2^63")
    currency: Annotated[str, StringConstraints(pattern=r"^[A-Z]{3}$")]
    order_ref: CardText = Field(description="the merchant's order reference, signed by the card")

    @model_validator(mode="before")
    @classmethod
    def _bank_decides(cls, value):
        """Fields of the four-request API that are not the merchant's to choose."""
        if isinstance(value, dict):
            if "signing_mode" in value:
                raise ValueError("signing_mode is not a request field: the card issuer's policy "
                                 "decides it (8E bank-signed requests by default); remove it")
            if "payee" in value:
                raise ValueError("payee is not a request field: the payee signed and shown is "
                                 "the merchant's registered display name; remove it")
        return value


class PaymentOut(BaseModel):
    payment_id: str
    state: Literal["created", "cert_requested", "sign_requested", "authorized", "refused",
                   "expired"]
    user_id: str
    amount_minor: int
    currency: str
    order_ref: str
    payee: str = Field(description="the merchant's registered display name, as signed")
    signing_mode: str = Field(description="the card issuer's policy: server_signed (SIGN "
                                          "TRANSACTION carries the bank's 8E signature) or "
                                          "transaction")
    expires_at: datetime
    batch: BatchOut | None = None
    card_counter: int | None = None
    authorized_at: datetime | None = None
    refusal_code: str | None = None
    certificate_serial: str | None = None


ClientName = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")]


class ClientIn(Strict):
    name: ClientName = Field(description="unique: the terminal, shop or operator it stands for")
    role: Literal["terminal", "merchant", "admin"]
    display_name: CardText | None = Field(
        None, description="a merchant's name as card holders see it and their cards sign it "
                          "(the payee); default: the name")


class ClientOut(BaseModel):
    name: str
    role: str
    display_name: str
    created_at: datetime
    disabled_at: datetime | None


class ClientCreatedOut(ClientOut):
    token: str = Field(description="the bearer token, shown this once: only its SHA-256 is "
                                   "stored")


class ClientsOut(BaseModel):
    clients: list[ClientOut]


class RevocationIn(Strict):
    serial: Serial | None = None
    user_id: UserId | None = None
    reason: Literal["unspecified", "key_compromise", "superseded", "cessation_of_operation",
                    "affiliation_changed", "certificate_hold"] = "unspecified"


class RevocationOut(BaseModel):
    revoked: list[str]


class ServerKeyOut(BaseModel):
    type: Literal["rsa-2048", "ec-p256"] = Field(description="the bank key type: RSA-2048, or EC "
                                                 "P-256 for cards with EC")
    public_key_7f49_hex: str = Field(description="for PERSONALIZE P1=04")
    public_key_spki_der_hex: str


class UserIn(Strict):
    user_id: UserId


class ActiveCertificateOut(BaseModel):
    slot: int
    serial: str
    card_id: str | None = Field(description="registry card id the key was attested by")
    attested: bool


class UserOut(BaseModel):
    user_id: str
    created_at: datetime
    blocked_at: datetime | None
    certificates: list[ActiveCertificateOut]


class UsersOut(BaseModel):
    users: list[UserOut]


class ActivationCodeIn(Strict):
    slot: Literal[1, 2] = 1
    replace: bool = Field(False, description="the code may replace the user's active "
                                             "certificate for the slot")


class ActivationCodeOut(BaseModel):
    activation_code: str = Field(description="shown this once: only a keyed hash is stored; "
                                             "hand it to the user out of band")
    user_id: str
    slot: int
    replace: bool
    expires_at: datetime


class CardRecordsIn(Strict):
    """A cardshield-card-records/1 document (what `perso run --record` writes)."""
    format: Literal["cardshield-card-records/1"]
    records: list[dict] = Field(max_length=1000)


class RegisteredCardOut(BaseModel):
    card_id: str
    status: str
    bound_user: str | None
    applet_version: str
    attestation_ca: str
    personalized_at: datetime | None
    imported_at: datetime
    revoked_at: datetime | None


class RegisteredCardsOut(BaseModel):
    cards: list[RegisteredCardOut]


class CardImportOut(BaseModel):
    imported: list[str]
    unchanged: list[str]
