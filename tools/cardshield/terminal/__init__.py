"""The relay agent: the terminal of patent CN101938520A (figures 5 and 6).

  allowlist.py     which server APDUs may reach the card (docs/apdu.md)
  display.py       the payment decoded from SIGN TRANSACTION, as shown to the card holder
  ui.py            asking the card holder: terminal prompt, scripted (demo, tests)
  dialog.py        asking the card holder in the agent's own page on 127.0.0.1
  relay.py         one server batch to the card and back; PIN and consent locally
  server_client.py the authentication server's HTTP API
  flows.py         enrollment (501-512) and payment (601-608) with progress events
  card_link.py     which reader and card; opened per flow
  session.py       one flow, every failure turned into a message for the card holder
  agent.py         the 127.0.0.1 WebSocket + dialog service for the pages
  cli.py           `cardshield terminal serve|enroll|pay`
"""
