"""CardShield authentication server: the patent's CA / authentication centre.

It issues certificates for keys generated on the card (patent figure 5, steps 501-512)
and authorizes payments signed by the card (figure 6, steps 601-608). The server composes
every card APDU itself (through cardshield.protocol); the terminal only relays them and
asks the user for the PIN locally.
"""
