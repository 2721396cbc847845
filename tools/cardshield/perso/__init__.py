"""Personalization of CardShield cards through secured, relayable scripts.

AES primitives come from cardshield.gp.crypto (shared with the GlobalPlatform client).
docs/personalization.md is the normative description of the script format, the
per-card key derivation, the secure-messaging construction and the SCP80 export.

Modules, one responsibility each:
  keys.py             per-card key set diversified from the issuer master key (SP 800-108)
  secure_messaging.py secured PERSONALIZE / ISSUE APDUs (wrap; reference unwrap)
  scp80.py            ETSI TS 102 225 / TS 31.115 command packets for an OTA platform
  keystore.py         where secrets come from: environment, protected file, HSM hook
  script.py           the YAML personalization script: parsing and validation
  compiler.py         script + card identity -> offline bundle of secured APDUs
  bundle.py           the bundle file (JSON): writing, reading, checking
  runner.py           delivery of a bundle through PC/SC with a per-step report, resume
  certify.py          the issuer's step between relayed bundles: check the attestation key's
                      receipt, certify the key, compile the follow-up bundle
  cli.py              `cardshield perso ...` sub-commands
"""
