"""The private virtual card: pcscd + vpcd + the Java virtual card host, in a private mount,
network and PID namespace so that nothing else on the machine sees or disturbs it."""

# Issuer Security Domain behaviours of the virtual card (tools/virtualcard/.../gp/IsdProfile.java)
ISD_PROFILES = ("plain", "gp211", "s16", "dm", "locked", "small")
