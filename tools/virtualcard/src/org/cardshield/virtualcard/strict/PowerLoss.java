package org.cardshield.virtualcard.strict;

/**
 * The card lost power at a tear point. An Error, not an exception: the applet's
 * catch (RuntimeException) must not see it, exactly as no code of a real card runs after
 * the power is gone. Once thrown, every further persistent write of the command throws it
 * again, so a finally block of the applet cannot write either.
 */
public final class PowerLoss extends Error {
    private static final long serialVersionUID = 1L;

    public PowerLoss(String where) {
        super("power lost at " + where, null, false, false);
    }
}
