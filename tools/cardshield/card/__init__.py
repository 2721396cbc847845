"""Talking to a card: APDU encoding (apdu), errors, and the PC/SC transport."""
