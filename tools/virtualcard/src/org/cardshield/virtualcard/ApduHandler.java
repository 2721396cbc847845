package org.cardshield.virtualcard;

/**
 * Something that answers command APDUs: the applet runtime, or a front end placed before
 * it (e.g. a GlobalPlatform Issuer Security Domain emulation) that sees every APDU first
 * and passes on what it does not handle.
 */
public interface ApduHandler {
    /** Process one command APDU (header + body as sent by the reader); return data + SW1 SW2. */
    byte[] process(byte[] command);

    /** Power-on or reset: transient memory and the current selection are lost, persistent state stays. */
    void reset();

    /** The card was wiped back to its factory state (host control PRISTINE); default: a reset. */
    default void pristine() {
        reset();
    }
}
