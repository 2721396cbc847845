"""Card attestation, issuer side (docs/attestation.md).

  ca.py      the issuer's attestation CA: its own key and directory, separate from the payment
             CA; certifies each card's attestation key at personalization
  record.py  the personalization record (card id + attestation certificate) that the server's
             card registry imports
  verify.py  verification of a card's ATTEST statement against configured trust roots
  cli.py     `cardshield attestation-ca init|import|show`
"""
