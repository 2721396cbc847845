"""Test and benchmark aids for the server. SoftCard is a software stand-in for the applet
(keys generated in Python, NOT a secure element) used only by tests and `./cardshield bench server`;
the end-to-end tests against the real applet use the virtual card through the card client."""
