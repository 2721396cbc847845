package org.cardshield.virtualcard.gp;

/** What the ISD asks of the Java Card runtime that runs the applets (jcardsim here). */
interface AppletHost {
    /**
     * Creates an instance of the package's applet module: install(bArray, 0, len) with bArray in
     * the Applet.install format (instance AID, control info, applet data). Throws
     * StatusWordException if install() refuses.
     */
    void install(byte[] packageAid, byte[] moduleAid, byte[] instanceAid, byte[] installArray);

    /** Removes an instance (its objects go with it). */
    void delete(byte[] instanceAid);
}
