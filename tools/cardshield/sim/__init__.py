"""The private virtual card: pcscd + vpcd + the Java virtual card host, in a private mount,
network and PID namespace so that nothing else on the machine sees or disturbs it."""
