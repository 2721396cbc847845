from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding

from cardshield.protocol import Lifecycle


def test_issued_card_signs_a_hash(verified, reference):
    fci = verified.select()
    assert fci.lifecycle is Lifecycle.ISSUED
    verified.verify_pin("1234")
    digest = hashes.Hash(hashes.SHA256())
    digest.update(b"payment 42")
    sig = verified.sign_hash(digest.finalize())
    reference.public_keys[1].verify(sig, b"payment 42", padding.PKCS1v15(), hashes.SHA256())
