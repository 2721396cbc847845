"""Building: javac for the applet and the virtual card host, the Java Card subset checker,
and Oracle's converter when a Java Card SDK is available."""
